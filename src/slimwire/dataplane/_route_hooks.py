"""Routes a control plane sets on a node, as the forwarder's mixin.

Kept apart from the forwarding rules because they are the control plane's entry into the
data plane, not per-message work: a controller route is a subscription made on behalf of a
link (what the reference does with a datapath Subscribe whose ``recv_from`` is that link), so
it lives in the same table and is announced onward like any other.
"""

from __future__ import annotations

from slimwire.errors import SubscriptionError
from slimwire.names import component_hash

from ._announce import Announcer
from ._connections import ConnectionTable
from ._subscriptions import SubscriptionTable
from ._types import ConnState, RouteKey

__all__ = ["RouteHooks"]


def _route_key(strings: tuple[str, str, str], name_id: int) -> RouteKey:
    h = component_hash
    return RouteKey(h(strings[0]), h(strings[1]), h(strings[2]), name_id)


class RouteHooks:
    """``add_route`` / ``remove_route`` over the tables the forwarder owns."""

    conns: ConnectionTable
    table: SubscriptionTable
    _announcer: Announcer

    def add_route(self, strings: tuple[str, str, str], name_id: int, conn_id: int) -> int:
        """Forward ``strings``/``name_id`` over ``conn_id`` as if that link had subscribed to
        it: what the reference does for a controller's route (a datapath Subscribe with
        ``recv_from`` = the conn). The name is announced onward like any other subscription.
        Returns the subscription id :meth:`remove_route` takes; ``LookupError`` without an
        up connection ``conn_id``."""
        conn = self.conns.get(conn_id)
        if conn is None or conn.state is not ConnState.UP:
            raise LookupError(f"connection not found: {conn_id}")
        key = _route_key(strings, name_id)
        sid = self._announcer.fresh_id()
        self.table.add(key, strings, conn_id, conn.conn_type, sid)
        self._announcer.update(key, strings)
        return sid

    def remove_route(
        self, strings: tuple[str, str, str], name_id: int, conn_id: int, subscription_id: int
    ) -> bool:
        """Undo :meth:`add_route`; False when the table no longer holds it (its link went
        down since, which removed it already)."""
        conn = self.conns.get(conn_id)
        if conn is None:
            return False
        key = _route_key(strings, name_id)
        try:
            self.table.remove(key, conn_id, conn.conn_type, subscription_id)
        except SubscriptionError:
            return False
        self._announcer.update(key, strings)
        return True
