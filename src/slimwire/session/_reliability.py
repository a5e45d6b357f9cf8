"""The data structures behind reliable delivery (no timers, no messages: plain bookkeeping).

* :class:`ProducerBuffer` keeps the last ``capacity`` sent messages by id so RTX requests can be
  answered; an id that fell out is answered with ``error=true`` ("gone").
* :class:`ReorderBuffer` is one per source: the first id seen sets the baseline (a stream may
  start anywhere, e.g. after we joined late), later ids are delivered strictly in order, gaps
  produce the list of ids to request, and a lost id is skipped with a marker so delivery goes on.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar

from slimwire.session._ids import MAX_PUBLISH_ID, id_distance, is_after, next_data_id

__all__ = ["Lost", "ProducerBuffer", "ReorderBuffer"]

T = TypeVar("T")

MAX_GAP = 512
"""Ids further behind the newest than this are declared lost at once, not requested: the
sender's buffer holds 512 messages, so they cannot be retransmitted anyway."""


class Lost(NamedTuple):
    """Marker in a delivery list: ``span`` messages from ``message_id`` on will never arrive."""

    message_id: int
    span: int = 1


class ProducerBuffer(Generic[T]):
    """The last ``capacity`` items by message id (insertion order = send order).

    An OrderedDict, not a dict: evicting the oldest entry of a plain dict
    (``next(iter(d))``) walks over the slots its earlier evictions left empty, so a full
    buffer paid ~0.43 us per push against ~0.19 for ``popitem(last=False)``.
    """

    __slots__ = ("_items", "capacity")

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()  # insertion order = send order

    def push(self, message_id: int, item: T) -> None:
        items = self._items
        if message_id in items:  # an id again (after wrapping): it becomes the newest
            del items[message_id]
        items[message_id] = item
        while len(items) > self.capacity:
            items.popitem(last=False)

    def get(self, message_id: int) -> T | None:
        return self._items.get(message_id)

    def __repr__(self) -> str:
        return f"ProducerBuffer({len(self._items)}/{self.capacity})"

    def __len__(self) -> int:
        return len(self._items)


class _LostMark:
    __slots__ = ()


_LOST = _LostMark()


class ReorderBuffer(Generic[T]):
    """In-order, exactly-once delivery of one source's numbered stream."""

    __slots__ = ("_held", "_last", "_requested")

    def __init__(self, last_delivered: int | None = None) -> None:
        """``last_delivered=0`` when the stream is known to start at 1 (a p2p session);
        ``None`` to take the first id seen as the start (a member joining a running group)."""
        self._last: int | None = last_delivered
        self._held: dict[int, T | _LostMark] = {}
        self._requested: set[int] = set()

    def __repr__(self) -> str:
        return (
            f"ReorderBuffer(last={self._last}, held={len(self._held)}, "
            f"requested={len(self._requested)})"
        )

    @property
    def last_delivered(self) -> int | None:
        return self._last

    @property
    def waiting(self) -> int:
        """Ids held back behind a gap."""
        return len(self._held)

    def on_message(self, message_id: int, item: T) -> tuple[list[T | Lost], list[int]]:
        """Take a received message; return (what to deliver now, ids to request).

        Work is bounded by ``MAX_GAP`` whatever id arrives: a jump further ahead declares the
        ids it skips lost as one range.
        """
        last = self._last
        if last is None:
            self._last = message_id
            return [item], []
        if not self._held and message_id == (last + 1 if last < MAX_PUBLISH_ID else 0):
            # the common case, the next id with nothing held back: no gap to fill or request
            self._last = message_id
            if self._requested:
                self._requested.discard(message_id)
            return [item], []
        if not is_after(message_id, last) or message_id in self._held:
            return [], []  # duplicate or older than what was delivered
        self._requested.discard(message_id)
        out: list[T | Lost] = []
        gap = id_distance(next_data_id(last), message_id)
        if gap > MAX_GAP:
            self._skip_to((last + gap - MAX_GAP) % (MAX_PUBLISH_ID + 1), out)
        self._held[message_id] = item
        self._flush(out)
        requests: list[int] = []
        if message_id in self._held:
            assert self._last is not None
            cursor = next_data_id(self._last)
            while cursor != message_id:
                if cursor not in self._held and cursor not in self._requested:
                    self._requested.add(cursor)
                    requests.append(cursor)
                cursor = next_data_id(cursor)
        return out, requests

    def _skip_to(self, target: int, out: list[T | Lost]) -> None:
        """Give up on everything up to ``target``: deliver what is held there, in order, and
        report the holes as lost ranges."""
        assert self._last is not None
        last = self._last
        span = id_distance(last, target)
        inside = sorted(
            (id_distance(last, held), held)
            for held in self._held
            if 0 < id_distance(last, held) <= span
        )
        cursor = next_data_id(last)
        for _, held in inside:
            if held != cursor:
                out.append(Lost(cursor, id_distance(cursor, held)))
            item = self._held.pop(held)
            out.append(Lost(held) if isinstance(item, _LostMark) else item)
            cursor = next_data_id(held)
        end = next_data_id(target)
        if cursor != end:
            out.append(Lost(cursor, id_distance(cursor, end)))
        self._last = target
        self._requested = {r for r in self._requested if is_after(r, target)}

    def on_lost(self, message_id: int) -> list[T | Lost]:
        """The sender no longer has ``message_id`` (or we gave up): skip it."""
        self._requested.discard(message_id)
        if self._last is None or not is_after(message_id, self._last):
            return []
        if message_id in self._held:
            return []
        self._held[message_id] = _LOST
        out: list[T | Lost] = []
        self._flush(out)
        return out

    def is_pending(self, message_id: int) -> bool:
        """Still waiting for ``message_id`` (requested and neither received nor given up)."""
        return message_id in self._requested

    def _flush(self, out: list[T | Lost]) -> None:
        assert self._last is not None
        held = self._held
        while held:
            nxt = next_data_id(self._last)
            if nxt not in held:
                break
            item = held.pop(nxt)
            self._requested.discard(nxt)
            out.append(Lost(nxt) if isinstance(item, _LostMark) else item)
            self._last = nxt
