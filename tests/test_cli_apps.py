"""``slimwire listen`` and ``slimwire send`` as subprocesses, against our node and a reference node.

Each command runs exactly as a user runs it (``python -m slimwire ...``), and the tests check
the command-line contract: stdout carries only payloads, one per line; status goes to stderr;
errors exit non-zero with one clear line. Nodes come from the interop harness (one per module
and node kind); every process has its own deadline and is stopped by PID if it overstays.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop._harness import (
    AppProcess,
    AppSpec,
    NodeInfo,
    free_port,
    node_kinds,
    start_node,
    unique,
)
from tests.interop._ref_app import DEFAULT_SECRET

pytestmark = pytest.mark.timeout(120)

SECRET = DEFAULT_SECRET  # the reference apps of the interop harness use this one
PROC_CAP = 40.0  # no command may run longer than this


@dataclass(frozen=True)
class Done:
    code: int
    stdout: bytes
    stderr: str

    def explain(self) -> str:
        return f"rc={self.code}\nstdout={self.stdout!r}\nstderr:\n{self.stderr}"


class Cli:
    """One ``python -m slimwire <command>`` subprocess; stderr is read line by line as it runs."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.err_lines: list[str] = []
        self._ready = asyncio.Event()
        self._stderr_task = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(
        cls, *argv: str, secret_env: str | None = SECRET, stdin: bytes | None = None
    ) -> Cli:
        env = {k: v for k, v in os.environ.items() if k != "SLIMWIRE_SECRET"}
        if secret_env is not None:
            env["SLIMWIRE_SECRET"] = secret_env
        env["PYTHONUNBUFFERED"] = "1"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "slimwire",
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            await proc.stdin.drain()
            proc.stdin.close()
        return cls(proc)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.err_lines.append(line)
            if "ready" in line:
                self._ready.set()
        self._ready.set()

    async def ready(self, timeout: float = 20.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)
        assert self.proc.returncode is None or self.proc.returncode == 0, "\n".join(self.err_lines)
        assert any("ready" in line for line in self.err_lines), "\n".join(self.err_lines)

    async def finish(self, timeout: float = PROC_CAP) -> Done:
        """Wait for the exit (killing by PID after ``timeout``) and collect the output."""
        assert self.proc.stdout is not None
        try:
            out = await asyncio.wait_for(self.proc.stdout.read(), timeout)
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()
            out = b""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stderr_task, 5.0)
        code = self.proc.returncode
        assert code is not None
        return Done(code, out, "\n".join(self.err_lines))

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


@contextlib.asynccontextmanager
async def cli(*argv: str, **kw: object) -> AsyncIterator[Cli]:
    proc = await Cli.start(*argv, **kw)  # type: ignore[arg-type]
    try:
        yield proc
    finally:
        await proc.kill()


async def run_cli(*argv: str, **kw: object) -> Done:
    async with cli(*argv, **kw) as proc:
        return await proc.finish()


@pytest.fixture(scope="module", params=node_kinds())
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeInfo]:
    with start_node(str(request.param), tmp_path_factory.mktemp("cli-apps")) as info:
        yield info


def names() -> tuple[str, str]:
    return f"org/ns/{unique('bob')}", f"org/ns/{unique('alice')}"


def lines(payloads: Sequence[str]) -> bytes:
    return b"".join(p.encode() + b"\n" for p in payloads)


# ---------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("reliable", [False, True], ids=["best-effort", "reliable"])
async def test_listen_echo_send_expect_reply(node: NodeInfo, reliable: bool) -> None:
    bob, alice = names()
    payloads = ["hello", "second message", "x" * 300]
    flags = ("--reliable",) if reliable else ()
    async with cli(
        "listen", "--endpoint", node.endpoint, "--name", bob, "--echo", "--count", "3"
    ) as listener:
        await listener.ready()
        # the sender passes the secret on the command line instead of the environment
        sent = await run_cli(
            "send",
            "--endpoint",
            node.endpoint,
            "--name",
            alice,
            "--secret",
            SECRET,
            "--to",
            bob,
            "--expect-reply",
            *flags,
            *payloads,
            secret_env=None,
        )
        heard = await listener.finish()
    assert sent.code == 0, sent.explain()
    assert sent.stdout == lines(payloads), sent.explain()  # replies only, in order
    assert heard.code == 0, heard.explain()
    assert heard.stdout == lines(payloads), heard.explain()
    assert "accepted" in heard.stderr
    assert "received 3" in heard.stderr


async def test_listen_exits_after_count_and_send_reads_stdin(node: NodeInfo) -> None:
    bob, alice = names()
    async with cli("listen", "--endpoint", node.endpoint, "--name", bob, "--count", "2") as lis:
        await lis.ready()
        sent = await run_cli(
            "send",
            "--endpoint",
            node.endpoint,
            "--name",
            alice,
            "--to",
            bob,
            "--reliable",
            stdin=b"one\ntwo\n",
        )
        heard = await lis.finish()
    assert sent.code == 0, sent.explain()
    assert sent.stdout == b"", sent.explain()  # no --expect-reply: nothing on stdout
    assert heard.code == 0, heard.explain()
    assert heard.stdout == b"one\ntwo\n", heard.explain()


async def test_listen_serves_several_senders(node: NodeInfo) -> None:
    bob, _ = names()
    async with cli(
        "listen", "--endpoint", node.endpoint, "--name", bob, "--echo", "--count", "4"
    ) as lis:
        await lis.ready()
        results = await asyncio.gather(
            *(
                run_cli(
                    "send",
                    "--endpoint",
                    node.endpoint,
                    "--name",
                    f"org/ns/{unique(f'sender{i}')}",
                    "--to",
                    bob,
                    "--reliable",
                    "--expect-reply",
                    f"from-{i}-a",
                    f"from-{i}-b",
                )
                for i in range(2)
            )
        )
        heard = await lis.finish()
    for i, done in enumerate(results):
        assert done.code == 0, done.explain()
        assert done.stdout == lines([f"from-{i}-a", f"from-{i}-b"]), done.explain()
    assert heard.code == 0, heard.explain()
    assert sorted(heard.stdout.splitlines()) == sorted(
        f"from-{i}-{x}".encode() for i in range(2) for x in "ab"
    )


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_send_to_reference_responder(node: NodeInfo, tmp_path: Path, mls: bool) -> None:
    """Our ``send`` against a reference app (slim-bindings) that echoes ``echo:<request>``."""
    peer, alice = names()
    count = 3
    flags = ("--count", str(count), "--reliable", *(["--mls"] * mls))
    spec = AppSpec("p2p-responder", peer, node.endpoint, flags, timeout=30)
    ref = AppProcess(spec, tmp_path)
    await ref.start()
    try:
        await asyncio.wait_for(ref.ready.wait(), 20)
        requests = [f"req-{i}-0" for i in range(count)]
        sent = await run_cli(
            "send",
            "--endpoint",
            node.endpoint,
            "--name",
            alice,
            "--to",
            peer,
            "--reliable",
            "--expect-reply",
            *(["--mls"] * mls),
            *requests,
        )
        await asyncio.wait_for(ref.done.wait(), 30)
    finally:
        await ref.stop()
    assert sent.code == 0, sent.explain()
    assert sent.stdout == lines([f"echo:{r}" for r in requests]), sent.explain()
    result = ref.result()
    assert result.ok, result.explain()
    assert [r["payload"] for r in result["received"]] == requests
    # the reference tags what it decrypted from an MLS peer with the sender's subject
    assert all(("slim-peer-subject" in r["metadata"]) is mls for r in result["received"])
    assert result["closed_by_peer"] is True


async def test_mls(node: NodeInfo) -> None:
    """An MLS-encrypted point-to-point round trip between our two commands."""
    bob, alice = names()
    send_argv = ("send", "--endpoint", node.endpoint, "--name", alice, "--to", bob)
    async with cli(
        "listen", "--endpoint", node.endpoint, "--name", bob, "--echo", "--count", "2"
    ) as lis:
        await lis.ready()
        sent = await run_cli(*send_argv, "--mls", "--reliable", "--expect-reply", "s1", "s2")
        heard = await lis.finish()
    assert sent.code == 0, sent.explain()
    assert sent.stdout == b"s1\ns2\n"
    assert heard.code == 0, heard.explain()
    assert heard.stdout == b"s1\ns2\n"


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("command", ["listen", "send"])
async def test_short_secret_is_refused_before_connecting(command: str) -> None:
    port = free_port()  # nothing listens: the secret must be rejected first
    argv = [command, "--endpoint", f"http://127.0.0.1:{port}", "--name", "org/ns/a"]
    if command == "send":
        argv += ["--to", "org/ns/b", "hi"]
    done = await run_cli(*argv, "--secret", "x" * 31, secret_env=None)
    assert done.code == 2, done.explain()
    assert "secret is too short: 31 bytes, at least 32" in done.stderr
    assert done.stdout == b""
    from_env = await run_cli(*argv, secret_env="short-secret")
    assert from_env.code == 2, from_env.explain()
    assert "too short" in from_env.stderr


async def test_missing_secret() -> None:
    done = await run_cli("send", "--name", "org/ns/a", "--to", "org/ns/b", "hi", secret_env=None)
    assert done.code == 2, done.explain()
    assert "SLIMWIRE_SECRET" in done.stderr


async def test_bad_name() -> None:
    done = await run_cli("send", "--name", "org/ns/a", "--to", "just-one-part", "hi")
    assert done.code == 2, done.explain()
    assert "--to" in done.stderr
    assert "org/namespace/service" in done.stderr


@pytest.mark.parametrize("command", ["listen", "send"])
async def test_unreachable_endpoint(command: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    argv = [command, "--endpoint", endpoint, "--name", "org/ns/a", "--timeout", "5"]
    if command == "send":
        argv += ["--to", "org/ns/b", "hi"]
    done = await run_cli(*argv)
    assert done.code == 1, done.explain()
    assert f"cannot connect to {endpoint}" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == b""


async def test_send_to_nobody_times_out(node: NodeInfo) -> None:
    _, alice = names()
    nobody = f"org/ns/{unique('nobody')}"
    done = await run_cli(
        "send", "--endpoint", node.endpoint, "--name", alice, "--to", nobody, "--timeout", "2", "x"
    )
    assert done.code == 1, done.explain()
    assert f"no session with {nobody}" in done.stderr
    assert done.stdout == b""


async def test_expect_reply_from_silent_listener(node: NodeInfo) -> None:
    """A listener without --echo never answers: send fails on its reply timeout; and when the
    listener leaves (its --count reached) while a reply is awaited, send says so at once."""
    bob, alice = names()
    send = ("send", "--endpoint", node.endpoint, "--name", alice, "--to", bob, "--expect-reply")
    async with cli("listen", "--endpoint", node.endpoint, "--name", bob, "--count", "2") as lis:
        await lis.ready()
        waited = await run_cli(*send, "--timeout", "2", "anyone?")
        left = await run_cli(*send, "--timeout", "30", "still there?")
        heard = await lis.finish()
    assert waited.code == 1, waited.explain()
    assert f"no reply to message 1 from {bob} in 2s" in waited.stderr
    assert left.code == 1, left.explain()
    assert f"no reply to message 1 from {bob}: " in left.stderr
    assert "closed" in left.stderr
    assert heard.code == 0, heard.explain()
    assert heard.stdout == b"anyone?\nstill there?\n"


async def test_listen_idle_timeout_and_sigterm(node: NodeInfo) -> None:
    bob, _ = names()
    idle = await run_cli(
        "listen", "--endpoint", node.endpoint, "--name", bob, "--idle-timeout", "1"
    )
    assert idle.code == 1, idle.explain()
    assert "no message in 1s" in idle.stderr
    async with cli("listen", "--endpoint", node.endpoint, "--name", bob) as lis:
        await lis.ready()
        os.kill(lis.proc.pid, signal.SIGTERM)
        done = await lis.finish(timeout=15)
    assert done.code == 128 + signal.SIGTERM, done.explain()
    assert "stopped" in done.stderr


# ---------------------------------------------------------------------------------------------
# groups


async def test_group_with_echoing_listeners(node: NodeInfo) -> None:
    """Two ``listen --echo`` members: each gets every group message, and each echo goes to
    the moderator only (the moderator gets two copies of each, the members none of the
    other member's echoes)."""
    members = [f"org/ns/{unique(f'member{i}')}" for i in range(2)]
    channel = f"org/ns/{unique('chat')}"
    async with contextlib.AsyncExitStack() as stack:
        listeners = [
            await stack.enter_async_context(
                cli("listen", "--endpoint", node.endpoint, "--name", m, "--echo", "--count", "2")
            )
            for m in members
        ]
        for lis in listeners:
            await lis.ready()
        invites = [arg for m in members for arg in ("--invite", m)]
        moderated = await run_cli(
            "group", "--endpoint", node.endpoint, "--name", f"org/ns/{unique('mod')}",
            "--channel", channel, *invites, "--reliable", "--count", "4", "one", "two",
        )  # fmt: skip
        heard = [await lis.finish() for lis in listeners]
    assert moderated.code == 0, moderated.explain()
    assert sorted(moderated.stdout.splitlines()) == [b"one", b"one", b"two", b"two"]
    assert "joined" in moderated.stderr
    for done in heard:
        assert done.code == 0, done.explain()
        assert done.stdout == b"one\ntwo\n", done.explain()


async def test_group_invite_of_nobody_fails(node: NodeInfo) -> None:
    nobody = f"org/ns/{unique('nobody')}"
    done = await run_cli(
        "group", "--endpoint", node.endpoint, "--name", f"org/ns/{unique('mod')}",
        "--channel", f"org/ns/{unique('chat')}", "--invite", nobody, "--timeout", "3", "hi",
    )  # fmt: skip
    assert done.code == 1, done.explain()
    assert f"inviting {nobody}" in done.stderr
    assert done.stdout == b""


@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_group_with_reference_participants(node: NodeInfo, tmp_path: Path, mls: bool) -> None:
    """Our ``group`` moderating reference apps (slim-bindings): each answers ``start from X``
    with ``phase1 from <itself>`` to the whole group, and sees the group closed at the end."""
    mod = f"org/ns/{unique('mod')}"
    parts = [f"org/ns/{unique(f'refp{i}')}" for i in range(2)]
    refs = [
        AppProcess(
            AppSpec("group-participant", p, node.endpoint, ("--moderator", mod), timeout=30),
            tmp_path,
        )
        for p in parts
    ]
    try:
        for ref in refs:
            await ref.start()
        for ref in refs:
            await asyncio.wait_for(ref.ready.wait(), 20)
        invites = [arg for p in parts for arg in ("--invite", p)]
        done = await run_cli(
            "group", "--endpoint", node.endpoint, "--name", mod,
            "--channel", f"org/ns/{unique('chat')}", *invites, *(["--mls"] * mls),
            "--count", "2", f"start from {mod}",
        )  # fmt: skip
        for ref in refs:
            await asyncio.wait_for(ref.done.wait(), 30)
    finally:
        for ref in refs:
            await ref.stop()
    assert done.code == 0, done.explain()
    assert sorted(done.stdout.splitlines()) == sorted(f"phase1 from {p}".encode() for p in parts)
    for ref in refs:
        result = ref.result()
        assert result.ok, result.explain()
        assert result["closed"] is True
        assert mod in result["phase1"]


async def test_group_mls(node: NodeInfo) -> None:
    """An MLS group: the member decrypts the moderator's message, the echo comes back."""
    member = f"org/ns/{unique('member')}"
    argv = ("group", "--endpoint", node.endpoint, "--name", f"org/ns/{unique('mod')}",
            "--channel", f"org/ns/{unique('chat')}", "--invite", member, "--mls")  # fmt: skip
    async with cli("listen", "--endpoint", node.endpoint, "--name", member, "--echo",
                   "--count", "1") as lis:  # fmt: skip
        await lis.ready()
        done = await run_cli(*argv, "--count", "1", "sealed")
        heard = await lis.finish()
    assert done.code == 0, done.explain()
    assert done.stdout == b"sealed\n"
    assert heard.stdout == b"sealed\n"
