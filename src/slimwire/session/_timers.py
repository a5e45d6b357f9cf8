"""Deadlines as values: the layer records them, the driver sleeps until the earliest one.

Keys identify what a timer is for (e.g. ``(session_id, "ack", message_id)``); re-arming a key
replaces its deadline and cancelling is O(1). The heap is cleaned lazily.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable

__all__ = ["Timers"]


class Timers:
    __slots__ = ("_active", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._active: dict[Hashable, tuple[float, int]] = {}
        self._seq = itertools.count()

    def arm(self, key: Hashable, deadline: float) -> None:
        seq = next(self._seq)
        self._active[key] = (deadline, seq)
        heapq.heappush(self._heap, (deadline, seq, key))

    def cancel(self, key: Hashable) -> None:
        self._active.pop(key, None)

    def is_armed(self, key: Hashable) -> bool:
        return key in self._active

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, seq, key = heap[0]
            if self._active.get(key) == (deadline, seq):
                return deadline
            heapq.heappop(heap)
        return None

    def pop_expired(self, now: float) -> list[Hashable]:
        """Keys whose deadline is ``<= now``, earliest first; they are disarmed."""
        out: list[Hashable] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, seq, key = heapq.heappop(heap)
            if self._active.get(key) == (deadline, seq):
                del self._active[key]
                out.append(key)
        return out

    def __len__(self) -> int:
        return len(self._active)

    def __repr__(self) -> str:
        return f"Timers(active={len(self._active)}, next={self.next_deadline()})"
