"""Adapt :class:`slimwire.dataplane.Node` to the agent's :class:`NodePort`.

The node offers what links need (``add_link``, ``remove_link``, ``connections``), binds the
controller's routes to links (``set_route``/``delete_route``: the reference's datapath Subscribe
with ``recv_from`` = the connection), and lists its subscriptions, which the agent polls for
announcements: cheap, because the answer is cached per subscription-table generation. A Node
without one of these hooks (an older or foreign one) makes that operation raise
:class:`ControlPlaneError`, so the agent acks the item as failed and the controller records it
as Failed - visible, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slimwire.control._core import NameKey
from slimwire.errors import ControlPlaneError
from slimwire.names import NULL_ID

__all__ = ["NodeAdapter"]


class NodeAdapter:
    """A :class:`NodePort` over a running :class:`slimwire.dataplane.Node`."""

    def __init__(self, node: Any) -> None:
        self._node = node
        self._names: tuple[int, set[NameKey]] | None = None

    def __repr__(self) -> str:
        return f"NodeAdapter({self._node!r})"

    @property
    def node_id(self) -> str:
        return str(self._node.node_id)

    def connections(self) -> Sequence[Any]:
        return list(self._node.connections())

    async def add_link(
        self, url: str, *, connection_type: str = "remote", link_id: str | None = None
    ) -> int:
        return int(await self._node.add_link(url, connection_type=connection_type, link_id=link_id))

    async def remove_link(self, link_id: str) -> bool:
        hook = getattr(self._node, "remove_link", None)
        if hook is None:
            raise ControlPlaneError("this node cannot remove links yet (Node.remove_link)")
        return bool(await hook(link_id))

    async def set_route(self, name: NameKey, link_id: str) -> None:
        hook = getattr(self._node, "set_route", None)
        if hook is None:
            raise ControlPlaneError("this node cannot bind routes to links yet (Node.set_route)")
        await hook(name, link_id)

    async def delete_route(self, name: NameKey, link_id: str) -> None:
        hook = getattr(self._node, "delete_route", None)
        if hook is None:
            raise ControlPlaneError("this node cannot remove routes yet (Node.delete_route)")
        await hook(name, link_id)

    def local_names(self) -> set[NameKey]:
        """Names with a subscriber attached here (a local or edge connection: an app), which is
        what this node announces. Names learnt from other nodes are the controller's business."""
        table = getattr(getattr(self._node, "forwarder", None), "table", None)
        generation = getattr(table, "generation", None)
        cached = self._names
        if cached is not None and generation is not None and cached[0] == generation:
            return set(cached[1])
        out: set[NameKey] = set()
        for entry in self._node.subscriptions():
            if entry.local or entry.edge:
                nid = entry.key.id
                out.add((*entry.strings, None if nid == NULL_ID else nid))
        if isinstance(generation, int):
            self._names = (generation, set(out))
        return out
