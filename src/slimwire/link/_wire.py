"""The header-MAC preimage, built straight from protobuf wire bytes.

Why walk the wire format by hand: a node verifies one MAC per received message and signs one per
sent copy, and the preimage needs a dozen header fields, two of them nested names. Reading them
through parsed upb objects costs more than the HMAC itself; walking the ~450 serialized header
bytes in one pass, with each name's preimage encoding cached under its serialized bytes, costs
about as much as one SHA-256. The same walk also yields everything the forwarder routes on and
the byte ranges it needs to re-emit the message with a new ttl and tag and no re-serialization.

Semantics follow protobuf exactly where it matters (last value wins for scalars, unknown fields
are skipped) and bail out (``None``) where the fast path would have to emulate more of it: a
repeated or merged name, a known field with the wrong wire type, groups. ``None`` always means
"parse it the normal way"; it never means "valid".
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from google.protobuf.message import DecodeError

from slimwire._proto import data_plane_pb2 as pb

NULL_ID = (1 << 128) - 1
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1

_U32 = struct.Struct("<I").pack
_ENC = struct.Struct("<BBQQQ").pack  # name present, encoded present, c0, c1, c2
_NID = struct.Struct("<BQQ").pack
_OPT_U64 = struct.Struct("<BQ").pack
_NO_OPT = (b"\x00", b"\x01\x00", b"\x01\x01")  # opt_bool: None, False, True

NameKey = tuple[int, int, int, int]
"""A name's routing key: the three component hashes and the 128-bit id."""

NAME_CACHE_MAX = 16384
_name_cache: dict[bytes, tuple[bytes, NameKey | None]] = {}


def encode_name(name: pb.Name) -> bytes:
    """The preimage encoding of a present Name (both forms, with presence bytes)."""
    parts: list[bytes] = []
    if name.HasField("name"):
        enc = name.name
        parts.append(_ENC(1, 1, enc.component_0, enc.component_1, enc.component_2))
        if enc.HasField("name_id"):
            parts.append(_NID(1, enc.name_id.id_0, enc.name_id.id_1))
        else:
            parts.append(b"\x00")
    else:
        parts.append(b"\x01\x00")
    if name.HasField("str_name"):
        s = name.str_name
        parts.append(b"\x01")
        for comp in (s.str_component_0, s.str_component_1, s.str_component_2):
            data = comp.encode()
            parts.append(_U32(len(data)))
            parts.append(data)
    else:
        parts.append(b"\x00")
    return b"".join(parts)


def _name_entry(raw: bytes) -> tuple[bytes, NameKey | None]:
    """Preimage bytes and routing key of a serialized Name, cached (bounded) by its bytes.

    Raises DecodeError for bytes that are not a valid Name (bad UTF-8 included).
    """
    hit = _name_cache.get(raw)
    if hit is not None:
        return hit
    name = pb.Name.FromString(raw)
    key = _name_key(name)
    entry = (encode_name(name), key)
    if len(_name_cache) >= NAME_CACHE_MAX:
        # Wholesale reset: O(1) amortised and immune to adversarial eviction patterns; real
        # traffic has few distinct names per node, so the cache refills in a few messages.
        _name_cache.clear()
    _name_cache[raw] = entry
    return entry


def name_cache_clear() -> None:
    """Forget every cached name encoding (tests and long-lived processes may want this)."""
    _name_cache.clear()


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos`` (any length up to 10 bytes); IndexError when truncated."""
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


class HeaderFields(NamedTuple):
    """A SLIMHeader as the MAC and the forwarder see it, read from its serialized bytes."""

    source: NameKey | None
    destination: NameKey | None
    fanout: int
    ttl: int
    recv_from: int | None
    forward_to: int | None
    incoming_conn: int | None
    error: bool | None
    header_mac: bytes | None
    body: bytes
    """Preimage middle: enc(source) || enc(destination) || len+identity || fanout."""
    keep_low: bytes
    """Raw fields 1-5 (names, identity, fanout, version): copied unchanged when re-emitting."""
    keep_high: bytes
    """Raw field 12 (e2e_header_sig) and unknown fields: copied unchanged when re-emitting."""

    def tail(self) -> bytes:
        """Preimage end for verifying: recv_from, forward_to, error, ttl as received."""
        rf = b"\x00" if self.recv_from is None else _OPT_U64(1, self.recv_from)
        ft = b"\x00" if self.forward_to is None else _OPT_U64(1, self.forward_to)
        err = self.error
        return b"".join((rf, ft, _NO_OPT[0 if err is None else 1 + err], _U32(self.ttl)))


# Tags (field number << 3 | wire type) of SLIMHeader fields.
_T_SRC, _T_DST, _T_ID, _T_FAN, _T_VER, _T_TTL = 0x0A, 0x12, 0x1A, 0x20, 0x2A, 0x30
_MAX_TAG = (1 << 32) - 1  # field numbers are 29 bits
_T_RECV, _T_FWD, _T_INC, _T_ERR, _T_MAC, _T_SIG = 0x38, 0x40, 0x48, 0x50, 0x5A, 0x62


def walk_header(buf: bytes, pos: int, end: int) -> HeaderFields | None:
    """Read the SLIMHeader serialized in ``buf[pos:end]``; None if it needs the slow path.

    Raises IndexError/DecodeError/UnicodeDecodeError on malformed bytes (callers catch).
    """
    src_raw: bytes | None = None
    dst_raw: bytes | None = None
    ident = b""
    fanout = ttl = 0
    recv_from: int | None = None
    forward_to: int | None = None
    incoming: int | None = None
    error: bool | None = None
    mac: bytes | None = None
    low: list[bytes] = []
    high: list[bytes] = []
    while pos < end:
        start = pos
        tag = buf[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(buf, start)
            if tag > _MAX_TAG:
                return None
        wire = tag & 7
        if wire == 2:
            ln = buf[pos]
            pos += 1
            if ln >= 0x80:
                ln, pos = _varint(buf, pos - 1)
            nxt = pos + ln
            if nxt > end:
                return None
            if tag == _T_ID:
                ident = buf[pos:nxt]
                if not ident.isascii():
                    ident.decode()
                low.append(buf[start:nxt])
            elif tag == _T_SRC:
                if src_raw is not None:
                    return None  # a repeated message field merges: leave it to protobuf
                src_raw = buf[pos:nxt]
                low.append(buf[start:nxt])
            elif tag == _T_DST:
                if dst_raw is not None:
                    return None
                dst_raw = buf[pos:nxt]
                low.append(buf[start:nxt])
            elif tag == _T_VER:
                ver = buf[pos:nxt]
                if not ver.isascii():
                    ver.decode()
                low.append(buf[start:nxt])
            elif tag == _T_MAC:
                mac = buf[pos:nxt]
            elif tag == _T_SIG or (tag >> 3) > 12:
                high.append(buf[start:nxt])
            else:
                return None  # a known varint field sent length-delimited
            pos = nxt
        elif wire == 0:
            val = buf[pos]
            pos += 1
            if val >= 0x80:
                val, pos = _varint(buf, pos - 1)
            if tag == _T_TTL:
                ttl = val & _MASK32
            elif tag == _T_FAN:
                fanout = val & _MASK32
                low.append(buf[start:pos])
            elif tag == _T_RECV:
                recv_from = val
            elif tag == _T_FWD:
                forward_to = val
            elif tag == _T_INC:
                incoming = val
            elif tag == _T_ERR:
                error = val != 0
            elif (tag >> 3) > 12:
                high.append(buf[start:pos])
            else:
                return None
        elif wire in (1, 5):
            if (tag >> 3) <= 12:
                return None
            pos += 8 if wire == 1 else 4
            if pos > end:
                return None
            high.append(buf[start:pos])
        else:
            return None  # groups or invalid wire types
    if pos != end:
        return None
    if src_raw is None:
        src_enc = b"\x00"
        src_key = None
    else:
        src_enc, src_key = _name_entry(src_raw)
    if dst_raw is None:
        dst_enc = b"\x00"
        dst_key = None
    else:
        dst_enc, dst_key = _name_entry(dst_raw)
    body = b"".join((src_enc, dst_enc, _U32(len(ident)), ident, _U32(fanout)))
    return HeaderFields(
        src_key,
        dst_key,
        fanout,
        ttl,
        recv_from,
        forward_to,
        incoming,
        error,
        mac,
        body,
        b"".join(low),
        b"".join(high),
    )


def _name_key(name: pb.Name) -> NameKey | None:
    if not name.HasField("name"):
        return None
    enc = name.name
    nid = enc.name_id
    return (
        enc.component_0,
        enc.component_1,
        enc.component_2,
        (nid.id_0 << 64 | nid.id_1) if enc.HasField("name_id") else NULL_ID,
    )


def _fields_from_object(header: pb.SLIMHeader) -> HeaderFields:
    """The attribute-by-attribute reading, for headers the walker declines (see below)."""
    has = header.HasField
    src = header.source if has("source") else None
    dst = header.destination if has("destination") else None
    ident = header.identity.encode()
    body = b"".join(
        (
            b"\x00" if src is None else encode_name(src),
            b"\x00" if dst is None else encode_name(dst),
            _U32(len(ident)),
            ident,
            _U32(header.fanout),
        )
    )
    return HeaderFields(
        None if src is None else _name_key(src),
        None if dst is None else _name_key(dst),
        header.fanout,
        header.ttl,
        header.recv_from if has("recv_from") else None,
        header.forward_to if has("forward_to") else None,
        header.incoming_conn if has("incoming_conn") else None,
        header.error if has("error") else None,
        header.header_mac if has("header_mac") else None,
        body,
        b"",
        b"",
    )


def header_fields(header: pb.SLIMHeader) -> HeaderFields:
    """:func:`walk_header` for a parsed header.

    Serializing and walking is faster than reading a dozen attributes of nested upb objects.
    A parsed header can still hold unknown fields that clash with known field numbers (kept and
    re-serialized by upb); the walker declines those and the attribute path takes over.
    """
    raw = header.SerializeToString()
    try:
        fields = walk_header(raw, 0, len(raw))
    except (IndexError, DecodeError, UnicodeDecodeError):  # pragma: no cover - upb output
        fields = None
    return fields if fields is not None else _fields_from_object(header)
