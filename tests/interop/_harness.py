"""Process management for the interop tests: nodes and apps, each in its own subprocess.

The reference's Rust runtime is global per process, so every reference role (a node, an app) is a
separate process: ``_ref_node.py`` and ``_ref_app.py`` beside this file. Our own node runs as
``python3 -m slimwire node --listen HOST:PORT``. Everything here starts processes, waits for them
to say they are ready, collects their JSON reports, and stops them **by PID** (SIGTERM, then
SIGKILL after a grace period); every wait has a timeout, so a test always ends by itself.

Node kinds are a test parameter (``node_kind in node_kinds()``): the reference node and, behind
the one-line flag ``SLIMWIRE_NODE_ENABLED`` below (on), ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REF_NODE_SCRIPT = HERE / "_ref_node.py"
REF_APP_SCRIPT = HERE / "_ref_app.py"

#: Switch the "slimwire" node parametrization on (one line) once ``slimwire node`` has landed.
#: While it is off, only the reference node is tested; when on, a broken slimwire node fails.
SLIMWIRE_NODE_ENABLED = True

#: Whether the slimwire node accepts reference peer links (subscription sync, section 2.7 of
#: slim-wire.md); needed for chains reference node -> slimwire node -> reference node.
SLIMWIRE_PEER_LINKS_ENABLED = True

#: Log level of the reference processes (Rust tracing), e.g. INTEROP_REF_LOG=debug to dig into one.
REF_LOG_LEVEL = os.environ.get("INTEROP_REF_LOG", "info")
REF_NODE_LOG_LEVEL = os.environ.get("INTEROP_REF_NODE_LOG", REF_LOG_LEVEL)  # nodes only

NODE_START_TIMEOUT = 20.0  # seconds; a reference node is up in ~0.1 s, but the box is shared
NODE_STOP_GRACE = 5.0
APP_TIMEOUT = 30.0  # each app's own deadline (it reports and exits by itself)
SCENARIO_CAP = 60.0  # hard cap on one scenario, after which stragglers are killed


def node_kinds() -> tuple[str, ...]:
    """The node implementations every interop scenario runs against."""
    return ("reference", "slimwire") if SLIMWIRE_NODE_ENABLED else ("reference",)


def chain_middle_kinds() -> tuple[str, ...]:
    """Node kinds that can sit between two reference nodes joined by peer links."""
    if SLIMWIRE_NODE_ENABLED and SLIMWIRE_PEER_LINKS_ENABLED:
        return ("reference", "slimwire")
    return ("reference",)


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    """The end of a log file, without ANSI colours, for assertion messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "\n".join(text.splitlines()[-lines:])


def stop_pid_process(proc: subprocess.Popen[bytes], grace: float = NODE_STOP_GRACE) -> int:
    """SIGTERM by PID, then SIGKILL after ``grace`` seconds; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    return int(proc.returncode)


# ---------------------------------------------------------------------------------------------
# nodes


@dataclass(frozen=True)
class NodeInfo:
    """A running node: what tests need to connect to it and to explain failures."""

    kind: str
    endpoint: str
    pid: int
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)


class NodeExited(RuntimeError):
    """A node process ended before it said it was ready."""


@contextlib.contextmanager
def with_node_logs(*nodes: NodeInfo, lines: int = 25) -> Iterator[None]:
    """Add the tails of these nodes' logs to an assertion failure raised inside the block: a
    scenario that fails is often explained by what the node under test logged."""
    try:
        yield
    except AssertionError as exc:
        alive = {n.pid: _pid_alive(n.pid) for n in nodes}
        tails = "\n".join(
            f"--- {n.kind} node {n.endpoint} (pid {n.pid}, "
            f"{'running' if alive[n.pid] else 'EXITED'}):\n{n.log_tail(lines)}"
            for n in nodes
        )
        raise AssertionError(f"{exc}\n{tails}") from None


def _pid_alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class _NodeProcess:
    """A node subprocess whose output is copied to a log file while we look for readiness."""

    def __init__(self, argv: list[str], kind: str, log: Path, merge_stderr: bool) -> None:
        self.kind = kind
        self.log = log
        self._ready = threading.Event()
        self._ready_line: str | None = None
        self._log_file: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else self._log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"},
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self._log_file.write(raw)
            self._log_file.flush()
            line = raw.decode(errors="replace")
            if not self._ready.is_set() and self._is_ready(line):
                self._ready_line = line
                self._ready.set()
        self._ready.set()  # EOF: wake the waiter, which then sees the exit

    def _is_ready(self, line: str) -> bool:
        if self.kind == "reference":
            return line.startswith("{") and '"event": "ready"' in line
        return re.search(r"\bready\b", line, re.IGNORECASE) is not None

    def wait_ready(self, timeout: float) -> str:
        woke = self._ready.wait(timeout)
        if woke and self._ready_line is not None:
            return self._ready_line
        code = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            # woken by EOF: the process is exiting, give it a moment to be reaped
            code = self.proc.wait(timeout=NODE_STOP_GRACE if woke else 0.01)
        self.stop()
        if code is not None:
            raise NodeExited(f"{self.kind} node exited with {code}; log:\n{tail(self.log)}")
        raise RuntimeError(f"{self.kind} node not ready after {timeout:.0f} s:\n{tail(self.log)}")

    def stop(self) -> None:
        stop_pid_process(self.proc)
        self._reader.join(timeout=NODE_STOP_GRACE)
        self._log_file.close()


def _reference_argv(
    links: Sequence[str], link_type: str, node_id: str | None, config_dir: Path
) -> list[str]:
    argv = [sys.executable, str(REF_NODE_SCRIPT), "--log-level", REF_NODE_LOG_LEVEL]
    argv += ["--config-dir", str(config_dir)]  # the node's YAML stays beside its log
    if node_id:
        argv += ["--node-id", node_id]
    for link in links:
        argv += ["--link", link]
    if links:
        argv += ["--link-type", link_type]
    return argv


@contextlib.contextmanager
def reference_node(
    log_dir: Path,
    *,
    links: Sequence[str] = (),
    link_type: str = "peer",
    node_id: str | None = None,
) -> Iterator[NodeInfo]:
    """Start a reference node on a free loopback port; yield it; stop it by PID.

    ``links`` are endpoints of nodes that are already up; the new node dials each of them at
    start-up with a static link of ``link_type`` ("peer" carries subscriptions, see
    ``_ref_node.py``).
    """
    node_id = node_id or f"ref-{uuid.uuid4().hex[:8]}"
    log = log_dir / f"node-{node_id}.log"
    node = _NodeProcess(
        _reference_argv(links, link_type, node_id, log_dir), "reference", log, False
    )
    try:
        ready = json.loads(node.wait_ready(NODE_START_TIMEOUT))
        yield NodeInfo("reference", str(ready["endpoint"]), node.proc.pid, log)
    finally:
        node.stop()


@contextlib.contextmanager
def slimwire_node(log_dir: Path, *, extra_args: Sequence[str] = ()) -> Iterator[NodeInfo]:
    """Start ``python3 -m slimwire node --listen 127.0.0.1:PORT``; yield it; stop it by PID.

    The port is picked here, so another process may take it before the node binds: a node that
    exits before it is ready is started again on a new port (twice at most)."""
    for attempt in range(3):
        port = free_port()
        log = log_dir / f"node-slimwire-{port}.log"
        argv = [sys.executable, "-m", "slimwire", "node", "--listen", f"127.0.0.1:{port}"]
        node = _NodeProcess([*argv, *extra_args], "slimwire", log, True)
        try:
            node.wait_ready(NODE_START_TIMEOUT)
        except NodeExited:
            if attempt == 2:
                raise
            continue
        break
    try:
        yield NodeInfo("slimwire", f"http://127.0.0.1:{port}", node.proc.pid, log)
    finally:
        node.stop()


@contextlib.contextmanager
def start_node(kind: str, log_dir: Path) -> Iterator[NodeInfo]:
    """A node of either kind, with no static links."""
    if kind == "reference":
        with reference_node(log_dir) as node:
            yield node
    elif kind == "slimwire":
        with slimwire_node(log_dir) as node:
            yield node
    else:
        raise ValueError(f"unknown node kind {kind!r}")


@dataclass(frozen=True)
class Star:
    """A hub node and reference nodes that each dial it with a static peer link."""

    hub: NodeInfo
    spokes: tuple[NodeInfo, ...]


@contextlib.contextmanager
def star(hub_kind: str, log_dir: Path, *, spokes: int = 2) -> Iterator[Star]:
    """``spokes`` reference nodes -> hub: with two spokes, the chain reference node -> hub ->
    reference node. The hub starts first (links are dialled at start-up)."""
    with start_node(hub_kind, log_dir) as hub, contextlib.ExitStack() as stack:
        ends = [
            stack.enter_context(reference_node(log_dir, links=[hub.endpoint], link_type="peer"))
            for _ in range(spokes)
        ]
        yield Star(hub, tuple(ends))


@contextlib.asynccontextmanager
async def start_node_async(kind: str, log_dir: Path) -> AsyncIterator[NodeInfo]:
    """``start_node`` for async tests: the blocking start and stop run in a worker thread."""
    cm = start_node(kind, log_dir)
    node = await asyncio.to_thread(cm.__enter__)
    try:
        yield node
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


# ---------------------------------------------------------------------------------------------
# apps


@dataclass(frozen=True)
class AppSpec:
    """One reference app of a scenario: its role, name, node and role-specific flags."""

    role: str
    name: str
    endpoint: str
    flags: tuple[str, ...] = ()
    timeout: float = APP_TIMEOUT

    def argv(self) -> list[str]:
        return [
            sys.executable,
            str(REF_APP_SCRIPT),
            "--role",
            self.role,
            "--name",
            self.name,
            "--endpoint",
            self.endpoint,
            "--timeout",
            str(self.timeout),
            "--log-level",
            REF_LOG_LEVEL,
            *self.flags,
        ]


@dataclass(frozen=True)
class AppResult:
    """What an app reported (its ``result`` JSON line), with its exit code and log."""

    spec: AppSpec
    returncode: int | None
    report: dict[str, Any]
    log: Path
    events: tuple[dict[str, Any], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return bool(self.report.get("ok")) and self.returncode == 0

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def explain(self) -> str:
        """Everything needed to understand a failure, for assertion messages."""
        report = json.dumps(self.report, indent=1, sort_keys=True)[:4000]
        return (
            f"{self.spec.role} {self.spec.name} (rc={self.returncode}) reported:\n{report}\n"
            f"log tail:\n{tail(self.log, 20)}"
        )


class AppProcess:
    """One reference app subprocess (``_ref_app.py``): start it, await ``ready``/``done``, read
    its JSON ``events``, take its ``result()``; ``stop()`` kills it by PID if still running."""

    def __init__(self, spec: AppSpec, log_dir: Path) -> None:
        self.spec = spec
        safe = spec.name.replace("/", "_")
        self.log = log_dir / f"app-{safe}-{uuid.uuid4().hex[:6]}.log"
        self.events: list[dict[str, Any]] = []
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with self.log.open("wb") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                *self.spec.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"},
            )
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                if not line.startswith("{"):
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                self.events.append(event)
                if event.get("event") in ("ready", "result"):
                    self.ready.set()
            await self.proc.wait()
        finally:
            self.ready.set()
            self.done.set()

    async def stop(self) -> None:
        """Kill by PID if it is still running (it should have exited by its own deadline)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), NODE_STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, NODE_STOP_GRACE)

    def result(self) -> AppResult:
        reports = [e for e in self.events if e.get("event") == "result"]
        report = reports[-1] if reports else {"ok": False, "error": "no result reported"}
        code = self.proc.returncode if self.proc is not None else None
        return AppResult(self.spec, code, report, self.log, tuple(self.events))


async def run_apps(
    log_dir: Path,
    first: Sequence[AppSpec],
    then: Sequence[AppSpec],
    *,
    cap: float = SCENARIO_CAP,
) -> dict[str, AppResult]:
    """Run one scenario: start ``first`` (listeners), wait until each is connected and
    subscribed, start ``then`` (initiators), and wait for every report. All apps of a group run
    in parallel. Returns the results keyed by app name; never raises for an app's failure."""
    apps = [AppProcess(spec, log_dir) for spec in (*first, *then)]
    names = [a.spec.name for a in apps]
    assert len(set(names)) == len(names), f"app names must be unique: {names}"
    end = time.monotonic() + cap

    def left() -> float:
        return max(0.1, end - time.monotonic())

    try:
        listeners, initiators = apps[: len(first)], apps[len(first) :]
        await asyncio.gather(*(a.start() for a in listeners))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(a.ready.wait() for a in listeners)), left())
        await asyncio.gather(*(a.start() for a in initiators))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(a.done.wait() for a in apps)), left())
    finally:
        await asyncio.gather(*(a.stop() for a in apps))
    return {a.spec.name: a.result() for a in apps}


_App = AppProcess  # the name other test modules imported first


def unique(prefix: str) -> str:
    """A name component that no other test uses (tests may share one node)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
