"""Recognise session-layer retransmissions in received bytes, for the node's telemetry.

A node does not run sessions, but the session header travels in clear right after the SLIM
header (slim-wire.md §3.3): a receiver that sees a gap asks the sender with ``RTX_REQUEST``
and the sender answers with ``RTX_REPLY`` (the buffered message, or ``error=true`` when it is
gone). Counting those per link tells an operator where messages are being lost without any
session state in the node. Timer-driven resends of a ``MSG`` are byte-identical to the
original and cannot be told apart without per-session state, so they are not counted.

The reader walks only the envelope prefix (``Message.publish`` = field 3, then ``header`` =
field 1, then ``session`` = field 2, as every protobuf encoder writes them) and never raises:
anything else is simply not a retransmission. It costs ~0.3 µs per message (533-byte
publishes, one core), which is why the forwarder runs it only when the figures are read
(``Forwarder.count_rtx``).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["RTX_REPLY", "RTX_REQUEST", "count_retransmissions", "session_message_type"]

RTX_REQUEST = 3
"""``SESSION_MESSAGE_TYPE_RTX_REQUEST``."""
RTX_REPLY = 4
"""``SESSION_MESSAGE_TYPE_RTX_REPLY``."""


def _varint(raw: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position); (-1, end) when the varint runs past ``end`` or 10 bytes."""
    value = 0
    shift = 0
    while pos < end and shift < 70:
        b = raw[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    return -1, end


def session_message_type(raw: bytes) -> int:
    """The ``session_message_type`` of a Publish in ``raw`` (a serialized ``Message``); 0 when
    ``raw`` is not a Publish laid out in field order or carries none."""
    try:
        if raw[0] != 0x1A:
            return 0
        # envelope length: 1 or 2 bytes inline (messages below 16 KiB), else the general reader
        ln = raw[1]
        p = 2
        if ln >= 0x80:
            if raw[2] < 0x80:
                ln = (ln & 0x7F) | (raw[2] << 7)
                p = 3
            else:
                ln, p = _varint(raw, 1, len(raw))
                if ln < 0:
                    return 0
        end = p + ln
        if raw[p] != 0x0A:
            return 0
        hl = raw[p + 1]
        p += 2
        if hl >= 0x80:
            if raw[p] < 0x80:
                hl = (hl & 0x7F) | (raw[p] << 7)
                p += 1
            else:
                hl, p = _varint(raw, p - 1, end)
                if hl < 0:
                    return 0
        p += hl
        if p + 1 >= end or raw[p] != 0x12:
            return 0
        send = p + 2 + raw[p + 1]  # a SessionHeader is at most 24 bytes: one length byte
        if raw[p + 1] >= 0x80 or send > end:
            return 0
        p += 2
        if p < send and raw[p] == 0x08:  # session_type (small enum: one byte)
            if raw[p + 1] >= 0x80:
                return 0
            p += 2
        if p + 1 < send and raw[p] == 0x10:
            kind = raw[p + 1]
            return kind if kind < 0x80 else 0
    except IndexError:
        pass
    return 0


def count_retransmissions(batch: Iterable[bytes]) -> tuple[int, int]:
    """(RTX requests, RTX replies) among the messages of ``batch``.

    Most messages are settled inline: with two-byte envelope and header lengths (messages of
    128 B to 16 KiB) and a session header that starts ``08 <type> 10 <kind>``, a ``kind``
    other than 3 or 4 is certainly not a retransmission. Everything else (the rare RTX, other
    layouts) goes to the exact :func:`session_message_type`. A call per message would double
    the cost, which is what the node pays per message while counting.
    """
    requests = replies = 0
    for raw in batch:
        try:
            if (
                raw[0] == 0x1A
                and raw[3] == 0x0A
                and raw[1] & raw[4] & 0x80
                and not (raw[2] | raw[5]) & 0x80
            ):
                p = 6 + ((raw[4] & 0x7F) | (raw[5] << 7))
                kind = raw[p + 5]
                if (
                    kind != 3  # noqa: PLR1714 - two compares beat a global set lookup here
                    and kind != 4  # RTX_REQUEST, RTX_REPLY
                    and raw[p] == 0x12
                    and raw[p + 2] == 0x08
                    and raw[p + 4] == 0x10
                ):
                    continue
        except IndexError:
            pass
        kind = session_message_type(raw)
        if kind == RTX_REQUEST:
            requests += 1
        elif kind == RTX_REPLY:
            replies += 1
    return requests, replies
