"""A small in-process stand-in for a node, implementing the agent's NodePort.

A FakeMesh plays the wire: a link dialled from one fake node to another's URL shows up on both
(outbound on the dialler, inbound on the dialled), with the same link id, as real link
negotiation does. Routes can only be set on a link the node has.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from slimwire.control._core import NameKey

_ids = itertools.count(1)


@dataclass(frozen=True)
class FakeConn:
    conn_id: int
    conn_type: int
    remote: str
    link_id: str
    peer_node_id: str
    outbound: bool


@dataclass
class FakeMesh:
    nodes: dict[str, FakeNode] = field(default_factory=dict)

    def node(self, node_id: str) -> FakeNode:
        n = FakeNode(node_id, f"http://fake-{node_id}:1", self)
        self.nodes[n.url] = n
        return n


@dataclass
class FakeNode:
    node_id: str
    url: str
    mesh: FakeMesh
    conns: list[FakeConn] = field(default_factory=list)
    routes: set[tuple[NameKey, str]] = field(default_factory=set)
    names: set[NameKey] = field(default_factory=set)
    fail_links: bool = False

    def connections(self) -> list[FakeConn]:
        return list(self.conns)

    def local_names(self) -> set[NameKey]:
        return set(self.names)

    async def add_link(
        self, url: str, *, connection_type: str = "remote", link_id: str | None = None
    ) -> int:
        if self.fail_links:
            raise OSError("connection refused")
        peer = self.mesh.nodes.get(url)
        if peer is None:
            raise OSError(f"cannot reach {url}")
        lid = link_id or f"l{next(_ids)}"
        conn = FakeConn(next(_ids), 1, url, lid, peer.node_id, True)
        self.conns.append(conn)
        peer.conns.append(FakeConn(next(_ids), 1, self.url, lid, self.node_id, False))
        return conn.conn_id

    async def remove_link(self, link_id: str) -> bool:
        mine = [c for c in self.conns if c.link_id == link_id]
        for node in self.mesh.nodes.values():
            node.conns = [c for c in node.conns if c.link_id != link_id]
            node.routes = {r for r in node.routes if r[1] != link_id}
        return bool(mine)

    async def set_route(self, name: NameKey, link_id: str) -> None:
        if not any(c.link_id == link_id for c in self.conns):
            raise LookupError(f"no connection for link {link_id}")
        self.routes.add((name, link_id))

    async def delete_route(self, name: NameKey, link_id: str) -> None:
        self.routes.discard((name, link_id))

    def drop(self) -> None:
        """The node dies: its links vanish on both sides."""
        for c in list(self.conns):
            for node in self.mesh.nodes.values():
                node.conns = [x for x in node.conns if x.link_id != c.link_id]
        self.routes.clear()
