"""The controller over TLS: an agent registers with a CA-checked context, and ``slimwire ctl``
reaches the northbound API with ``--tls-ca`` (and fails without TLS)."""

from __future__ import annotations

import asyncio
import json
import sys

from slimwire.control._agent import Agent
from slimwire.control._controller import Controller
from slimwire.control._store import ConnDetail, Store
from tests.control._fake import FakeMesh
from tests.control.test_controller import S1, token
from tests.transport.conftest import Pki, pki  # noqa: F401 - the fixture

LO = ("127.0.0.1", 0)


async def _ctl(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slimwire",
        "ctl",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_controller_over_tls(pki: Pki) -> None:  # noqa: F811
    ctl = Controller(
        Store(),
        secrets={"d1": S1},
        basic_auth=("u", "p"),
        southbound=LO,
        northbound=LO,
        ssl=pki.server_context(),
    )
    node = FakeMesh().node("n1")
    async with ctl:
        ag = Agent(
            node,
            f"https://localhost:{ctl.southbound_port}",
            domain="d1",  # type: ignore[arg-type]
            credentials=token("d1", "n1", S1),
            endpoints=[ConnDetail("h:1")],
            ssl=pki.client_context(),
        )
        async with ag:
            await asyncio.wait_for(ag.registered.wait(), 10)
            srv = ["--server", f"localhost:{ctl.northbound_port}", "-b", "u:p", "-o", "json"]
            code, out, err = await _ctl(*srv, "--tls-ca", str(pki.ca_cert), "node", "list")
            assert code == 0, err
            assert [n["node_id"] for n in json.loads(out)] == ["n1"]
            code, _, _ = await _ctl(*srv, "node", "list")
            assert code == 1
