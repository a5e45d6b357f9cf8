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
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from slimwire._proto import data_plane_pb2 as pb

NULL_ID = (1 << 128) - 1
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1

_U32 = struct.Struct("<I").pack
_ENC = struct.Struct("<BBQQQ").pack  # name present, encoded present, c0, c1, c2
_NID = struct.Struct("<BQQ").pack
_OPT_U64 = struct.Struct("<BQ").pack
_new = tuple.__new__
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
    """Forget every cached name and header encoding (for tests and memory-conscious callers)."""
    _name_cache.clear()
    _names_cache.clear()
    _middle_cache.clear()


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


read_varint = _varint
"""Public name of the raw protobuf varint reader, for other raw-bytes parsers (policy)."""


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
    tail: bytes
    """Preimage end as received: opt(recv_from) || opt(forward_to) || opt(error) || ttl."""
    raw: bytes
    """The header's serialized bytes."""
    keep_len: int
    keep_extra: bytes
    """``raw[:keep_len] + keep_extra`` are fields 1-5 (names, identity, fanout, version), which a
    forwarder copies unchanged."""
    keep_high: bytes
    """Raw field 12 (e2e_header_sig) and unknown fields, also copied unchanged."""


def _tail(recv_from: int | None, forward_to: int | None, error: bool | None, ttl: int) -> bytes:
    if recv_from is None and forward_to is None and error is None:
        return b"\x00\x00\x00" + _U32(ttl)
    return b"".join(
        (
            b"\x00" if recv_from is None else _OPT_U64(1, recv_from),
            b"\x00" if forward_to is None else _OPT_U64(1, forward_to),
            _NO_OPT[0 if error is None else 1 + error],
            _U32(ttl),
        )
    )


# Tags (field number << 3 | wire type) of SLIMHeader fields.
_T_SRC, _T_DST, _T_ID, _T_FAN, _T_VER, _T_TTL = 0x0A, 0x12, 0x1A, 0x20, 0x2A, 0x30
_MAX_TAG = (1 << 32) - 1  # field numbers are 29 bits
_T_RECV, _T_FWD, _T_INC, _T_ERR, _T_MAC, _T_SIG = 0x38, 0x40, 0x48, 0x50, 0x5A, 0x62

# The fast reader's two caches. Names: the raw source and destination fields together (a flow
# repeats them in every message). Middle: the few bytes between the identity and the tag
# (fanout, version, ttl, recv_from, forward_to, incoming_conn, error), which take only a handful
# of distinct values on a link. Both are bounded and reset wholesale when full.
MIDDLE_CACHE_MAX = 4096
_names_cache: dict[bytes, tuple[bytes, NameKey | None, NameKey | None]] = {}
_Middle = tuple[int, int, int | None, int | None, int | None, bool | None, bytes, bytes, bytes]
_middle_cache: dict[bytes, _Middle | None] = {}
MISS: Any = object()
"""Cache-miss sentinel (``None`` is a cached "not the fast layout" answer)."""


def names_entry(pair: bytes, l1: int) -> tuple[bytes, NameKey | None, NameKey | None]:
    """Cache entry for ``0A l1 <src> 12 l2 <dst>`` (both lengths below 128)."""
    hit = _names_cache.get(pair)
    if hit is not None:
        return hit
    src_enc, src_key = _name_entry(pair[2 : 2 + l1])
    dst_enc, dst_key = _name_entry(pair[4 + l1 :])
    entry = (src_enc + dst_enc, src_key, dst_key)
    if len(_names_cache) >= NAME_CACHE_MAX:
        _names_cache.clear()
    _names_cache[pair] = entry
    return entry


def _middle_entry(mid: bytes) -> _Middle | None:
    """Decode the header fields 4-10 in ``mid``, in field order; None if it is anything else."""
    fanout = ttl = 0
    recv_from: int | None = None
    forward_to: int | None = None
    incoming: int | None = None
    error: bool | None = None
    keep = b""
    pos = 0
    end = len(mid)
    last_tag = 0
    try:
        while pos < end:
            tag = mid[pos]
            if tag <= last_tag:
                return None  # out of order or repeated: the general reader handles it
            last_tag = tag
            if tag == _T_VER:
                ln, pos = _varint(mid, pos + 1)
                if pos + ln > end:
                    return None
                mid[pos : pos + ln].decode()  # a proto3 string must be UTF-8
                pos += ln
                keep = mid[:pos]
                continue
            if tag not in _VARINT_TAGS:
                return None
            val, pos = _varint(mid, pos + 1)
            if tag == _T_FAN:
                fanout = val & _MASK32
                keep = mid[:pos]
            elif tag == _T_TTL:
                ttl = val & _MASK32
            elif tag == _T_RECV:
                recv_from = val
            elif tag == _T_FWD:
                forward_to = val
            elif tag == _T_INC:
                incoming = val
            else:
                error = val != 0
    except (IndexError, DecodeError, UnicodeDecodeError):
        return None
    if pos != end:
        return None
    return (
        fanout,
        ttl,
        recv_from,
        forward_to,
        incoming,
        error,
        keep,
        _U32(fanout),
        _tail(recv_from, forward_to, error, ttl),
    )


def middle_miss(mid: bytes) -> _Middle | None:
    """Decode and cache the middle of a header (see ``_middle_cache``)."""
    entry = _middle_entry(mid)
    if len(_middle_cache) >= MIDDLE_CACHE_MAX:
        _middle_cache.clear()
    _middle_cache[mid] = entry
    return entry


_VARINT_TAGS = frozenset((_T_FAN, _T_TTL, _T_RECV, _T_FWD, _T_INC, _T_ERR))


def walk_header(buf: bytes, pos: int, end: int) -> HeaderFields | None:
    """Read the SLIMHeader serialized in ``buf[pos:end]``; None if it needs protobuf.

    Raises IndexError/DecodeError/UnicodeDecodeError on malformed bytes (callers catch).
    Headers written by protobuf (the reference, upb) keep their fields in field-number order, so
    a tag, when present, comes last; those are read with two cache lookups and a few slices,
    anything else by a general field loop.
    """
    hb = buf[pos:end]
    n = len(hb)
    if n < 4 or hb[0] != 0x0A:
        return _walk_generic(hb)
    if n >= 38 and hb[-34] == 0x5A and hb[-33] == 0x20:
        m = n - 34
        mac: bytes | None = hb[-32:]
    else:
        m = n  # no tag yet (a header about to be signed): the middle runs to the end
        mac = None
    l1 = hb[1]
    q = 2 + l1
    if l1 >= 0x80 or q + 1 >= m or hb[q] != 0x12 or hb[q + 1] >= 0x80:
        return _walk_generic(hb)
    q += 2 + hb[q + 1]
    if q > m:
        return _walk_generic(hb)
    names_hit = _names_cache.get(hb[:q])
    if names_hit is None:
        names_hit = names_entry(hb[:q], l1)
    names, src_key, dst_key = names_hit
    if q < n and hb[q] == 0x1A:
        ln = hb[q + 1]
        i = q + 2
        if ln >= 0x80:
            if hb[i] < 0x80:  # the common two-byte length, inline
                ln = (ln & 0x7F) | (hb[i] << 7)
                i += 1
            else:
                ln, i = _varint(hb, q + 1)
        ident = hb[i : i + ln]
        i += ln
        if not ident.isascii():
            ident.decode()
    else:
        ident = b""
        i = q
    if i > m:
        return _walk_generic(hb)
    mid = _middle_cache.get(hb[i:m], MISS)
    if mid is MISS:
        mid = middle_miss(hb[i:m])
    if mid is None:
        return _walk_generic(hb)
    fanout, ttl, recv_from, forward_to, incoming, error, keep, fan32, tail = mid
    return _new(
        HeaderFields,
        (
            src_key,
            dst_key,
            fanout,
            ttl,
            recv_from,
            forward_to,
            incoming,
            error,
            mac,
            b"".join((names, _U32(len(ident)), ident, fan32)),
            tail,
            hb,
            i,
            keep,
            b"",
        ),
    )


def _walk_generic(buf: bytes) -> HeaderFields | None:
    """:func:`walk_header` for any field order, with protobuf's last-one-wins semantics."""
    pos = 0
    end = len(buf)
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
    return _new(
        HeaderFields,
        (
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
            _tail(recv_from, forward_to, error, ttl),
            buf,
            0,
            b"".join(low),
            b"".join(high),
        ),
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
    rf = header.recv_from if has("recv_from") else None
    ft = header.forward_to if has("forward_to") else None
    err = header.error if has("error") else None
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
        rf,
        ft,
        header.incoming_conn if has("incoming_conn") else None,
        err,
        header.header_mac if has("header_mac") else None,
        body,
        _tail(rf, ft, err, header.ttl),
        b"",
        0,
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
