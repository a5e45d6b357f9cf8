"""``slimwire controller`` as a real process and ``slimwire ctl`` against it (table and JSON),
plus ``ctl node ...`` / ``ctl route add|del`` against a node's own ControllerService."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from slimwire.cli import main
from slimwire.control._agent import Agent
from slimwire.control._store import ConnDetail
from tests.control._fake import FakeMesh
from tests.control.test_controller import NAME, S1, token

AUTH = "admin:pw"


class Controller:
    def __init__(self, db: Path, *extra: str) -> None:
        env = dict(os.environ, SLIMWIRE_CONTROLLER_BASIC_AUTH=AUTH)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "slimwire",
                "controller",
                "--db",
                str(db),
                "--southbound",
                "127.0.0.1:0",
                "--northbound",
                "127.0.0.1:0",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"southbound=(\d+) northbound=(\d+)", line)
        assert m, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")  # type: ignore[union-attr]
        self.south, self.north = int(m[1]), int(m[2])

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    c = Controller(tmp_path / "c.db", "--secret", f"d1={S1}")
    try:
        yield c
    finally:
        assert c.stop() == 0


class LoopThread:
    """An event loop in a thread, to run agents while the test calls the (sync) CLI."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 15) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(["ctl", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


async def _until(pred: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not pred():
            await asyncio.sleep(0.02)


def test_ctl_against_controller(controller: Controller, capsys: pytest.CaptureFixture[str]) -> None:
    srv = ["--server", f"127.0.0.1:{controller.north}", "-b", AUTH]
    code, out, _ = ctl(capsys, *srv, "node", "list")
    assert (code, out) == (0, "0 node(s) registered\n\n")
    code, _, err = ctl(capsys, "--server", f"127.0.0.1:{controller.north}", "node", "list")
    assert code == 1
    assert "16" in err
    assert ctl(capsys, *srv, "node", "frobnicate")[0] == 2

    mesh = FakeMesh()
    b1 = mesh.node("b1")
    b1.names.add(NAME)
    lt = LoopThread()
    ag = Agent(
        b1,
        f"http://127.0.0.1:{controller.south}",
        domain="d1",  # type: ignore[arg-type]
        credentials=token("d1", "b1", S1),
        endpoints=[ConnDetail("127.0.0.1:9")],
    )
    servers: list[Any] = []
    try:

        async def start() -> int:
            ag.start()
            await asyncio.wait_for(ag.registered.wait(), 10)
            servers.append(await ag.serve("127.0.0.1", 0))
            return servers[0].port

        node_port = lt.run(start())
        code, out, _ = ctl(capsys, *srv, "node", "list")
        assert code == 0
        lines = out.splitlines()
        assert lines[0] == "1 node(s) registered"
        assert lines[2].split() == ["NODE_ID", "DOMAIN", "STATUS", "ENDPOINT", "PUBLIC_ENDPOINT"]
        assert set(lines[3].strip()) == {"-"}
        assert lines[4].split() == ["b1", "d1", "Connected", "127.0.0.1:9", "-"]
        code, out, _ = ctl(capsys, *srv, "-o", "json", "node", "list")
        assert json.loads(out) == [
            {
                "node_id": "b1",
                "domain": "d1",
                "status": "Connected",
                "endpoint": "127.0.0.1:9",
                "public_endpoint": "-",
            }
        ]

        # the node's announcement of its local name is listed (source "*": any node)
        code, out, _ = ctl(capsys, *srv, "-o", "json", "route", "list", "--all")
        assert [
            (r["source"], r["dest_node"], r["route"].rsplit("/", 1)[0]) for r in json.loads(out)
        ] == [("*", "b1", "org/ns/svc")]
        code, out, _ = ctl(capsys, *srv, "route", "list")
        lines = out.splitlines()
        assert lines[0] == "Routes: 1 (applied only)"
        assert lines[2].split() == ["SOURCE", "DEST_NODE", "ROUTE", "STATUS", "LINK_ID"]
        assert lines[4].split() == ["*", "b1", "org/ns/svc/NULL_COMPONENT", "APPLIED", "-"]
        code, out, _ = ctl(capsys, *srv, "route", "list", "-n", "b1")
        assert (code, out) == (0, "Routes for node: b1\n0 route(s)\n\n")
        code, out, _ = ctl(capsys, *srv, "connection", "list", "-n", "b1")
        assert code == 0
        assert out.startswith("Connections for node: b1\n0 connection(s)")

        # domains and topology through the API
        assert ctl(capsys, *srv, "domain", "add", "d2", "x" * 32)[1] == "Domain 'd2' added\n"
        code, out, _ = ctl(capsys, *srv, "domain", "list")
        assert out.splitlines()[0] == "2 domain(s)"
        assert out.splitlines()[4].split() == ["d1", "b1"]
        assert out.splitlines()[5].split() == ["d2", "(no", "nodes", "connected)"]
        code, out, _ = ctl(capsys, *srv, "-o", "json", "domain", "list")
        assert json.loads(out) == [{"domain": "d1", "nodes": ["b1"]}, {"domain": "d2", "nodes": []}]
        code, _, err = ctl(capsys, *srv, "domain", "add", "d3", "short")
        assert code == 1
        assert "invalid secret" in err
        code, out, _ = ctl(capsys, *srv, "link", "add", "d1", "d2")
        assert code == 0
        assert out.startswith("Topology link d1 <-> d2 added")
        code, out, _ = ctl(capsys, *srv, "-o", "json", "segment", "list")
        assert json.loads(out) == [
            {"name": "default", "domains": ["d1", "d2"], "edges": [["d1", "d2"]]}
        ]
        assert ctl(capsys, *srv, "segment", "add", "s2")[0] == 0
        assert ctl(capsys, *srv, "segment", "add", "s2")[0] == 1  # exists
        assert ctl(capsys, *srv, "segment", "del", "s2")[0] == 0
        assert ctl(capsys, *srv, "link", "del", "d1", "d2")[0] == 0
        code, out, _ = ctl(capsys, *srv, "link", "list", "--all")
        assert out == "Links: 0 (all statuses)\n\n"
        assert ctl(capsys, *srv, "domain", "del", "d2")[0] == 0
        assert ctl(capsys, *srv, "domain", "del", "d2")[0] == 1

        # straight to the node: its connections and routes, and a route added by hand
        nsrv = ["--server", f"127.0.0.1:{node_port}"]
        peer = mesh.node("p1")
        lt.run(peer.add_link(b1.url, link_id="L1"))
        code, out, _ = ctl(capsys, *nsrv, "-o", "json", "node", "connection", "list")
        assert [(c["type"], c["direction"], c["link_id"]) for c in json.loads(out)] == [
            ("Remote", "Incoming", "L1")
        ]
        code, out, _ = ctl(capsys, *nsrv, "route", "add", "org/ns/other", "via", "L1")
        assert (code, out) == (0, "Route org/ns/other via L1 added\n")
        code, _, err = ctl(capsys, *nsrv, "route", "add", "org/ns/x", "via", "nope")
        assert code == 1
        assert "no connection for link nope" in err
        code, out, _ = ctl(capsys, *nsrv, "node", "route", "list")
        lines = out.splitlines()
        assert lines[:2] == [f"Routes for node: 127.0.0.1:{node_port}", "1 route(s)"]
        assert lines[3].split() == ["ROUTE", "TYPE", "ENDPOINT", "LINK_ID"]
        assert lines[5].split()[1:] == ["Remote", "p1", "L1"]
        assert lines[5].split()[0].startswith("org/ns/other/")
        assert ctl(capsys, *nsrv, "route", "del", "org/ns/other", "via", "L1")[0] == 0
        code, out, _ = ctl(capsys, *nsrv, "-o", "json", "node", "route", "list")
        assert json.loads(out) == []
    finally:
        lt.run(ag.stop())
        for server in servers:
            lt.run(server.close(grace=1.0))
        lt.close()


def test_controller_usage_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLIMWIRE_CONTROLLER_BASIC_AUTH"}
    r = subprocess.run(
        [sys.executable, "-m", "slimwire", "controller", "--db", str(tmp_path / "x.db")],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert r.returncode == 2
    assert "needs credentials" in r.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("database: {type: mongo}\n")
    r = subprocess.run(
        [sys.executable, "-m", "slimwire", "controller", "--config", str(cfg), "--no-auth"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert r.returncode == 2
    assert "database.type" in r.stderr


def test_controller_restart_keeps_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "keep.db"
    c = Controller(db)
    try:
        srv = ["--server", f"127.0.0.1:{c.north}", "-b", AUTH]
        assert ctl(capsys, *srv, "domain", "add", "dx", "y" * 32)[0] == 0
        assert ctl(capsys, *srv, "link", "add", "dx", "dy", "--segment", "east")[0] == 0
    finally:
        assert c.stop() == 0
    c = Controller(db)
    try:
        srv = ["--server", f"127.0.0.1:{c.north}", "-b", AUTH]
        code, out, _ = ctl(capsys, *srv, "-o", "json", "domain", "list")
        assert code == 0
        assert json.loads(out) == [{"domain": "dx", "nodes": []}]
        _code, out, _ = ctl(capsys, *srv, "-o", "json", "segment", "list")
        assert json.loads(out)[0]["name"] == "east"
    finally:
        assert c.stop() == 0
