"""Replay protection for signed control messages (MLS sessions only), as the reference does.

A signed control message is only as fresh as its token, and tokens stay valid for an hour: a
recorded JOIN_REQUEST or GROUP_UPDATE could be fed back. So each session remembers the last
:data:`MAX_IDS_PER_SENDER` control message ids per sender (for at most :data:`MAX_SENDERS`
senders, least recently heard dropped first) and refuses an id it has seen, and id 0 outright
(the reference: ``session_controller.rs::verify_and_check_replay``, LRU sizes 1000 and 100).
Like the reference, a retransmitted request is refused too: the reply to the first copy is the
answer, and a lost reply fails the request instead of being answered twice.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["MAX_IDS_PER_SENDER", "MAX_SENDERS", "ControlReplayGuard"]

MAX_IDS_PER_SENDER = 1000
MAX_SENDERS = 100

_SenderKey = tuple[int, int, int, int]


class ControlReplayGuard:
    """Per-sender LRU of seen control message ids; :meth:`check` says why a message is refused."""

    __slots__ = ("_max_ids", "_max_senders", "_seen")

    def __init__(self, max_ids: int = MAX_IDS_PER_SENDER, max_senders: int = MAX_SENDERS) -> None:
        self._seen: OrderedDict[_SenderKey, OrderedDict[int, None]] = OrderedDict()
        self._max_ids = max_ids
        self._max_senders = max_senders

    def __repr__(self) -> str:
        return f"ControlReplayGuard(senders={len(self._seen)})"

    def check(self, sender: _SenderKey, message_id: int) -> str | None:
        """Record ``message_id`` from ``sender``; the refusal reason, or ``None`` if fresh."""
        if message_id == 0:
            return "control message id 0"
        ids = self._seen.get(sender)
        if ids is None:
            ids = self._seen[sender] = OrderedDict()
            if len(self._seen) > self._max_senders:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(sender)
        if message_id in ids:
            ids.move_to_end(message_id)
            return f"replayed control message id {message_id}"
        ids[message_id] = None
        if len(ids) > self._max_ids:
            ids.popitem(last=False)
        return None

    def forget(self, sender: _SenderKey, message_id: int) -> None:
        """Un-record an id whose message was checked fresh but could not be acted on yet (a
        welcome whose MLS join failed, say, on a signing key not fetched yet): its
        retransmission must get another try instead of being refused as a replay."""
        ids = self._seen.get(sender)
        if ids is not None:
            ids.pop(message_id, None)
