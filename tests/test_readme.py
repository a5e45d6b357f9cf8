"""The README's Python quick start runs as written, against a real node and a real peer app."""

from __future__ import annotations

import asyncio
import re

import pytest

import slimwire
from slimwire.client import App
from slimwire.dataplane import run_node

from .conftest import REPO

SECRET = "an-example-shared-secret-of-32-bytes!!"


async def _echo(app: App) -> None:
    async def answer(session: slimwire.Session) -> None:
        async for msg in session:
            await msg.reply(msg.payload)

    tasks: set[asyncio.Task[None]] = set()
    async for session in app.incoming():
        task = asyncio.create_task(answer(session))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def test_readme_python_quick_start(capsys: pytest.CaptureFixture[str]) -> None:
    block = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block is not None
    async with run_node() as node:
        code = block.group(1).replace("http://127.0.0.1:46357", node.url)
        code = code.replace("asyncio.run(main())", "")
        bob = await slimwire.connect(node.url, name="org/ns/bob", secret=SECRET)
        echo = asyncio.create_task(_echo(bob))
        try:
            namespace: dict[str, object] = {}
            exec(compile(code, "README.md", "exec"), namespace)
            main = namespace["main"]
            assert callable(main)
            await asyncio.wait_for(main(), 30)
        finally:
            echo.cancel()
            await bob.close()
    out = capsys.readouterr().out
    assert out.strip() == "b'hello'"
