"""The Node's control-plane hooks over real loopback links: routes bound to a link id
(set_route / delete_route, kept across that link's reconnects) and remove_link."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from slimwire._proto import data_plane_pb2 as pb
from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.link import ClientNegotiation, LinkConnectionType
from slimwire.names import Name
from slimwire.transport import open_stream
from tests.dataplane._client import RawClient

SVC = ("org", "ns", "svc", None)
OTHER = ("org", "ns", "other", 7)


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def _node(node_id: str) -> Node:
    return Node(NodeConfig(node_id=node_id, servers=(ServerConfig(host="127.0.0.1", port=0),)))


async def _remote(url: str, link_id: str) -> RawClient:
    """A remote (node-to-node) link into ``url`` with a chosen link id, as another node dials."""
    stream = await open_stream(url, "/dataplane.proto.v1.DataPlaneService/OpenChannel")
    neg = ClientNegotiation(
        link_id, node_id=f"peer-{link_id}", connection_type=LinkConnectionType.REMOTE
    )
    stream.send(neg.request().SerializeToString())
    async with asyncio.timeout(5):
        batch = await stream.recv()
    info = neg.receive(pb.Message.FromString(batch[0]))
    return RawClient(stream, info, Name("org", "ns", f"peer-{link_id}"))


def _blobs(msgs: list[pb.Message]) -> list[bytes]:
    return [m.publish.msg.app_payload.blob for m in msgs]


async def test_set_route_forwards_over_that_link_and_delete_route_stops_it() -> None:
    async with _node("a") as a:
        far = await _remote(a.url, "link-1")
        sender = await RawClient.connect(a.url, Name("org", "ns", "sender", 1))
        try:
            await _until(lambda: any(c.link_id == "link-1" for c in a.connections()))
            with pytest.raises(LookupError):
                await a.set_route(SVC, "no-such-link")
            await a.set_route(SVC, "link-1")
            await a.set_route(SVC, "link-1")  # idempotent
            await a.set_route(OTHER, "link-1")
            assert set(a.routes()) == {(SVC, "link-1"), (OTHER, "link-1")}
            sender.publish(Name("org", "ns", "svc"), b"one")
            assert _blobs(await far.received(1)) == [b"one"]
            await a.delete_route(SVC, "link-1")
            await a.delete_route(SVC, "link-1")  # idempotent
            assert set(a.routes()) == {(OTHER, "link-1")}
            # in order on one path: "two" is dropped (no route any more), "three" arrives
            sender.publish(Name("org", "ns", "svc"), b"two")
            sender.publish(Name("org", "ns", "other", 7), b"three")
            assert _blobs(await far.received(1)) == [b"three"]
        finally:
            await sender.close()
            await far.close()


async def test_a_route_is_rebound_when_its_link_comes_back() -> None:
    async with _node("a") as a:
        far = await _remote(a.url, "link-r")
        sender = await RawClient.connect(a.url, Name("org", "ns", "sender", 1))
        try:
            await _until(lambda: any(c.link_id == "link-r" for c in a.connections()))
            await a.set_route(SVC, "link-r")
            first = a.routes()[(SVC, "link-r")]
            await far.close()
            await _until(lambda: not any(c.link_id == "link-r" for c in a.connections()))
            far = await _remote(a.url, "link-r")  # the same link id, a new connection
            await _until(lambda: a.routes()[(SVC, "link-r")] != first)
            sender.publish(Name("org", "ns", "svc"), b"after the reconnect")
            assert _blobs(await far.received(1)) == [b"after the reconnect"]
        finally:
            await sender.close()
            await far.close()


async def test_remove_link_stops_redialling_and_closes_it() -> None:
    async with _node("a") as a, _node("b") as b:
        await a.add_link(b.url, link_id="to-b")
        await _until(lambda: any(c.link_id == "to-b" for c in b.connections()))
        await a.set_route(SVC, "to-b")
        assert await a.remove_link("to-b") is True
        assert not any(c.link_id == "to-b" for c in a.connections())
        await _until(lambda: not any(c.link_id == "to-b" for c in b.connections()))
        assert await a.remove_link("to-b") is False
        # a route may be set for a link we dial before it is up, and is bound once it is
        await a.add_link(b.url, link_id="to-b-2")
        await a.set_route(OTHER, "to-b-2")
        await _until(lambda: a.routes().get((OTHER, "to-b-2"), -1) >= 0)
        assert any(e.strings == ("org", "ns", "other") for e in a.subscriptions())
