"""Acceptance: ``slimwire controller`` and four ``slimwire node --config`` processes in two
domains, with no static links in any node config. The controller links the domains; apps on a
node of each domain talk over what it computed (a reliable point-to-point session, a group);
the gateway on the used path is killed and traffic resumes over the other path without losing a
reliable message; the controller restarts from its SQLite file and traffic goes on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from slimwire.client import App, Session, connect
from tests.control._cluster import (
    APP_SECRET,
    ControllerProc,
    NodeProc,
    Proc,
    free_port,
    stop_all,
    until,
)

pytestmark = pytest.mark.timeout(180)

APPLIED = 2
CONNECTED = 1
TIMEOUT = 20.0


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.south = f"127.0.0.1:{free_port()}"
        self.north = f"127.0.0.1:{free_port()}"
        self.procs: list[Proc] = []
        self.nodes: dict[str, NodeProc] = {}
        self.ctl = self.start_controller()

    def start_controller(self) -> ControllerProc:
        ctl = ControllerProc(self.tmp, self.south, self.north)
        self.procs.append(ctl)
        return ctl

    async def connected(self, *ids: str) -> bool:
        nodes = await self.ctl.nodes()
        return all(nodes.get(i) == CONNECTED for i in ids)

    def _registered(self, nid: str) -> Callable[[], Awaitable[bool]]:
        return lambda: self.connected(nid)

    async def start(self) -> None:
        """Gateways first (the first node of a domain to register keeps the role)."""
        await self.ctl.ready()
        for nid, dom in (("a1", "da"), ("b1", "db"), ("a2", "da"), ("b2", "db")):
            node = NodeProc(self.tmp, nid, dom, f"http://{self.south}")
            self.procs.append(node)
            self.nodes[nid] = node
            await node.ready()
            await until(self._registered(nid), what=f"{nid} registered")

    async def links_are(self, want: list[tuple[str, str]]) -> bool:
        links = await self.ctl.links()
        return [(s, d) for s, d, st in links if st == APPLIED] == sorted(want) and len(
            links
        ) == len(want)

    async def gateway_links(self) -> bool:
        """One applied link between the domains' gateways, every other node linked to its
        domain's gateway, nothing else."""
        links = await self.ctl.links()
        if any(st != APPLIED for _s, _d, st in links) or len(links) != 3:
            return False
        cross = [(s, d) for s, d, _ in links if s[0] != d[0]]
        if len(cross) != 1:
            return False
        gateways = set(cross[0])
        inner = {(s, d) for s, d, _ in links if s[0] == d[0]}
        others = {"a1", "a2", "b1", "b2"} - gateways
        return inner == {(o, next(g for g in gateways if g[0] == o[0])) for o in others}


@contextlib.asynccontextmanager
async def cluster(tmp: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp)
    try:
        await c.start()
        yield c
    finally:
        stop_all(c.procs)


@contextlib.asynccontextmanager
async def app(url: str, name: str) -> AsyncIterator[App]:
    a = await connect(url, name=name, secret=APP_SECRET)
    try:
        yield a
    finally:
        await a.close()


async def p2p(alice: App, bob: App, bob_name: str, tag: str, n: int = 10) -> Session:
    """A reliable session alice -> bob; n messages each way, every one delivered once, in
    order."""
    session = await alice.open_session(bob_name, reliable=True, timeout=TIMEOUT)
    for i in range(n):
        await session.publish(f"{tag} {i}", wait=True, timeout=TIMEOUT)
    theirs = await bob.accept(timeout=TIMEOUT)
    got = [(await theirs.receive(timeout=TIMEOUT)).text for _ in range(n)]
    assert got == [f"{tag} {i}" for i in range(n)]
    for i in range(n):
        await theirs.publish(f"{tag} back {i}", wait=True, timeout=TIMEOUT)
    back = [(await session.receive(timeout=TIMEOUT)).text for _ in range(n)]
    assert back == [f"{tag} back {i}" for i in range(n)]
    return session


async def test_controller_links_two_domains_for_p2p_and_group_sessions(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        # the inter-domain link between the gateways (da < db: a1 dials), members to gateways
        await until(lambda: c.links_are([("a1", "b1"), ("a2", "a1"), ("b2", "b1")]), what="links")
        a2, b2 = c.nodes["a2"], c.nodes["b2"]
        async with app(a2.url, "org/acc/alice") as alice, app(b2.url, "org/acc/bob") as bob:
            session = await p2p(alice, bob, "org/acc/bob", "p2p")
            await session.close()
            # a group moderated on domain a with a member on domain b
            group = alice.create_group("org/acc/chan", reliable=True)
            joined = await group.invite("org/acc/bob", timeout=TIMEOUT)
            assert joined.short().startswith("org/acc/bob")
            member = await bob.accept(timeout=TIMEOUT)
            await group.publish("to the group", wait=True, timeout=TIMEOUT)
            assert (await member.receive(timeout=TIMEOUT)).text == "to the group"
            await member.publish("from bob", wait=True, timeout=TIMEOUT)
            msg = await group.receive(timeout=TIMEOUT)
            assert (msg.text, msg.source.short().split("/")[2]) == ("from bob", "bob")
            await group.close()


async def test_gateway_killed_traffic_resumes_over_the_other_path(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        await until(lambda: c.links_are([("a1", "b1"), ("a2", "a1"), ("b2", "b1")]), what="links")
        a2, b2 = c.nodes["a2"], c.nodes["b2"]
        async with app(a2.url, "org/acc/alice") as alice, app(b2.url, "org/acc/bob") as bob:
            session = await alice.open_session(
                "org/acc/bob", reliable=True, interval=0.5, max_retries=40, timeout=TIMEOUT
            )
            await session.publish("before", wait=True, timeout=TIMEOUT)
            theirs = await bob.accept(timeout=TIMEOUT)
            assert (await theirs.receive(timeout=TIMEOUT)).text == "before"
            # kill the gateway of domain a (on the path a2 -> a1 -> b1 -> b2) by its PID, and
            # keep sending while the controller moves the role to a2 (path a2 -> b1 -> b2)
            c.nodes["a1"].kill()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            acked: dict[int, float] = {}

            async def send(i: int) -> None:
                await session.publish(f"m{i}", wait=True, timeout=30)
                acked[i] = loop.time()

            pending = []
            sent = 0
            while loop.time() - killed_at < 3.0 or sent < 20:
                pending.append(asyncio.ensure_future(send(sent)))
                sent += 1
                await asyncio.sleep(0.1)
            await until(lambda: c.links_are([("a2", "b1"), ("b2", "b1")]), what="new links")
            # every message sent during the outage is acknowledged (none failed) ...
            await asyncio.wait_for(asyncio.gather(*pending), 30)
            # ... traffic resumed within 10 s of the kill ...
            assert min(acked.values()) - killed_at < 10.0, sorted(acked.values())[:3]
            # ... and bob got each one once, in order
            got = [(await theirs.receive(timeout=TIMEOUT)).text for _ in range(sent)]
            assert got == [f"m{i}" for i in range(sent)]
            await session.publish("after", wait=True, timeout=TIMEOUT)
            assert (await theirs.receive(timeout=TIMEOUT)).text == "after"


async def test_controller_restart_state_from_sqlite_nodes_reregister(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        want = [("a1", "b1"), ("a2", "a1"), ("b2", "b1")]
        await until(lambda: c.links_are(want), what="links")
        a2, b2 = c.nodes["a2"], c.nodes["b2"]
        async with app(a2.url, "org/acc/alice") as alice, app(b2.url, "org/acc/bob") as bob:
            session = await p2p(alice, bob, "org/acc/bob", "first", n=3)
            theirs = next(iter(bob.sessions.values()))
            c.ctl.stop()
            c.procs.remove(c.ctl)
            # the data plane does not need the controller to keep going
            await session.publish("while the controller is down", wait=True, timeout=TIMEOUT)
            msg = await theirs.receive(timeout=TIMEOUT)
            assert msg.text == "while the controller is down"
            # nodes frozen (SIGSTOP) while it starts: what it lists then comes from SQLite
            nodes = list(c.nodes.values())
            for n in nodes:
                n.pause()
            try:
                c.ctl = c.start_controller()
                await c.ctl.ready()
                listed = await c.ctl.nodes()
                assert listed == dict.fromkeys(("a1", "a2", "b1", "b2"), 2), c.ctl.last_error
            finally:
                for n in nodes:
                    n.resume()
            # the nodes' records and the links come back from the database file; the nodes
            # register again by themselves
            await until(lambda: c.connected("a1", "a2", "b1", "b2"), what="re-registration")
            # the gateways are whichever nodes registered first this time
            await until(c.gateway_links, what="links after the restart")
            await session.publish("after the restart", wait=True, timeout=TIMEOUT)
            assert (await theirs.receive(timeout=TIMEOUT)).text == "after the restart"
