"""docs/client.md's first example runs as written (responder and requester) against our node."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from slimwire.dataplane import run_node

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


async def test_client_doc_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    responder, requester = namespace["responder"], namespace["requester"]
    assert callable(responder)
    assert callable(requester)
    async with run_node() as node:
        serving = asyncio.create_task(responder(node.url))
        await asyncio.sleep(0.5)  # bob is connected and listening
        await asyncio.wait_for(requester(node.url), 30)
        await asyncio.wait_for(serving, 30)  # ends when alice closes the session
    assert capsys.readouterr().out.strip() == "echo: hello"
