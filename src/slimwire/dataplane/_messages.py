"""Small readers of routed messages the forwarder shares (names, keys, payload checks).

Split from ``_forwarder.py`` to keep the forwarding rules in one readable module; nothing
here has state.
"""

from __future__ import annotations

import struct

from google.protobuf.message import DecodeError

from slimwire._proto import data_plane_pb2 as pb
from slimwire.link import Frame
from slimwire.names import NULL_ID, format_id

from ._types import RouteKey

__all__ = [
    "_as_is",
    "_display",
    "_grpc_framed",
    "_key_text",
    "_name_key",
    "_rest_decodes",
    "_strings",
    "_valid_header",
]

_GRPC_PREFIX = struct.Struct(">BI").pack
_FromString = pb.Message.FromString
_PublishFromString = pb.Publish.FromString


def _name_key(name: pb.Name) -> RouteKey:
    enc = name.name
    nid = enc.name_id
    return RouteKey(
        enc.component_0,
        enc.component_1,
        enc.component_2,
        (nid.id_0 << 64 | nid.id_1) if enc.HasField("name_id") else NULL_ID,
    )


def _display(name: pb.Name) -> str:
    """``org/ns/svc/<id>`` for logs (only computed when a message is dropped)."""
    key = _name_key(name)
    return "/".join((*_strings(name), format_id(key.id)))


def _key_text(key: tuple[int, int, int, int]) -> str:
    return f"[{key[0]:x}, {key[1]:x}, {key[2]:x}, {format_id(key[3])}]"


def _strings(name: pb.Name) -> tuple[str, str, str]:
    s = name.str_name
    return (s.str_component_0, s.str_component_1, s.str_component_2)


def _grpc_framed(data: bytes) -> bytes:
    """``data`` with its 5-byte gRPC message prefix (see ``framed_outputs``)."""
    return _GRPC_PREFIX(0, len(data)) + data


def _as_is(data: bytes) -> bytes:
    return data


def _rest_decodes(frame: Frame) -> bool:
    """Whether what the raw fast path did not read (session header, content, metadata) is valid
    protobuf, as the reference's full decode requires; an app must never receive from us a
    message that its own decoder would reject (which would cost it its link)."""
    raw = frame.raw
    try:
        if frame.header_tag_at == frame.body_start:
            _PublishFromString(raw[frame.header_end : frame.body_end])
        else:
            _PublishFromString(
                raw[frame.body_start : frame.header_tag_at] + raw[frame.header_end : frame.body_end]
            )
        if frame.body_tag_at or frame.body_end != len(raw):
            _FromString(raw[: frame.body_tag_at] + raw[frame.body_end :])
    except DecodeError:
        return False
    return True


def _valid_header(header: pb.SLIMHeader) -> bool:
    return (
        header.HasField("source")
        and header.source.HasField("name")
        and header.HasField("destination")
        and header.destination.HasField("name")
    )
