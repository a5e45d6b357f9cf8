"""The asyncio Node over real loopback sockets, driven by raw clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import ConnType, DropReason, Node
from slimwire.names import Name

from ._client import RawClient

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)


def config(**kw: object) -> NodeConfig:
    server: dict[str, object] = {"host": "127.0.0.1", "port": 0}
    server.update(kw.pop("server", {}))  # type: ignore[call-overload]
    servers = (ServerConfig(**server),)  # type: ignore[arg-type]
    return NodeConfig(node_id=str(kw.pop("node_id", "test-node")), servers=servers, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node(config()) as n:
        yield n


async def test_subscribe_and_publish_through_node(node: Node) -> None:
    alice = await RawClient.connect(node.url, ALICE)
    bob = await RawClient.connect(node.url, BOB)
    await alice.subscribe()
    bob.publish(ALICE, b"hello")
    (msg,) = await alice.received(1)
    h = msg.publish.header
    assert msg.publish.msg.app_payload.blob == b"hello"
    assert h.ttl == 7
    assert alice.info.mac is not None
    assert alice.info.mac.verify(h)
    conns = {c.conn_type for c in node.connections()}
    assert conns == {ConnType.EDGE}
    (entry,) = node.subscriptions()
    assert entry.strings == ("org", "ns", "alice")
    await alice.close()
    await bob.close()


async def test_anycast_and_multicast(node: Node) -> None:
    svc = Name("org", "ns", "svc")
    members = [await RawClient.connect(node.url, svc.with_id(100 + i)) for i in range(3)]
    for m in members:
        await m.subscribe()
    pub = await RawClient.connect(node.url, BOB)
    for i in range(6):
        pub.publish(svc, b"any%d" % i)
    got = [await m.received(2) for m in members]  # round-robin: two each
    assert sorted(p.publish.msg.app_payload.blob for g in got for p in g) == [
        b"any%d" % i for i in range(6)
    ]
    pub.publish(svc, b"all", fanout=256)
    for m in members:
        (msg,) = await m.received(1)
        assert msg.publish.msg.app_payload.blob == b"all"
        assert m.info.mac is not None
        assert m.info.mac.verify(msg.publish.header)
    # an exact id reaches only its owner
    pub.publish(svc.with_id(101), b"one", fanout=256)
    (msg,) = await members[1].received(1)
    assert msg.publish.msg.app_payload.blob == b"one"
    for c in [*members, pub]:
        await c.close()


async def test_unsubscribe_stops_delivery_and_errors_are_acked(node: Node) -> None:
    alice = await RawClient.connect(node.url, ALICE)
    bob = await RawClient.connect(node.url, BOB)
    sid = await alice.subscribe()
    ack = await alice.unsubscribe(ALICE.without_id(), sid)
    assert not ack.success
    assert ack.error == "id not found: NULL_COMPONENT"
    ack = await alice.unsubscribe(ALICE, sid)
    assert ack.success
    bob.publish(ALICE, b"lost")
    await node.wait_for(lambda n: _drops(n, DropReason.NO_ROUTE) == 1)
    assert node.subscriptions() == []
    await alice.close()
    await bob.close()


def _drops(node: Node, reason: DropReason) -> int:
    return sum(c.drops.get(reason, 0) for c in node.connections())


async def test_chain_of_three_nodes() -> None:
    async with (
        Node(config(node_id="a")) as a,
        Node(config(node_id="b")) as b,
        Node(config(node_id="c")) as c,
    ):
        await b.add_link(a.url)
        await c.add_link(b.url)
        await a.wait_for(lambda n: len(n.connections()) == 1)
        await b.wait_for(lambda n: len(n.connections()) == 2)
        alice = await RawClient.connect(a.url, ALICE)
        await alice.subscribe()
        # the subscription travels a <- b <- c as remote subscriptions
        await c.wait_for(lambda n: len(n.subscriptions()) == 1)
        (entry,) = c.subscriptions()
        assert entry.remote
        assert not entry.edge
        bob = await RawClient.connect(c.url, BOB)
        await bob.subscribe()
        await a.wait_for(lambda n: len(n.subscriptions()) == 2)
        bob.publish(ALICE, b"across")
        (msg,) = await alice.received(1)
        assert msg.publish.msg.app_payload.blob == b"across"
        assert msg.publish.header.ttl == 5  # c, b, a
        alice.publish(BOB, b"back")
        (msg,) = await bob.received(1)
        assert msg.publish.msg.app_payload.blob == b"back"
        # no echo: c never announced alice back towards b, so b reaches alice only via a
        (via_b,) = [e for e in b.subscriptions() if e.strings[2] == "alice"]
        assert len(via_b.remote) == 1
        await alice.close()
        await bob.close()
        # alice gone: her subscription is withdrawn along the chain
        await c.wait_for(lambda n: len(n.subscriptions()) == 0)


async def test_restart_node_in_two_node_chain() -> None:
    async with Node(config(node_id="a")) as a:
        port_a = a.port
        b_cfg = config(node_id="b")
        async with Node(b_cfg) as b:
            link = await b.add_link(a.url)
            bob = await RawClient.connect(b.url, BOB)
            await bob.subscribe()
            await a.wait_for(lambda n: len(n.subscriptions()) == 1)
            alice = await RawClient.connect(a.url, ALICE)
            alice.publish(BOB, b"before")
            assert (await bob.received(1))[0].publish.msg.app_payload.blob == b"before"
            await alice.close()
            await a.stop()
            await b.wait_for(
                lambda n: any(
                    c.conn_id == link and c.state.value == "reconnecting" for c in n.connections()
                )
            )
            # a comes back on the same port: b re-dials, replays bob's subscription
            a2 = Node(config(node_id="a", server={"port": port_a}))
            async with a2:
                await a2.wait_for(lambda n: len(n.subscriptions()) == 1, timeout=15)
                alice = await RawClient.connect(a2.url, ALICE)
                alice.publish(BOB, b"after")
                (msg,) = await bob.received(1)
                assert msg.publish.msg.app_payload.blob == b"after"
                (info,) = [c for c in b.connections() if c.conn_id == link]
                assert info.outbound
                assert info.state.value == "up"
                await alice.close()
            await bob.close()


async def test_run_node_helper_on_a_free_port() -> None:
    from slimwire.dataplane import run_node

    from ._client import subscription_msg

    async with run_node(node_id="helper", require_header_mac=False) as n:
        assert n.port > 0
        assert n.url == f"http://127.0.0.1:{n.port}"
        plain = await RawClient.connect(n.url, ALICE, require_mac=False)
        # non-strict server: an untagged subscribe is accepted (a key still exists)
        plain.stream.send(subscription_msg(ALICE, 5).SerializeToString())
        await plain.wait(lambda c: bool(c.inbox))
        (ack,) = plain.take("subscription_ack")
        assert ack.subscription_ack.success
        (c,) = n.connections()
        assert c.authenticated
        await plain.close()


async def test_mesh_in_one_process_over_the_memory_transport() -> None:
    from slimwire.transport import MemoryNetwork

    net = MemoryNetwork()
    nodes = [Node(config(node_id=f"m{i}"), transport=net) for i in range(3)]
    for n in nodes:
        await n.start()
    try:
        await nodes[1].add_link(nodes[0].url)
        await nodes[2].add_link(nodes[1].url)
        await nodes[1].wait_for(lambda n: len(n.connections()) == 2)
        alice = await RawClient.connect(nodes[0].url, ALICE, opener=net.open_stream)
        bob = await RawClient.connect(nodes[2].url, BOB, opener=net.open_stream)
        await alice.subscribe()
        await nodes[2].wait_for(lambda n: len(n.subscriptions()) == 1)
        bob.publish(ALICE, b"in-memory")
        (msg,) = await alice.received(1)
        assert msg.publish.msg.app_payload.blob == b"in-memory"
        assert msg.publish.header.ttl == 5
        await alice.close()
        await bob.close()
    finally:
        for n in nodes:
            await n.stop()


async def test_graceful_stop_delivers_pending_output_then_ends_with_ok() -> None:
    node = Node(config())
    await node.start()
    alice = await RawClient.connect(node.url, ALICE)
    bob = await RawClient.connect(node.url, BOB)
    await alice.subscribe()
    for i in range(200):
        bob.publish(ALICE, b"m%d" % i)
    await node.wait_for(lambda n: sum(c.msgs_in for c in n.connections()) >= 201)
    await node.stop()
    msgs = await alice.received(200)
    assert [m.publish.msg.app_payload.blob for m in msgs] == [b"m%d" % i for i in range(200)]
    await alice.wait(lambda c: c.ended is not None)
    assert isinstance(alice.ended, EOFError)  # OK trailers: a clean end, not an error
    await alice.close()
    await bob.close()


async def test_peer_link_from_ourselves_is_refused(node: Node) -> None:
    from slimwire._constants import DATAPLANE_PATH
    from slimwire._proto import data_plane_pb2 as pb
    from slimwire.errors import GrpcError
    from slimwire.link import ClientNegotiation, LinkConnectionType
    from slimwire.transport import Status, open_stream

    stream = await open_stream(node.url, DATAPLANE_PATH)
    neg = ClientNegotiation(node_id=node.node_id, connection_type=LinkConnectionType.PEER)
    stream.send(neg.request().SerializeToString())

    async def first_reply() -> pb.Message:
        async with asyncio.timeout(5):
            return pb.Message.FromString((await stream.recv())[0])

    with pytest.raises(GrpcError) as info:
        await first_reply()
    assert info.value.status == Status.PERMISSION_DENIED
    assert node.connections() == []
