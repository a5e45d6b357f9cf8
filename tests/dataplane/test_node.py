"""The asyncio Node over real loopback sockets, driven by raw clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import ConnType, Node
from slimwire.names import Name

from ._client import RawClient

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)


def config(**kw: object) -> NodeConfig:
    servers = (ServerConfig(host="127.0.0.1", port=0, **kw.pop("server", {})),)  # type: ignore[arg-type]
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
    assert alice.info.mac is not None and alice.info.mac.verify(h)
    conns = {c.conn_type for c in node.connections()}
    assert conns == {ConnType.EDGE}
    (entry,) = node.subscriptions()
    assert entry.strings == ("org", "ns", "alice")
    await alice.close()
    await bob.close()
