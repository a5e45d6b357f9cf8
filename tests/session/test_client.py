"""The asyncio client between our own apps, over real loopback sockets through our Node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from slimwire.auth import Identity
from slimwire.client import App, connect
from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.errors import SessionClosed, SessionError, SlimwireTimeout

SECRET = "client-tests-shared-secret-0123456789"

pytestmark = pytest.mark.timeout(60)


def node_config(port: int = 0) -> NodeConfig:
    return NodeConfig(node_id="test-node", servers=(ServerConfig(host="127.0.0.1", port=port),))


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node(node_config()) as n:
        yield n


@contextlib.asynccontextmanager
async def app(url: str, name: str, **kw: object) -> AsyncIterator[App]:
    a = await connect(url, name=name, secret=SECRET, **kw)  # type: ignore[arg-type]
    try:
        yield a
    finally:
        await a.close()


@pytest.mark.parametrize("reliable", [False, True])
async def test_request_reply_and_close(node: Node, reliable: bool) -> None:
    async with app(node.url, "org/ns/alice") as alice, app(node.url, "org/ns/bob") as bob:
        assert "org/ns/alice" in repr(alice)

        async def serve() -> list[str]:
            seen = []
            session = await bob.accept(timeout=5)
            assert session.metadata == {"topic": "t"}
            async for msg in session:
                seen.append(msg.text)
                await msg.reply(msg.text.upper(), payload_type="answer", metadata={"n": "1"})
            return seen

        server = asyncio.create_task(serve())
        async with alice.open_session(
            "org/ns/bob", reliable=reliable, metadata={"topic": "t"}
        ) as session:
            assert session.peer == bob.name
            assert "open" in repr(session)
            for word in ("a", "b", "c"):
                await session.publish(word, wait=True)
                reply = await session.receive(timeout=5)
                assert (reply.text, reply.payload_type, reply.metadata) == (
                    word.upper(),
                    "answer",
                    {"n": "1"},
                )
                assert reply.source == bob.name
                assert "answer" in repr(reply)
        assert session.closed
        assert await asyncio.wait_for(server, 5) == ["a", "b", "c"]
        with pytest.raises(SessionClosed):
            await session.publish("late")


async def test_receive_timeout_and_cancellation(node: Node) -> None:
    async with app(node.url, "org/ns/alice") as alice, app(node.url, "org/ns/bob") as bob:
        session = await alice.open_session("org/ns/bob", reliable=True)
        theirs = await bob.accept(timeout=5)
        with pytest.raises(SlimwireTimeout):
            await session.receive(timeout=0.05)
        waiter = asyncio.create_task(session.receive())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # the session still works after a cancelled receive
        await theirs.publish(b"after", wait=True)
        assert (await session.receive(timeout=5)).payload == b"after"
        await session.close()
        with pytest.raises(SessionClosed):
            await theirs.receive(timeout=5)


async def test_open_to_nobody_fails(node: Node) -> None:
    async with app(node.url, "org/ns/alice") as alice:
        with pytest.raises((SessionError, SlimwireTimeout)):
            await alice.open_session("org/ns/nobody", timeout=0.5)
        assert not alice.sessions


async def test_cancel_open_session(node: Node) -> None:
    async with app(node.url, "org/ns/alice") as alice:
        task = asyncio.ensure_future(alice.open_session("org/ns/nobody", timeout=None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not alice._opening


async def test_many_messages_exactly_once(node: Node) -> None:
    async with app(node.url, "org/ns/alice") as alice, app(node.url, "org/ns/bob") as bob:
        session = await alice.open_session("org/ns/bob", reliable=True)
        theirs = await bob.accept(timeout=5)
        for i in range(500):
            await session.publish(b"%d" % i)
        await session.flush(timeout=10)
        got = [int((await theirs.receive(timeout=5)).payload) for _ in range(500)]
        assert got == list(range(500))
        with pytest.raises(SlimwireTimeout):
            await theirs.receive(timeout=0.05)


async def test_identity_keeps_name_id(node: Node, tmp_path) -> None:
    ident = Identity.generate("org/ns/alice")
    path = tmp_path / "alice.id"
    ident.save(path)
    async with app(node.url, "org/ns/alice", identity=Identity.load(path)) as alice:
        assert alice.name.id == ident.name_id


async def test_reconnect_resubscribes() -> None:
    first = Node(node_config())
    await first.start()
    port = first.port
    async with app(first.url, "org/ns/bob") as bob:
        await first.stop()
        second = Node(node_config(port))
        await second.start()
        try:
            await second.wait_for(
                lambda n: any(e.strings[2] == "bob" for e in n.subscriptions()), timeout=15
            )
            async with app(second.url, "org/ns/alice") as alice:
                session = await alice.open_session("org/ns/bob", reliable=True)
                theirs = await bob.accept(timeout=5)
                await session.publish(b"after restart", wait=True)
                assert (await theirs.receive(timeout=5)).payload == b"after restart"
                await session.close()
        finally:
            await second.stop()


async def test_group_of_our_apps(node: Node) -> None:
    async with contextlib.AsyncExitStack() as stack:
        mod = await stack.enter_async_context(app(node.url, "org/ns/mod"))
        members = [await stack.enter_async_context(app(node.url, f"org/ns/m{i}")) for i in range(3)]
        group = mod.create_group("org/grp/room", reliable=True, metadata={"room": "1"})
        assert "reliable" in repr(group)
        for m in members:
            assert await group.invite(m.name.without_id()) == m.name
        theirs = [await m.accept(timeout=5) for m in members]
        assert all(t.metadata == {"room": "1"} for t in theirs)
        assert set(theirs[0].participants) == {mod.name, *(m.name for m in members)}
        await group.publish(b"hello all", wait=True)
        for t in theirs:
            msg = await t.receive(timeout=5)
            assert msg.payload == b"hello all"
            await msg.reply(b"ack from " + t._app.name.service.encode(), wait=True)
        replies = {(await group.receive(timeout=5)).payload for _ in theirs}
        assert replies == {b"ack from m0", b"ack from m1", b"ack from m2"}
        assert group.status == {m.name: True for m in members}
        await theirs[0].publish(b"from m0", wait=True)
        assert (await group.receive(timeout=5)).payload == b"from m0"
        for t in theirs[1:]:
            assert (await t.receive(timeout=5)).payload == b"from m0"
        await group.remove(members[2].name)
        with pytest.raises(SessionClosed):
            await theirs[2].receive(timeout=5)
        await theirs[1].close()  # a member leaves by itself (its close waits for LEAVE_REPLY)
        assert set(group.participants) == {mod.name, members[0].name}
        await group.close()
        with pytest.raises(SessionClosed):
            await theirs[0].receive(timeout=5)
        with pytest.raises(SessionError):
            await group.invite("org/ns/late")


async def test_concurrent_receivers_share_the_inbox(node: Node) -> None:
    async with app(node.url, "org/ns/alice") as alice, app(node.url, "org/ns/bob") as bob:
        session = await alice.open_session("org/ns/bob", reliable=True)
        theirs = await bob.accept(timeout=5)
        readers = [asyncio.create_task(session.receive(timeout=5)) for _ in range(3)]
        await asyncio.sleep(0)
        for i in range(3):
            await theirs.publish(b"%d" % i, wait=True)
        got = sorted([(await r).payload for r in readers])
        assert got == [b"0", b"1", b"2"]


async def test_reliable_session_survives_node_restart() -> None:
    """Messages sent while the node is down are buffered, then retransmitted after the
    reconnect (same link id, subscriptions replayed): the peer gets each exactly once."""
    first = Node(node_config())
    await first.start()
    port = first.port
    async with app(first.url, "org/ns/alice") as alice, app(first.url, "org/ns/bob") as bob:
        session = await alice.open_session("org/ns/bob", reliable=True, max_retries=30)
        theirs = await bob.accept(timeout=5)
        await session.publish(b"before", wait=True)
        await first.stop()
        for i in range(3):
            await session.publish(b"during-%d" % i)
        second = Node(node_config(port))
        await second.start()
        try:
            await session.flush(timeout=30)
            got = [(await theirs.receive(timeout=10)).payload for _ in range(4)]
            assert got == [b"before", b"during-0", b"during-1", b"during-2"]
            with pytest.raises(SlimwireTimeout):
                await theirs.receive(timeout=0.2)
            await session.close()
        finally:
            await second.stop()
