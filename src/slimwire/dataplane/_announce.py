"""What this node tells its remote and peer links: the names it can reach through other links.

For each remote or peer link the node announces (its own ``Subscribe``, source = destination =
the name, a fresh random non-zero subscription id, ttl 8) every name that some *other* link
subscribes to, withdraws it (``Unsubscribe`` with the same id) when that stops being true, and
replays the lot under the same ids when the link comes back (the far side dropped them with the
link). Split horizon - never announcing a name on the link it was learned from - keeps chains
loop-free; the subscription-id loop guard (``seen``) catches what comes back around a ring.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from slimwire._constants import DEFAULT_TTL, SLIM_VERSION, UNICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb

from ._connections import Conn, ConnectionTable
from ._subscriptions import SubscriptionTable
from ._types import ConnState, ConnType, RouteKey

__all__ = ["SEEN_SUB_IDS_MAX", "SUBSCRIPTION_TTL", "Announcer"]

SUBSCRIPTION_TTL = DEFAULT_TTL
"""TTL of the subscriptions we originate (a standalone reference node uses 8 as well)."""
SEEN_SUB_IDS_MAX = 1 << 20
"""Subscription ids kept for the loop guard; a loop closes within seconds, so the oldest of a
million ids can be forgotten safely and memory stays bounded on a long-lived node."""

_MASK64 = (1 << 64) - 1
_UP = ConnState.UP
_TARGETS = (ConnType.REMOTE, ConnType.PEER)

Send = Callable[[Conn, pb.Message, pb.SLIMHeader], bool]


def proto_name(key: RouteKey, strings: tuple[str, str, str]) -> pb.Name:
    """A wire name with both forms, rebuilt from a table key and its strings."""
    name = pb.Name()
    enc = name.name
    enc.component_0, enc.component_1, enc.component_2 = key.c0, key.c1, key.c2
    enc.name_id.id_0 = key.id >> 64
    enc.name_id.id_1 = key.id & _MASK64
    s = name.str_name
    s.str_component_0, s.str_component_1, s.str_component_2 = strings
    return name


class Announcer:
    """Per-link announcement state over a forwarder's tables; ``send`` signs and queues."""

    def __init__(
        self,
        table: SubscriptionTable,
        conns: ConnectionTable,
        send: Send,
        rng: random.Random,
    ) -> None:
        self._table = table
        self._conns = conns
        self._send = send
        self._rng = rng
        self._announced: dict[int, dict[RouteKey, int]] = {}
        self._seen: dict[int, None] = {}  # insertion-ordered set, bounded by remember()

    def __repr__(self) -> str:
        return f"<Announcer links={len(self._announced)} seen={len(self._seen)}>"

    # -- the loop guard --------------------------------------------------------------------

    def seen(self, sid: int) -> bool:
        return sid in self._seen

    def remember(self, sid: int) -> None:
        """Add to the loop guard, forgetting the oldest ids beyond ``SEEN_SUB_IDS_MAX``."""
        seen = self._seen
        seen[sid] = None
        if len(seen) > SEEN_SUB_IDS_MAX:
            for old in list(itertools.islice(seen, len(seen) - SEEN_SUB_IDS_MAX)):
                del seen[old]

    def fresh_id(self) -> int:
        while True:
            sid = self._rng.getrandbits(64)
            if sid and sid not in self._seen:
                self.remember(sid)
                return sid

    # -- announcements ---------------------------------------------------------------------

    def announced(self, conn_id: int) -> dict[RouteKey, int]:
        return dict(self._announced.get(conn_id, {}))

    def forget(self, conn_id: int) -> None:
        """The link is gone for good (a reconnecting link keeps its ids for the replay)."""
        self._announced.pop(conn_id, None)

    def _targets(self) -> list[Conn]:
        return [c for c in self._conns.rows.values() if c.state is _UP and c.conn_type in _TARGETS]

    def _wanted_on(self, link: Conn, key: RouteKey) -> bool:
        """Announce ``key`` on ``link`` iff something other than that link subscribes to it."""
        return any(c != link.conn_id for c in self._table.conns_for(key))

    def _send_subscription(self, link: Conn, dst: pb.Name, add: bool, sid: int) -> None:
        msg = pb.Message()
        sub = msg.subscribe if add else msg.unsubscribe
        sub.subscription_id = sid
        header = sub.header
        header.source.CopyFrom(dst)
        header.destination.CopyFrom(dst)
        header.fanout = UNICAST_FANOUT
        header.version = SLIM_VERSION
        header.ttl = SUBSCRIPTION_TTL
        self._send(link, msg, header)

    def update(self, key: RouteKey, strings: tuple[str, str, str]) -> None:
        """The subscribers of ``key`` changed: announce or withdraw it on every link."""
        for link in self._targets():
            announced = self._announced.setdefault(link.conn_id, {})
            wanted = self._wanted_on(link, key)
            sid = announced.get(key)
            if wanted and sid is None:
                sid = announced[key] = self.fresh_id()
                self._send_subscription(link, proto_name(key, strings), True, sid)
            elif not wanted and sid is not None:
                del announced[key]
                self._send_subscription(link, proto_name(key, strings), False, sid)

    def replay(self, link: Conn) -> None:
        """A (re)connected link gets every name we reach through other links (a full sync),
        under the subscription ids it had before."""
        previous = self._announced.get(link.conn_id, {})
        announced: dict[RouteKey, int] = {}
        for entry in self._table.entries():
            key = entry.key
            if not self._wanted_on(link, key):
                continue
            sid = previous.get(key) or self.fresh_id()
            announced[key] = sid
            self._send_subscription(link, proto_name(key, entry.strings), True, sid)
        self._announced[link.conn_id] = announced
