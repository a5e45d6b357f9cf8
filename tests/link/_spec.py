"""An independent, deliberately plain header-MAC preimage builder, written from slim-wire.md §2.8.

It reads the parsed protobuf object field by field and shares no code with slimwire.link.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from slimwire._proto import data_plane_pb2 as pb


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def _lp(data: bytes) -> bytes:
    return _u32(len(data)) + data


def spec_name(header: pb.SLIMHeader, field: str) -> bytes:
    if not header.HasField(field):
        return b"\x00"
    name = getattr(header, field)
    out = b"\x01"
    if name.HasField("name"):
        enc = name.name
        out += b"\x01" + _u64(enc.component_0) + _u64(enc.component_1) + _u64(enc.component_2)
        if enc.HasField("name_id"):
            out += b"\x01" + _u64(enc.name_id.id_0) + _u64(enc.name_id.id_1)
        else:
            out += b"\x00"
    else:
        out += b"\x00"
    if name.HasField("str_name"):
        s = name.str_name
        out += b"\x01"
        out += _lp(s.str_component_0.encode("utf-8"))
        out += _lp(s.str_component_1.encode("utf-8"))
        out += _lp(s.str_component_2.encode("utf-8"))
    else:
        out += b"\x00"
    return out


def spec_preimage(header: pb.SLIMHeader, link_id: str) -> bytes:
    out = b"SLIM-DP-HDR-v1\x00"
    out += _lp(link_id.encode("utf-8"))
    out += spec_name(header, "source")
    out += spec_name(header, "destination")
    out += _lp(header.identity.encode("utf-8"))
    out += _u32(header.fanout)
    for opt in ("recv_from", "forward_to"):
        out += (b"\x01" + _u64(getattr(header, opt))) if header.HasField(opt) else b"\x00"
    if header.HasField("error"):
        out += b"\x01" + (b"\x01" if header.error else b"\x00")
    else:
        out += b"\x00"
    out += _u32(header.ttl)
    return out


def spec_tag(key: bytes, header: pb.SLIMHeader, link_id: str) -> bytes:
    return hmac.new(key, spec_preimage(header, link_id), hashlib.sha256).digest()
