"""Acceptance over a real network: the controller and four slimwire nodes each in its own
network namespace, all joined by veth links to a bridge in a "switch" namespace (10.77.0.0/24,
inside the namespaces only). Apps run in threads that entered a node's namespace. Setting the
domain-a gateway's veth down (no goodbye, no RST: the HTTP/2 keepalives find out) makes the
controller move the role and re-link, and the reliable session loses nothing.

The test owns every namespace it creates and deletes them at the end, even on failure; it is
skipped (saying why) where namespaces cannot be created."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from slimwire.client import connect
from tests.control._cluster import APP_SECRET, ControllerProc, NodeProc, Proc, stop_all

pytestmark = pytest.mark.timeout(240)

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
NODES = (("a1", "da"), ("b1", "db"), ("a2", "da"), ("b2", "db"))
ADDR = {"ctl": "10.77.0.1", "a1": "10.77.0.11", "b1": "10.77.0.21", "a2": "10.77.0.12",
        "b2": "10.77.0.22"}  # fmt: skip
PORT = 46357
# the dataplane's HTTP/2 keepalive, short so that a silent peer is found out quickly
KEEPALIVE = "keepalive: {time: 1s, timeout: 2s}"
APPLIED, CONNECTED = 2, 1


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Namespaces:
    """A switch namespace with a bridge, and one namespace per host with a veth to it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.created: list[str] = []

    def ns(self, host: str) -> str:
        return f"{self.prefix}{host}"

    def _add(self, name: str) -> None:
        _ip("netns", "add", name)
        self.created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def build(self) -> None:
        sw = self.ns("sw")
        self._add(sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for host, addr in ADDR.items():
            ns = self.ns(host)
            self._add(ns)
            # created in the switch namespace with its peer straight in the host's namespace
            _ip("-n", sw, "link", "add", f"to-{host}", "type", "veth", "peer", "eth0",
                "netns", ns)  # fmt: skip
            _ip("-n", sw, "link", "set", f"to-{host}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def cut(self, host: str) -> None:
        _ip("-n", self.ns("sw"), "link", "set", f"to-{host}", "down")

    def delete(self) -> None:
        for name in reversed(self.created):
            subprocess.run(
                ["ip", "netns", "del", name], check=False, capture_output=True, timeout=10
            )
        self.created.clear()


class NsLoop:
    """An event loop in a thread that entered a network namespace: its sockets live there."""

    def __init__(self, netns: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._entered: Future[None] = Future()
        self.thread = threading.Thread(target=self._run, args=(netns,), daemon=True)
        self.thread.start()
        self._entered.result(10)

    def _run(self, netns: str) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
        except BaseException as exc:
            self._entered.set_exception(exc)
            return
        self._entered.set_result(None)
        self.loop.run_forever()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    nets = Namespaces(f"sw{os.getpid() % 100000}-")
    probe = nets.ns("probe")
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot create network namespaces here ({exc}); needs root and iproute2")
    subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True, timeout=10)
    try:
        nets.build()
        yield nets
    finally:
        nets.delete()


async def _until(loop: NsLoop, check: Any, what: str, timeout: float = 60.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await loop.run(check()):
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_cut_veth_reroutes_across_namespaces(tmp_path: Path, namespaces: Namespaces) -> None:
    south, north = f"{ADDR['ctl']}:50052", "127.0.0.1:50051"
    procs: list[Proc] = []
    loops: dict[str, NsLoop] = {}
    try:
        in_ctl = ("ip", "netns", "exec", namespaces.ns("ctl"))
        # a short controller keepalive: the cut gateway is declared gone within ~2 s
        ctl = ControllerProc(tmp_path, south, north, prefix=in_ctl, extra=["--keepalive", "1"])
        procs.append(ctl)
        await ctl.ready()
        loops = {h: NsLoop(namespaces.ns(h)) for h in ("ctl", "a2", "b2")}
        control = loops["ctl"]
        nodes: dict[str, NodeProc] = {}
        for nid, dom in NODES:
            node = NodeProc(
                tmp_path,
                nid,
                dom,
                f"http://{south}",
                listen=f"{ADDR[nid]}:{PORT}",
                server_extra=KEEPALIVE,
                prefix=("ip", "netns", "exec", namespaces.ns(nid)),
            )
            procs.append(node)
            nodes[nid] = node
            await node.ready()

            async def registered(nid: str = nid) -> bool:
                return (await ctl.nodes()).get(nid) == CONNECTED

            await _until(control, registered, f"{nid} registered")

        async def links_are(want: list[tuple[str, str]]) -> bool:
            links = await ctl.links()
            return [(s, d) for s, d, st in links if st == APPLIED] == sorted(want) and len(
                links
            ) == len(want)

        await _until(control, lambda: links_are([("a1", "b1"), ("a2", "a1"), ("b2", "b1")]),
                     "links")  # fmt: skip

        # bob on b2 collects what arrives; alice on a2 sends before, during and after the cut
        rerouted = threading.Event()
        first_acked = threading.Event()
        outcome: dict[str, Any] = {}

        async def bob() -> list[str]:
            app = await connect(nodes["b2"].url, name="org/acc/bob", secret=APP_SECRET)
            try:
                bob_ready.set()
                session = await app.accept(timeout=60)
                got: list[str] = []
                while True:
                    text = (await session.receive(timeout=90)).text
                    if text == "end":
                        return got
                    got.append(text)
            finally:
                await app.close()

        async def alice() -> int:
            app = await connect(nodes["a2"].url, name="org/acc/alice", secret=APP_SECRET)
            try:
                session = await app.open_session(
                    "org/acc/bob", reliable=True, interval=0.5, max_retries=120, timeout=60
                )
                await session.publish("m0", wait=True, timeout=60)
                first_acked.set()
                sent, waits = 1, []
                after = 0
                while after < 10:
                    waits.append(asyncio.ensure_future(
                        session.publish(f"m{sent}", wait=True, timeout=90)))  # fmt: skip
                    sent += 1
                    after += rerouted.is_set()
                    await asyncio.sleep(0.1)
                await asyncio.gather(*waits)
                outcome["resumed"] = True
                await session.publish("end", wait=True, timeout=60)
                return sent
            finally:
                await app.close()

        bob_ready = threading.Event()
        bob_task = asyncio.ensure_future(loops["b2"].run(bob()))
        await asyncio.to_thread(bob_ready.wait, 30)
        alice_task = asyncio.ensure_future(loops["a2"].run(alice()))
        await asyncio.to_thread(first_acked.wait, 60)
        assert first_acked.is_set(), "no traffic before the cut"

        # cut the gateway of domain a off the network: the controller finds out by its
        # keepalive, makes a2 the gateway and has it linked to b1
        namespaces.cut("a1")
        await _until(control, lambda: links_are([("a2", "b1"), ("b2", "b1")]), "reroute", 90)
        rerouted.set()
        sent = await asyncio.wait_for(alice_task, 120)
        got = await asyncio.wait_for(bob_task, 60)
        assert got == [f"m{i}" for i in range(sent)]  # every message once, in order
        assert outcome["resumed"]
    finally:
        for lp in loops.values():
            lp.close()
        stop_all(procs)
        with contextlib.suppress(Exception):
            for p in procs:
                p.proc.wait(5)
