"""Building and reading session-layer publishes, field for field as the reference sends them.

Every publish carries both name forms, ``version``, ``ttl=8`` and a fanout (1 unicast, 256 for
channel broadcasts); the identity token and, for commands, the e2e signature are stamped last
by the layer. ``recv_from``/``forward_to``/``incoming_conn`` are never set by an app that talks to
its node directly: they are link-local and the node rewrites them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from slimwire._constants import DEFAULT_TTL, MULTICAST_FANOUT, SLIM_VERSION
from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name

__all__ = [
    "ACK_FROM",
    "ACK_RANGES",
    "COMMAND_TYPES",
    "DELETE_GROUP",
    "INTERNAL_METADATA",
    "LEAVE_REPLY_SENT",
    "LEAVING_SESSION",
    "PUBLISH_TO",
    "TRUE",
    "build_publish",
    "command",
    "name_bytes",
    "name_from_proto",
    "set_name",
    "user_metadata",
]

PUBLISH_TO = "PUBLISH_TO"
LEAVING_SESSION = "LEAVING_SESSION"
LEAVE_REPLY_SENT = "LEAVE_REPLY_SENT"
DELETE_GROUP = "DELETE_GROUP"
TRUE = "TRUE"
ACK_RANGES = "SLIMWIRE_ACK_RANGES"
"""On our JOIN_REPLY and GROUP_WELCOME of a point-to-point session: "this side takes ranged
acks" (:data:`ACK_FROM`). The reference ignores the metadata of both messages, and never shows
it to its app (unlike a JoinRequest's, which becomes the session metadata)."""
ACK_FROM = "SLIMWIRE_ACK_FROM"
"""On an MSG_ACK sent to a peer that announced :data:`ACK_RANGES`: the ack covers every id from
this one (decimal) to its ``message_id``, as if one MSG_ACK had been sent for each."""
INTERNAL_METADATA = frozenset(
    {
        ACK_FROM,
        ACK_RANGES,
        PUBLISH_TO,
        LEAVING_SESSION,
        LEAVE_REPLY_SENT,
        DELETE_GROUP,
        "slim-payload-sig",
        "slim-peer-subject",
    }
)
"""Keys the session layer uses for itself; never shown to the user (the reference leaks them)."""

_DATA_TYPES = frozenset(
    {
        pb.SESSION_MESSAGE_TYPE_MSG,
        pb.SESSION_MESSAGE_TYPE_MSG_ACK,
        pb.SESSION_MESSAGE_TYPE_RTX_REQUEST,
        pb.SESSION_MESSAGE_TYPE_RTX_REPLY,
    }
)
COMMAND_TYPES = frozenset(
    t for t in pb.SessionMessageType.values() if t not in _DATA_TYPES and t != 0
)
"""Message types that are signed (``e2e_header_sig``): everything but data, acks and RTX."""


@functools.lru_cache(maxsize=4096)
def name_bytes(name: Name) -> bytes:
    """A name's protobuf encoding (both forms, as we and the reference send it), cached."""
    return name.to_proto().SerializeToString()


@functools.lru_cache(maxsize=4096)
def _name_from_bytes(data: bytes) -> Name:
    return Name.from_proto(pb.Name.FromString(data))


def set_name(target: pb.Name, name: Name) -> None:
    """Fill an empty proto name (both forms) from a cached encoding."""
    target.MergeFromString(name_bytes(name))


def name_from_proto(msg: pb.Name) -> Name:
    """A :class:`Name` from a received proto name (cached: peers repeat)."""
    return _name_from_bytes(msg.SerializeToString())


def command(**payload: object) -> pb.CommandPayload:
    """``command(join_request=pb.JoinRequestPayload(...))`` → a CommandPayload."""
    return pb.CommandPayload(**payload)  # type: ignore[arg-type]


TEMPLATE_CACHE_SIZE = 1024
_templates: dict[tuple[int, int, int, int, int, bool | None], tuple[Name, Name, bytes]] = {}


def _template(
    source: Name,
    destination: Name,
    session_type: int,
    message_type: int,
    *,
    fanout: int,
    error: bool | None,
) -> bytes:
    """The serialized fields a session repeats on every message of one kind (names, fanout,
    version, ttl, types, an empty application payload): parsing these bytes in C is ~3x
    faster than setting the fields.

    Keyed by the names' identities, not their values: hashing two frozen-dataclass names
    per message cost more than the rest of the lookup. A session keeps its :class:`Name`
    objects, so the hits are the same; the entry holds the names, so an id is never reused
    while its entry lives, and a different object with equal fields just makes a new entry.
    """
    key = (id(source), id(destination), session_type, message_type, fanout, error)
    entry = _templates.get(key)
    if entry is not None and entry[0] is source and entry[1] is destination:
        return entry[2]
    msg = pb.Message()
    header = msg.publish.header
    set_name(header.source, source)
    set_name(header.destination, destination)
    header.fanout = fanout
    header.version = SLIM_VERSION
    header.ttl = DEFAULT_TTL
    if error is not None:
        header.error = error
    session = msg.publish.session
    session.session_type = session_type  # type: ignore[assignment]
    session.session_message_type = message_type  # type: ignore[assignment]
    # Acks, RTX requests and error replies carry an empty ApplicationPayload; a command
    # replaces it (a oneof), a payload fills it.
    msg.publish.msg.app_payload.SetInParent()
    raw = msg.SerializeToString()
    if len(_templates) >= TEMPLATE_CACHE_SIZE:
        _templates.clear()
    _templates[key] = (source, destination, raw)
    return raw


def build_publish(
    source: Name,
    destination: Name,
    session_type: int,
    message_type: int,
    *,
    session_id: int,
    message_id: int,
    fanout: int = 1,
    payload: bytes | None = None,
    payload_type: str = "",
    cmd: pb.CommandPayload | None = None,
    metadata: Mapping[str, str] | None = None,
    error: bool | None = None,
) -> pb.Message:
    """A publish without identity or signature (the layer stamps those just before sending).

    With neither ``payload`` nor ``cmd`` the content is an empty ApplicationPayload, which is
    what acks, RTX requests and error replies carry on the wire.
    """
    msg = _from_bytes(
        _template(source, destination, session_type, message_type, fanout=fanout, error=error)
    )
    pub = msg.publish
    session = pub.session
    session.session_id = session_id
    session.message_id = message_id
    if cmd is not None:
        pub.msg.command_payload.CopyFrom(cmd)
    else:
        app = pub.msg.app_payload
        if payload_type:
            app.payload_type = payload_type
        if payload:
            app.blob = payload
    if metadata:
        msg.metadata.update(metadata)
    return msg


_from_bytes = pb.Message.FromString


def broadcast_fanout(to_channel: bool) -> int:
    return MULTICAST_FANOUT if to_channel else 1


def user_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The metadata without the session layer's internal keys."""
    if not metadata:  # the common case: skip building an items view per message
        return {}
    return {k: v for k, v in metadata.items() if k not in INTERNAL_METADATA}
