"""A controller and slimwire nodes as real processes (``slimwire controller`` / ``slimwire node
--config``), for the control plane's acceptance tests. Every process is ours, stopped by PID."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slimwire._proto import controlplane_pb2 as npb
from slimwire.control._controller import CONTROL_PLANE_SERVICE
from slimwire.transport import connect

SECRETS = {
    "da": "domain-a-registration-secret-0123456789",
    "db": "domain-b-registration-secret-0123456789",
}
APP_SECRET = "acceptance-app-shared-secret-0123456789abcdef"
USER, PASSWORD = "admin", "acceptance-pw"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def until(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``pred`` (sync or async) until true."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                got = pred()
                if asyncio.iscoroutine(got):
                    got = await got
                if got:
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or pred}") from None


class Proc:
    """A child process with its output in a file (never a pipe that could fill up)."""

    def __init__(self, argv: Sequence[str], log: Path, prefix: Sequence[str] = ()) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "slimwire", *argv],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.log.name} exited:\n{self.text()[-3000:]}")
            m = re.search(pattern, self.text())
            if m:
                found.append(m)
            return bool(m)

        await until(seen, timeout, f"{pattern!r} in {self.log.name}")
        return found[0]

    def kill(self) -> None:
        """SIGKILL: the failure case (no goodbye on any link)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()


def controller_yaml(db: Path, south: str, north: str) -> str:
    secrets = ", ".join(f"{d}: {s!r}" for d, s in SECRETS.items())
    return f"""
northbound:
  endpoint: "{north}"
  basic_auth: {{username: {USER}, password: {PASSWORD}}}
southbound: {{endpoint: "{south}"}}
database: {{type: sqlite, path: "{db}"}}
topology:
  links: [{{domain: da, neighbors: [db]}}]
  registration_auth: {{type: shared_secret, secrets: {{{secrets}}}}}
"""


def node_yaml(
    node_id: str, domain: str, listen: str, controller: str, external: str = "", extra: str = ""
) -> str:
    meta = f', metadata: {{external_endpoint: "{external}"}}' if external else ""
    meta += f", {extra}" if extra else ""
    return f"""
tracing: {{log_level: info}}
services:
  slim/0:
    node_id: {node_id}
    domain_name: {domain}
    auth: {{type: shared_secret, secret: {SECRETS[domain]!r}}}
    dataplane:
      servers: [{{endpoint: "{listen}", tls: {{insecure: true}}{meta}}}]
    controller:
      clients: [{{endpoint: "{controller}", tls: {{insecure: true}}}}]
"""


class ControllerProc(Proc):
    def __init__(
        self,
        workdir: Path,
        south: str,
        north: str,
        prefix: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> None:
        cfg = workdir / "controller.yaml"
        cfg.write_text(controller_yaml(workdir / "controller.db", south, north))
        n = len(list(workdir.glob("controller*.log")))  # a fresh log per start
        super().__init__(
            ["controller", "--config", str(cfg), *extra], workdir / f"controller{n}.log", prefix
        )
        self.north = north
        self.last_error: Exception | None = None

    async def ready(self) -> None:
        await self.wait_line(r"controller listening southbound=\d+")

    async def _stream(self, method: str, req: Any, resp: type[Any]) -> list[Any]:
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        async with asyncio.timeout(5), await connect(f"http://{self.north}") as ch:
            return [
                resp.FromString(m)
                async for m in ch.server_stream(
                    CONTROL_PLANE_SERVICE + method,
                    req.SerializeToString(),
                    headers=[("authorization", f"Basic {auth}")],
                )
            ]

    async def nodes(self) -> dict[str, int]:
        """node id -> status (1 connected, 2 not connected); {} while unreachable."""
        try:
            entries = await self._stream("ListNodes", npb.NodeListRequest(), npb.NodeEntry)
        except Exception as exc:
            self.last_error = exc
            return {}
        return {e.id: e.status for e in entries}

    async def links(self) -> list[tuple[str, str, int]]:
        """(source, destination, status) of the links not deleted."""
        with contextlib.suppress(Exception):
            entries = await self._stream("ListLinks", npb.LinkListRequest(), npb.LinkEntry)
            return sorted(
                (e.source_node_id, e.dest_node_id, e.status) for e in entries if not e.deleted
            )
        return []


class NodeProc(Proc):
    def __init__(
        self,
        workdir: Path,
        node_id: str,
        domain: str,
        controller: str,
        *,
        listen: str = "127.0.0.1:0",
        external: str = "",
        server_extra: str = "",
        prefix: Sequence[str] = (),
    ) -> None:
        cfg = workdir / f"{node_id}.yaml"
        cfg.write_text(node_yaml(node_id, domain, listen, controller, external, server_extra))
        super().__init__(["node", "--config", str(cfg)], workdir / f"{node_id}.log", prefix)
        self.node_id = node_id
        self.host = listen.rpartition(":")[0]
        self.port = 0

    async def ready(self) -> None:
        m = await self.wait_line(r"slimwire node ready on \[?[^\s\]]*\]?:(\d+)")
        self.port = int(m[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def stop_all(procs: Sequence[Proc]) -> None:
    for p in procs:
        with contextlib.suppress(Exception):
            p.stop()


def monotonic() -> float:
    return time.monotonic()
