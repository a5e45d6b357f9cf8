"""Bad input closes or rejects only the offending stream; everything else keeps flowing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from slimwire._constants import DATAPLANE_PATH
from slimwire._proto import data_plane_pb2 as pb
from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import DropReason, Node
from slimwire.errors import GrpcError, SlimwireError
from slimwire.names import Name
from slimwire.transport import Status, Stream, open_stream

from ._client import RawClient, publish_msg, subscription_msg

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)


def make_config(**kw: object) -> NodeConfig:
    server = ServerConfig(
        host="127.0.0.1",
        port=0,
        negotiation_timeout=float(kw.pop("timeout", 5.0)),  # type: ignore[arg-type]
    )
    return NodeConfig(node_id="bad-input", servers=(server,), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node(
        make_config(timeout=0.3, max_message_size=4096, bad_mac_limit=3, slow_consumer_timeout=0.5)
    ) as n:
        yield n


@pytest.fixture
async def pair(node: Node) -> AsyncIterator[tuple[RawClient, RawClient]]:
    """A healthy subscriber and publisher that must keep working in every test."""
    alice = await RawClient.connect(node.url, ALICE)
    bob = await RawClient.connect(node.url, BOB)
    await alice.subscribe()
    yield alice, bob
    await alice.close()
    await bob.close()


async def still_flowing(pair: tuple[RawClient, RawClient], tag: bytes) -> None:
    alice, bob = pair
    bob.publish(ALICE, tag)
    (msg,) = await alice.received(1)
    assert msg.publish.msg.app_payload.blob == tag


async def read_to_end(stream: Stream) -> None:
    async with asyncio.timeout(5):
        while await stream.recv():
            pass


async def expect_end(stream: Stream, status: int) -> None:
    with pytest.raises(GrpcError) as info:
        await read_to_end(stream)
    assert info.value.status == status


def drops(node: Node, reason: DropReason) -> int:
    return sum(c.drops.get(reason, 0) for c in node.connections())


async def test_first_message_must_be_link_negotiation(
    node: Node, pair: tuple[RawClient, RawClient]
) -> None:
    stream = await open_stream(node.url, DATAPLANE_PATH)
    stream.send(subscription_msg(ALICE, 1).SerializeToString())
    await expect_end(stream, Status.INVALID_ARGUMENT)
    await still_flowing(pair, b"after-no-negotiation")


async def test_negotiation_timeout(node: Node, pair: tuple[RawClient, RawClient]) -> None:
    stream = await open_stream(node.url, DATAPLANE_PATH)
    await expect_end(stream, Status.DEADLINE_EXCEEDED)
    await still_flowing(pair, b"after-timeout")


async def test_bad_negotiation_is_rejected(node: Node, pair: tuple[RawClient, RawClient]) -> None:
    stream = await open_stream(node.url, DATAPLANE_PATH)
    msg = pb.Message()
    msg.link.link_negotiation.link_id = "x"
    msg.link.link_negotiation.slim_version = "not-semver"
    stream.send(msg.SerializeToString())
    await expect_end(stream, Status.INVALID_ARGUMENT)
    await still_flowing(pair, b"after-bad-negotiation")


async def test_malformed_protobuf_closes_that_link(
    node: Node, pair: tuple[RawClient, RawClient]
) -> None:
    bad = await RawClient.connect(node.url, Name("org", "ns", "bad"))
    bad.stream.send(b"\xff\xff\xff\xff")
    await bad.wait(lambda c: c.ended is not None)
    assert isinstance(bad.ended, GrpcError)
    assert bad.ended.status == Status.INVALID_ARGUMENT
    await still_flowing(pair, b"after-malformed")


async def test_oversized_message_closes_that_link(
    node: Node, pair: tuple[RawClient, RawClient]
) -> None:
    big = await RawClient.connect(node.url, Name("org", "ns", "big"))
    big.publish(ALICE, b"x" * 8000)
    await big.wait(lambda c: c.ended is not None)
    assert isinstance(big.ended, GrpcError)
    assert big.ended.status == Status.RESOURCE_EXHAUSTED
    await still_flowing(pair, b"after-oversized")


async def test_bad_mac_dropped_then_link_closed(
    node: Node, pair: tuple[RawClient, RawClient]
) -> None:
    alice, _ = pair
    evil = await RawClient.connect(node.url, Name("org", "ns", "evil"))
    msg = publish_msg(evil.name, ALICE, b"forged")
    assert evil.info.mac is not None
    evil.info.mac.sign(msg.publish.header)
    msg.publish.header.fanout = 256  # tampered after signing
    evil.stream.send(msg.SerializeToString())
    unsigned = publish_msg(evil.name, ALICE, b"unsigned")
    evil.stream.send(unsigned.SerializeToString())
    await node.wait_for(
        lambda n: drops(n, DropReason.BAD_MAC) + drops(n, DropReason.MISSING_MAC) == 2
    )
    await still_flowing(pair, b"after-one-bad-mac")
    assert alice.take("publish") == []  # nothing forged got through
    evil.publish(ALICE, b"good")  # a good one still passes on the same link
    (got,) = await alice.received(1)
    assert got.publish.msg.app_payload.blob == b"good"
    for _ in range(3):
        evil.stream.send(msg.SerializeToString())
    await evil.wait(lambda c: c.ended is not None)
    assert isinstance(evil.ended, GrpcError)
    await still_flowing(pair, b"after-bad-mac-close")


async def test_ttl_zero_is_dropped(node: Node, pair: tuple[RawClient, RawClient]) -> None:
    _, bob = pair
    bob.publish(ALICE, b"ttl0", ttl=0)
    bob.publish(ALICE, b"ttl1", ttl=1)
    await node.wait_for(lambda n: drops(n, DropReason.TTL_EXPIRED) == 2)
    await still_flowing(pair, b"after-ttl")


async def test_subscribe_for_unknown_connection(
    node: Node, pair: tuple[RawClient, RawClient]
) -> None:
    _, bob = pair
    msg = subscription_msg(BOB, 99)
    msg.subscribe.header.recv_from = 4242
    bob.send(msg)
    await bob.wait(lambda c: bool(c.inbox))
    (ack,) = bob.take("subscription_ack")
    assert not ack.subscription_ack.success
    assert ack.subscription_ack.error == "connection not found: 4242"
    await still_flowing(pair, b"after-unknown-conn")


async def test_peer_that_stops_reading_is_closed(
    node: Node, pair: tuple[RawClient, RawClient]
) -> None:
    carol_name = Name("org", "ns", "carol", 33)
    carol = await RawClient.connect(node.url, carol_name, window_size=65535)
    await carol.subscribe()
    carol._reader.cancel()  # carol stops reading
    flood = await RawClient.connect(node.url, Name("org", "ns", "flood"))
    payload = b"z" * 3000
    for _ in range(2000):  # ~6 MB, far over carol's window and the node's high-water mark
        flood.publish(carol_name, payload)
    await node.wait_for(
        lambda n: not any(c.peer_node_id == "client-carol" for c in n.connections()), timeout=10
    )
    await still_flowing(pair, b"after-slow-consumer")
    # the producer was only held back, never cut off
    flood.publish(ALICE, b"from-flood")
    (msg,) = await pair[0].received(1)
    assert msg.publish.msg.app_payload.blob == b"from-flood"
    await flood.close()
    with pytest.raises(SlimwireError):  # aborted: reset, or cut inside a message
        await read_to_end(carol.stream)
