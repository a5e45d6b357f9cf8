"""Fast path for routed messages: parse, verify and re-emit a serialized Message without protobuf.

A forwarder holds a received ``Message`` as bytes. :func:`parse_frame` walks just enough of it to
route (kind, destination key, fanout, ttl, forward_to ...) and to check the header MAC; then
:meth:`Frame.forward` prepares the outbound bytes with the new ttl and ``incoming_conn`` and with
``recv_from``/``forward_to`` cleared, and :meth:`Outbound.signed` adds each outgoing link's tag.
The outbound message is spliced from the received bytes: the session header, payload and
metadata are copied, never decoded or re-encoded.

What the fast path checks: the envelope and the whole header, as protobuf would (including UTF-8
of every string in the header) plus the reference's validation (header with source and
destination names, a Publish has a session header). What it does not: the insides of the session
header, payload and metadata. A node that must not relay malformed payloads from untrusted apps
can still afford ``pb.Message.FromString(raw)`` for validation (≈0.4 µs) and keep the fast splice.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple

from google.protobuf.message import DecodeError

from slimwire.link._wire import HeaderFields, NameKey, _varint, walk_header

if TYPE_CHECKING:
    from slimwire.link._mac import HeaderMac

_MAC_FIELD = b"\x5a\x20"  # field 11, length-delimited, 32 bytes
_KIND_TAG = (b"", b"\x0a", b"\x12", b"\x1a")
_ERR_FIELD = {None: b"", False: b"\x50\x00", True: b"\x50\x01"}
_ERR_PRE = {None: b"\x00\x00\x00", False: b"\x00\x00\x01\x00", True: b"\x00\x00\x01\x01"}


class FrameKind(enum.IntEnum):
    """Which routed message a frame is (the value is its field number in ``Message``)."""

    SUBSCRIBE = 1
    UNSUBSCRIBE = 2
    PUBLISH = 3


_KINDS = (FrameKind.SUBSCRIBE, FrameKind.SUBSCRIBE, FrameKind.UNSUBSCRIBE, FrameKind.PUBLISH)


def _uvarint(value: int) -> bytes:
    """Encode an unsigned varint (one byte is by far the most common case)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Frame(NamedTuple):
    """A Publish, Subscribe or Unsubscribe read from wire bytes (see :func:`parse_frame`).

    The offsets locate the routed body and its header inside ``raw`` for re-emission;
    ``pb.SLIMHeader.FromString(raw[header_start:header_end])`` is the header alone.
    """

    kind: FrameKind
    header: HeaderFields
    raw: bytes
    body_tag_at: int
    body_start: int
    body_end: int
    header_tag_at: int
    header_start: int
    header_end: int

    @property
    def destination(self) -> NameKey:
        """The destination's routing key (c0, c1, c2, id); always present in a frame."""
        dst = self.header.destination
        assert dst is not None
        return dst

    @property
    def source(self) -> NameKey:
        src = self.header.source
        assert src is not None
        return src

    def forward(self, ttl: int, incoming_conn: int | None = None) -> Outbound:
        """Prepare this message for sending with ``ttl`` and ``incoming_conn`` set.

        ``recv_from`` and ``forward_to`` are cleared (the reference clears them before every
        send); every other field, unknown ones included, is copied byte for byte. Call once per
        received message, then :meth:`Outbound.signed` once per outgoing link.
        """
        return Outbound(self, ttl, incoming_conn)


class Outbound:
    """The bytes of one forwarded message, waiting for each outgoing link's tag."""

    __slots__ = ("_body", "_frame", "_head", "_low", "_sig_tail", "_tail")

    def __init__(self, frame: Frame, ttl: int, incoming_conn: int | None) -> None:
        if not 0 <= ttl <= 0xFFFFFFFF:
            raise ValueError(f"ttl out of range: {ttl}")
        hdr = frame.header
        raw = frame.raw
        low = hdr.keep_low
        if ttl:
            low += b"\x30" + _uvarint(ttl)
        if incoming_conn is not None:
            low += b"\x48" + _uvarint(incoming_conn)
        low += _ERR_FIELD[hdr.error]
        self._frame = frame
        self._low = low
        self._body = hdr.body
        self._sig_tail = _ERR_PRE[hdr.error] + ttl.to_bytes(4, "little")
        high = hdr.keep_high
        hdr_len = len(low) + 34 + len(high)
        self._head = self._prefix(hdr_len) + low + _MAC_FIELD
        self._tail = high + raw[frame.header_end :]

    def _prefix(self, hdr_len: int) -> bytes:
        """Everything before the header's fields, with lengths for a header of ``hdr_len``."""
        f = self._frame
        raw = f.raw
        body_len = (
            (f.header_tag_at - f.body_start)
            + 1
            + len(_uvarint(hdr_len))
            + hdr_len
            + (f.body_end - f.header_end)
        )
        return b"".join(
            (
                raw[: f.body_tag_at],
                _KIND_TAG[f.kind],
                _uvarint(body_len),
                raw[f.body_start : f.header_tag_at],
                b"\x0a",
                _uvarint(hdr_len),
            )
        )

    def tag_for(self, mac: HeaderMac) -> bytes:
        """The tag the outbound header gets on ``mac``'s link."""
        return mac.tag2(self._body, self._sig_tail)

    def signed(self, mac: HeaderMac) -> bytes:
        """The message bytes for a link that MACs headers (REMOTE and EDGE links)."""
        return self._head + mac.tag2(self._body, self._sig_tail) + self._tail

    def unsigned(self) -> bytes:
        """The message bytes with no ``header_mac`` (PEER links and local deliveries)."""
        high = self._frame.header.keep_high
        low = self._low
        return self._prefix(len(low) + len(high)) + low + self._tail


def parse_frame(raw: bytes) -> Frame | None:
    """Read a serialized Message on the fast path.

    Returns a :class:`Frame` for a valid Publish, Subscribe or Unsubscribe. Returns None for
    anything else (Link, SubscriptionAck, malformed bytes, messages the reference would drop,
    encodings the fast path leaves to protobuf such as a repeated header): parse those with
    ``pb.Message.FromString``. Never raises for any input bytes.
    """
    try:
        return _parse(raw)
    except (IndexError, DecodeError, UnicodeDecodeError):
        return None


def _parse(raw: bytes) -> Frame | None:
    n = len(raw)
    pos = 0
    kind = 0
    tag_at = bstart = bend = 0
    # Envelope: exactly one routed body (fields 1-3) and any metadata entries (field 4).
    while pos < n:
        start = pos
        tag = raw[pos]
        pos += 1
        if tag & 7 != 2 or tag >= 0x80:
            return None
        ln = raw[pos]
        pos += 1
        if ln >= 0x80:
            ln, pos = _varint(raw, pos - 1)
        nxt = pos + ln
        if nxt > n:
            return None
        fn = tag >> 3
        if 1 <= fn <= 3:
            if kind:
                return None  # two routed bodies: oneof/merge semantics, leave to protobuf
            kind = fn
            tag_at, bstart, bend = start, pos, nxt
        elif fn != 4:
            return None  # Link, SubscriptionAck, unknown fields
        pos = nxt
    if not kind:
        return None
    # Body: one header (field 1); a Publish also has session (2) and content (3); a
    # Subscribe/Unsubscribe has subscription_id (2, varint).
    pos = bstart
    htag = hstart = hend = -1
    has_session = False
    while pos < bend:
        start = pos
        tag = raw[pos]
        pos += 1
        if tag == 0x10 and kind != 3:
            val = raw[pos]
            pos += 1
            if val >= 0x80:
                _, pos = _varint(raw, pos - 1)
            continue
        if tag & 7 != 2 or tag >= 0x80:
            return None
        ln = raw[pos]
        pos += 1
        if ln >= 0x80:
            ln, pos = _varint(raw, pos - 1)
        nxt = pos + ln
        if nxt > bend:
            return None
        if tag == 0x0A:
            if htag >= 0:
                return None
            htag, hstart, hend = start, pos, nxt
        elif kind == 3 and tag == 0x12:
            has_session = True
        elif not (kind == 3 and tag == 0x1A):
            return None
        pos = nxt
    if pos != bend or htag < 0 or (kind == 3 and not has_session):
        return None
    hdr = walk_header(raw, hstart, hend)
    if hdr is None or hdr.source is None or hdr.destination is None:
        return None
    return Frame(_KINDS[kind], hdr, raw, tag_at, bstart, bend, htag, hstart, hend)
