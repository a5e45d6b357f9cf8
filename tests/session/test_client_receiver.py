"""The app's hot path over real sockets: received messages are handled in the transport's read
callback (no reader task woken per read), and the publishes of one loop tick are written on
the turn that pumps them, not one turn later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from slimwire.client import connect
from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import Node

SECRET = "client-tests-shared-secret-0123456789"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    cfg = NodeConfig(node_id="test-node", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with Node(cfg) as n:
        yield n


@pytest.mark.parametrize("reliable", [False, True])
async def test_received_messages_are_handled_in_the_read_callback(
    node: Node, reliable: bool
) -> None:
    alice = await connect(node.url, name="org/ns/alice", secret=SECRET)
    bob = await connect(node.url, name="org/ns/bob", secret=SECRET)
    try:
        session = await alice.open_session("org/ns/bob", reliable=reliable)
        incoming = await bob.accept(timeout=5)
        seen: list[object] = []
        receive = bob._layer.receive

        def spy(*args: object) -> None:
            seen.append(asyncio.current_task())
            receive(*args)  # type: ignore[arg-type]

        bob._layer.receive = spy  # type: ignore[method-assign]
        await session.publish(b"ping")
        msg = await incoming.receive(timeout=5)
        assert msg.payload == b"ping"
        assert seen
        assert all(task is None for task in seen)
        await msg.reply(b"pong")
        assert (await session.receive(timeout=5)).payload == b"pong"
        await session.close()
    finally:
        await alice.close()
        await bob.close()


async def test_first_publish_of_a_tick_is_written_at_once(node: Node) -> None:
    alice = await connect(node.url, name="org/ns/alice", secret=SECRET)
    bob = await connect(node.url, name="org/ns/bob", secret=SECRET)
    try:
        session = await alice.open_session("org/ns/bob")
        incoming = await bob.accept(timeout=5)
        stream = alice._stream
        assert stream is not None
        await asyncio.sleep(0)  # a new loop tick
        await session.publish(b"now")
        assert stream.pending_bytes == 0  # already handed to the socket
        await session.publish(b"later")  # same tick: batched with the others of this tick
        assert alice._pump_soon
        await asyncio.sleep(0)  # the pump runs, then this task
        assert not alice._pump_soon
        assert stream.pending_bytes == 0  # written on the turn that pumped it
        assert (await incoming.receive(timeout=5)).payload == b"now"
        assert (await incoming.receive(timeout=5)).payload == b"later"
        await session.close()
    finally:
        await alice.close()
        await bob.close()


async def test_reliable_reply_leaves_with_the_ack_of_the_request(node: Node) -> None:
    """The ack a read queues is flushed after the task it woke had its turn, so a reply
    written on that turn shares the write: the node reads both at once."""
    alice = await connect(node.url, name="org/ns/alice", secret=SECRET)
    bob = await connect(node.url, name="org/ns/bob", secret=SECRET)
    try:
        session = await alice.open_session("org/ns/bob", reliable=True)
        incoming = await bob.accept(timeout=5)
        bob_conn = max(c.conn_id for c in node.connections())
        batches: list[int] = []
        receive_batch = node.forwarder.receive_batch

        def spy(conn_id: int, batch: list[bytes], now: float = 0.0) -> None:
            if conn_id == bob_conn:
                batches.append(len(batch))
            receive_batch(conn_id, batch, now)

        node.forwarder.receive_batch = spy  # type: ignore[method-assign]
        for i in range(5):
            await session.publish(b"q%d" % i)
            msg = await incoming.receive(timeout=5)
            await msg.reply(b"a%d" % i)
            assert (await session.receive(timeout=5)).payload == b"a%d" % i
        await session.flush(timeout=5)
        assert batches == [2] * 5  # ack + reply, one read each time
        await session.close()
    finally:
        await alice.close()
        await bob.close()
