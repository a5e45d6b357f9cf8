"""Our node in a mesh with a reference node: it dials the reference node with a peer link (the
link type over which reference nodes share subscriptions) and traffic crosses both ways."""

from __future__ import annotations

import asyncio
from pathlib import Path

from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import ConnType, Node
from slimwire.names import Name

from ..interop._harness import reference_node
from ._client import RawClient

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)


async def _deliver(sender: RawClient, receiver: RawClient, dst: Name, tag: bytes) -> None:
    """Publish until one arrives (subscriptions cross the link asynchronously)."""
    for _ in range(100):
        sender.publish(dst, tag)
        try:
            msgs = await receiver.received(1, timeout=0.1)
        except TimeoutError:
            continue
        assert all(m.publish.msg.app_payload.blob == tag for m in msgs)
        return
    raise AssertionError(f"{tag!r} never crossed the link")


async def test_peer_link_to_reference_node(tmp_path: Path) -> None:
    with reference_node(tmp_path) as ref:
        cfg = NodeConfig(node_id="sw", servers=(ServerConfig(host="127.0.0.1", port=0),))
        async with Node(cfg) as node:
            link = await node.add_link(ref.endpoint, connection_type="peer")
            await node.wait_for(
                lambda n: any(c.conn_id == link and c.state.value == "up" for c in n.connections())
            )
            (info,) = [c for c in node.connections() if c.conn_id == link]
            assert info.conn_type is ConnType.PEER
            alice = await RawClient.connect(ref.endpoint, ALICE)  # on the reference node
            bob = await RawClient.connect(node.url, BOB)  # on ours
            await alice.subscribe()
            await bob.subscribe()
            await _deliver(bob, alice, ALICE, b"ours->reference")
            await _deliver(alice, bob, BOB, b"reference->ours")
            await asyncio.gather(alice.close(), bob.close())
