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

from slimwire.session._ids import id_distance, is_after, next_data_id

__all__ = ["Lost", "ProducerBuffer", "ReorderBuffer"]

T = TypeVar("T")

MAX_GAP = 512
"""Ids further behind the newest than this are declared lost at once, not requested: the
sender's buffer holds 512 messages, so they cannot be retransmitted anyway."""


class Lost(NamedTuple):
    """Marker in a delivery list: message ``message_id`` will never be delivered."""

    message_id: int


class ProducerBuffer(Generic[T]):
    """The last ``capacity`` items by message id (insertion order = send order)."""

    __slots__ = ("_items", "capacity")

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()

    def push(self, message_id: int, item: T) -> None:
        self._items[message_id] = item
        self._items.move_to_end(message_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, message_id: int) -> T | None:
        return self._items.get(message_id)

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

    @property
    def last_delivered(self) -> int | None:
        return self._last

    @property
    def waiting(self) -> int:
        """Ids held back behind a gap."""
        return len(self._held)

    def on_message(self, message_id: int, item: T) -> tuple[list[T | Lost], list[int]]:
        """Take a received message; return (what to deliver now, ids to request)."""
        if self._last is None:
            self._last = message_id
            return [item], []
        if not is_after(message_id, self._last) or message_id in self._held:
            return [], []  # duplicate or older than what was delivered
        self._requested.discard(message_id)
        expected = next_data_id(self._last)
        if message_id == expected:
            self._last = message_id
            out: list[T | Lost] = [item]
            self._flush(out)
            return out, []
        self._held[message_id] = item
        out = []
        gap = id_distance(expected, message_id)
        cursor = expected
        if gap > MAX_GAP:
            # too far behind to be retransmitted: give those up now
            for _ in range(gap - MAX_GAP):
                if cursor not in self._held:
                    self._held[cursor] = _LOST
                cursor = next_data_id(cursor)
            self._flush(out)
        requests = []
        while cursor != message_id:
            if cursor not in self._held and cursor not in self._requested:
                self._requested.add(cursor)
                requests.append(cursor)
            cursor = next_data_id(cursor)
        return out, requests

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
