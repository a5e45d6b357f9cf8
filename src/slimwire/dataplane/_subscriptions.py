"""The subscription table, with the reference's exact semantics (slim-wire.md §2.4).

Routing is by the ``[c0, c1, c2]`` prefix, then by id, then by category (Local, Remote, Peer,
Edge), each slot a deduplicated conn list with a round-robin cursor. Per prefix and category an
aggregate list of every conn under the prefix serves anycast to a NULL id. Book-keeping is keyed
by ``subscription_id`` (an unsubscribe must name the same id, conn and name) and a conn stays in a
slot while any of its subscriptions still refers to that exact name.

``add``/``remove`` return whether the (name+id, category) slot went 0→1 / 1→0, which is what
drives propagation. ``generation`` changes on every routing change, so callers can cache lookups.
"""

from __future__ import annotations

from collections.abc import Iterator

from slimwire.errors import SubscriptionError
from slimwire.names import NULL_ID, format_id

from ._types import ConnType, RouteKey, SubscriptionEntry

__all__ = ["SubscriptionTable"]

_ALL = (0, 1, 2, 3)
_NO_PEER = (0, 1, 3)


class _ConnList:
    """A deduplicated conn list with a round-robin cursor (the reference's ``ConnList``)."""

    __slots__ = ("conns", "cursor")

    def __init__(self) -> None:
        self.conns: list[int] = []
        self.cursor = 0

    def next(self, skip: int) -> int | None:
        conns = self.conns
        n = len(conns)
        if n == 0:
            return None
        if n == 1:
            c = conns[0]
            return c if c != skip else None
        for _ in range(n):
            pos = self.cursor % n
            self.cursor += 1
            c = conns[pos]
            if c != skip:
                return c
        return None


class _Prefix:
    """Everything under one ``org/ns/svc``: per-id slots and per-category aggregates."""

    __slots__ = ("aggregates", "any_cursor", "ids", "strings")

    def __init__(self, strings: tuple[str, str, str]) -> None:
        self.strings = strings
        # id -> one _ConnList per category (indexed by ConnType value)
        self.ids: dict[int, tuple[_ConnList, _ConnList, _ConnList, _ConnList]] = {}
        self.aggregates: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
        self.any_cursor = 0

    def rebuild_aggregates(self) -> None:
        for cat in _ALL:
            agg = self.aggregates[cat]
            agg.clear()
            for slots in self.ids.values():
                for c in slots[cat].conns:
                    if c not in agg:
                        agg.append(c)

    def pick_one_any(self, skip: int, cats: tuple[int, ...]) -> int | None:
        for cat in cats:
            conns = self.aggregates[cat]
            n = len(conns)
            if n:
                start = self.any_cursor % n
                self.any_cursor += 1
                for i in range(n):
                    c = conns[(start + i) % n]
                    if c != skip:
                        return c
        return None


class _SubRecord:
    __slots__ = ("category", "conn", "key")

    def __init__(self, key: RouteKey, conn: int, category: ConnType) -> None:
        self.key = key
        self.conn = conn
        self.category = category


class SubscriptionTable:
    """Subscriptions by name; see the module docstring for the rules."""

    def __init__(self) -> None:
        self._routing: dict[tuple[int, int, int], _Prefix] = {}
        self._subs: dict[int, _SubRecord] = {}
        self._conn_subs: dict[int, set[int]] = {}
        self.generation = 0

    def __repr__(self) -> str:
        return f"<SubscriptionTable prefixes={len(self._routing)} subscriptions={len(self._subs)}>"

    # -- updates ---------------------------------------------------------------------------

    def add(
        self,
        key: RouteKey,
        strings: tuple[str, str, str],
        conn: int,
        category: ConnType,
        subscription_id: int,
    ) -> bool:
        """Record ``subscription_id`` for ``key`` on ``conn``; True on the slot's 0→1."""
        prefix = (key.c0, key.c1, key.c2)
        entry = self._routing.get(prefix)
        if entry is None:
            entry = self._routing[prefix] = _Prefix(strings)
        slots = entry.ids.get(key.id)
        if slots is None:
            slots = entry.ids[key.id] = (_ConnList(), _ConnList(), _ConnList(), _ConnList())
        slot = slots[category].conns
        first = not slot
        if conn not in slot:
            slot.append(conn)
        agg = entry.aggregates[category]
        if conn not in agg:
            agg.append(conn)
        self._subs[subscription_id] = _SubRecord(key, conn, category)
        self._conn_subs.setdefault(conn, set()).add(subscription_id)
        self.generation += 1
        return first

    def remove(self, key: RouteKey, conn: int, category: ConnType, subscription_id: int) -> bool:
        """Remove one subscription; True on the slot's 1→0.

        Raises :class:`SubscriptionError` with the reference's message for each failure kind:
        unknown prefix, unknown id under it, unknown ``subscription_id``, or an id recorded for
        another conn or name.
        """
        prefix = (key.c0, key.c1, key.c2)
        entry = self._routing.get(prefix)
        if entry is None:
            raise SubscriptionError("subscription not found")
        if key.id not in entry.ids:
            raise SubscriptionError(f"id not found: {format_id(key.id)}")
        record = self._subs.get(subscription_id)
        if record is None:
            raise SubscriptionError(f"subscription id not found: {subscription_id}")
        if record.conn != conn:
            raise SubscriptionError(f"connection id not found: {conn}")
        if record.key != key:
            raise SubscriptionError(f"subscription id not found: {subscription_id}")
        self._forget(subscription_id, record)
        if self._still_subscribed(conn, key):
            return False
        last = self._remove_conn_for_id(entry, key.id, conn, category)
        self._prune(prefix, entry)
        self.generation += 1
        return last

    def remove_connection(self, conn: int) -> dict[RouteKey, tuple[tuple[str, str, str], bool]]:
        """Drop every subscription of ``conn``; returns each name it held, with its strings
        and whether that slot went 1→0 (for propagation)."""
        sub_ids = self._conn_subs.pop(conn, None)
        if not sub_ids:
            return {}
        keys: dict[RouteKey, ConnType] = {}
        for sid in sub_ids:
            record = self._subs.pop(sid, None)
            if record is not None:
                keys.setdefault(record.key, record.category)
        out: dict[RouteKey, tuple[tuple[str, str, str], bool]] = {}
        for key, category in keys.items():
            prefix = (key.c0, key.c1, key.c2)
            entry = self._routing.get(prefix)
            if entry is None:
                continue
            last = self._remove_conn_for_id(entry, key.id, conn, category)
            out[key] = (entry.strings, last)
            self._prune(prefix, entry)
        self.generation += 1
        return out

    def _forget(self, subscription_id: int, record: _SubRecord) -> None:
        del self._subs[subscription_id]
        ids = self._conn_subs.get(record.conn)
        if ids is not None:
            ids.discard(subscription_id)
            if not ids:
                del self._conn_subs[record.conn]

    def _still_subscribed(self, conn: int, key: RouteKey) -> bool:
        subs = self._subs
        return any(
            (r := subs.get(s)) is not None and r.key == key for s in self._conn_subs.get(conn, ())
        )

    @staticmethod
    def _remove_conn_for_id(entry: _Prefix, name_id: int, conn: int, category: ConnType) -> bool:
        slots = entry.ids.get(name_id)
        if slots is None:
            return False
        slot = slots[category].conns
        if conn in slot:
            # the reference swap-removes; order only affects round-robin position
            i = slot.index(conn)
            slot[i] = slot[-1]
            slot.pop()
        agg = entry.aggregates[category]
        if conn in agg and not any(conn in s[category].conns for s in entry.ids.values()):
            i = agg.index(conn)
            agg[i] = agg[-1]
            agg.pop()
        return not slot

    def _prune(self, prefix: tuple[int, int, int], entry: _Prefix) -> None:
        empty = [i for i, slots in entry.ids.items() if not any(s.conns for s in slots)]
        if empty:
            for i in empty:
                del entry.ids[i]
            entry.rebuild_aggregates()
        if not entry.ids:
            del self._routing[prefix]

    # -- lookups (hot path) ----------------------------------------------------------------

    def match_one(
        self, key: tuple[int, int, int, int], skip: int, exclude_peer: bool = False
    ) -> int | None:
        """Anycast/unicast: the first category (Local, Remote, Peer, Edge) with a candidate
        other than ``skip``, round-robin within it; ``None`` when nothing matches."""
        entry = self._routing.get(key[:3])
        if entry is None:
            return None
        cats = _NO_PEER if exclude_peer else _ALL
        name_id = key[3]
        if name_id == NULL_ID:
            return entry.pick_one_any(skip, cats)
        slots = entry.ids.get(name_id)
        if slots is None:
            return None
        for cat in cats:
            lst = slots[cat]
            conns = lst.conns
            if not conns:
                continue
            if len(conns) == 1:  # the common unicast case: no cursor to move
                if conns[0] != skip:
                    return conns[0]
                continue
            picked = lst.next(skip)
            if picked is not None:
                return picked
        return None

    def single_candidate(
        self, key: tuple[int, int, int, int], skip: int, exclude_peer: bool = False
    ) -> bool:
        """Whether :meth:`match_one` has exactly one possible answer (so it may be cached)."""
        entry = self._routing.get(key[:3])
        if entry is None:
            return False
        cats = _NO_PEER if exclude_peer else _ALL
        name_id = key[3]
        if name_id == NULL_ID:
            lists = [entry.aggregates[cat] for cat in cats]
        else:
            slots = entry.ids.get(name_id)
            if slots is None:
                return False
            lists = [slots[cat].conns for cat in cats]
        for conns in lists:
            candidates = [c for c in conns if c != skip]
            if candidates:
                return len(candidates) == 1
        return False

    def match_all(
        self, key: tuple[int, int, int, int], skip: int, exclude_peer: bool = False
    ) -> list[int]:
        """Multicast: every conn for the exact id (or every conn under the prefix for a NULL
        id) across the allowed categories, except ``skip``."""
        entry = self._routing.get(key[:3])
        if entry is None:
            return []
        cats = _NO_PEER if exclude_peer else _ALL
        name_id = key[3]
        if name_id == NULL_ID:
            lists = [entry.aggregates[cat] for cat in cats]
        else:
            slots = entry.ids.get(name_id)
            if slots is None:
                return []
            lists = [slots[cat].conns for cat in cats]
        return [c for conns in lists for c in conns if c != skip]

    # -- inspection ------------------------------------------------------------------------

    def has_subscription(self, subscription_id: int) -> bool:
        return subscription_id in self._subs

    def conns_for(self, key: RouteKey) -> set[int]:
        """Every conn subscribed to exactly ``key`` (any category)."""
        entry = self._routing.get((key.c0, key.c1, key.c2))
        if entry is None:
            return set()
        slots = entry.ids.get(key.id)
        if slots is None:
            return set()
        return {c for s in slots for c in s.conns}

    def strings_for(self, key: RouteKey) -> tuple[str, str, str] | None:
        entry = self._routing.get((key.c0, key.c1, key.c2))
        return None if entry is None else entry.strings

    def subscription_ids(self, conn: int) -> frozenset[int]:
        return frozenset(self._conn_subs.get(conn, ()))

    def __len__(self) -> int:
        return len(self._subs)

    def __iter__(self) -> Iterator[SubscriptionEntry]:
        for prefix, entry in self._routing.items():
            for name_id, slots in entry.ids.items():
                yield SubscriptionEntry(
                    strings=entry.strings,
                    key=RouteKey(*prefix, name_id),
                    local=tuple(slots[0].conns),
                    remote=tuple(slots[1].conns),
                    peer=tuple(slots[2].conns),
                    edge=tuple(slots[3].conns),
                )

    def entries(self) -> list[SubscriptionEntry]:
        return list(self)
