"""Run a node for tests and tools: in-process (:func:`run_node`) or as a subprocess
(:class:`NodeProcess`), always on a free loopback port unless told otherwise.

The subprocess form runs ``python -m slimwire node --listen HOST:0`` and reads the bound port from
its one ``slimwire node ready on ...`` line, so parallel tests never race for ports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

from slimwire.config import NodeConfig, ServerConfig
from slimwire.errors import SlimwireError, SlimwireTimeout

from ._node import Node

__all__ = ["READY_RE", "NodeProcess", "run_node"]

READY_RE = re.compile(r"slimwire node ready on (\S+):(\d+)\b")
"""The ready line the CLI logs; group 1 is the host, group 2 the bound port."""


@contextlib.asynccontextmanager
async def run_node(
    config: NodeConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    node_id: str | None = None,
    require_header_mac: bool = True,
    links: Sequence[str] = (),
    **overrides: object,
) -> AsyncIterator[Node]:
    """``async with run_node() as node:`` a node on ``host:port`` (port 0: a free one).

    Without ``config`` one h2c server is configured from ``host``/``port``/
    ``require_header_mac``; ``overrides`` replace :class:`NodeConfig` fields; ``links`` are
    dialled as remote links. ``node.url`` is what clients connect to.
    """
    if config is None:
        server = ServerConfig(host=host, port=port, require_header_mac=require_header_mac)
        config = NodeConfig(servers=(server,))
    if node_id is not None:
        overrides["node_id"] = node_id
    if overrides:
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    async with Node(config) as node:
        for url in links:
            await node.add_link(url)
        yield node


class NodeProcess:
    """``slimwire node`` in a subprocess: ``with NodeProcess() as p: ... p.url``.

    ``args`` are extra CLI arguments (``--config``, ``--link``...). ``start`` waits up to
    ``timeout`` seconds for the ready line; ``stop`` sends SIGTERM and waits, then SIGKILLs
    (only this process, by its PID). Everything the node logged is in :attr:`output`.
    """

    def __init__(
        self,
        *args: str,
        listen: str = "127.0.0.1:0",
        env: dict[str, str] | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.args = [sys.executable, "-m", "slimwire", "node", "--listen", listen, *args]
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = ""
        self.port = 0
        self.output: list[str] = []

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"<NodeProcess pid={pid} port={self.port}>"

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("node process not started")
        return self.proc.pid

    def start(self) -> NodeProcess:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + self.timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            buf = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    raise SlimwireTimeout(f"node not ready after {self.timeout}s: {self.output}")
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                if not chunk:
                    self.stop()
                    raise SlimwireError(f"node exited before ready: {self.output}")
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    self.output.append(line)
                    m = READY_RE.search(line)
                    if m:
                        self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
                        os.set_blocking(self.proc.stderr.fileno(), False)
                        return self

    def _collect(self) -> None:
        if self.proc is None or self.proc.stderr is None:
            return
        with contextlib.suppress(OSError, ValueError):
            data = self.proc.stderr.read() or b""
            self.output.extend(data.decode(errors="replace").splitlines())

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout``, SIGKILL if needed; returns the exit code."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            os.set_blocking(proc.stderr.fileno(), True)
            self._collect()
            proc.stderr.close()
        return proc.returncode

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
