"""Values shared by the data-plane core: connection types, states, drop reasons, snapshots.

The connection-type indices are the reference's (``ConnType`` in ``crates/config``): they fix the
category order that anycast walks (Local, Remote, Peer, Edge), so they are part of the behaviour,
not a detail.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from slimwire._proto import data_plane_pb2 as pb

__all__ = [
    "ConnInfo",
    "ConnState",
    "ConnType",
    "DropReason",
    "RouteKey",
    "SubscriptionEntry",
    "conn_type_from_link",
    "link_type_of",
]


class ConnType(enum.IntEnum):
    """A connection's category; the value is the reference's index (and the match order)."""

    LOCAL = 0
    REMOTE = 1
    PEER = 2
    EDGE = 3


def conn_type_from_link(value: int) -> ConnType:
    """Map a ``LinkConnectionType`` (REMOTE=0, PEER=1, EDGE=2) to our category."""
    if value == pb.LINK_CONNECTION_TYPE_PEER:
        return ConnType.PEER
    if value == pb.LINK_CONNECTION_TYPE_EDGE:
        return ConnType.EDGE
    return ConnType.REMOTE


def link_type_of(conn_type: ConnType) -> int:
    """The ``LinkConnectionType`` a dialler announces for ``conn_type``."""
    if conn_type is ConnType.PEER:
        return pb.LINK_CONNECTION_TYPE_PEER
    if conn_type is ConnType.EDGE:
        return pb.LINK_CONNECTION_TYPE_EDGE
    return pb.LINK_CONNECTION_TYPE_REMOTE


class ConnState(enum.Enum):
    """Where a connection is in its life; only ``UP`` connections are routed to."""

    NEGOTIATING = "negotiating"
    UP = "up"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class DropReason(enum.Enum):
    """Why the node dropped a message: counted per connection, logged once per cause."""

    MALFORMED = "malformed"
    INVALID = "invalid"
    OVERSIZED = "oversized"
    TTL_EXPIRED = "ttl_expired"
    BAD_MAC = "bad_mac"
    MISSING_MAC = "missing_mac"
    NO_ROUTE = "no_route"
    UNKNOWN_CONN = "unknown_conn"
    SEND_FAILED = "send_failed"
    UNEXPECTED = "unexpected"
    DENIED = "denied"
    """Refused by the node's authorization policy."""


class RouteKey(NamedTuple):
    """What routing compares: the three component hashes and the 128-bit id."""

    c0: int
    c1: int
    c2: int
    id: int


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """A snapshot of one connection-table row (what ``Node.connections()`` lists)."""

    conn_id: int
    conn_type: ConnType
    state: ConnState
    remote: str
    link_id: str
    peer_node_id: str
    peer_version: str
    outbound: bool
    authenticated: bool
    connected_at: float
    last_activity: float
    msgs_in: int
    bytes_in: int
    msgs_out: int
    bytes_out: int
    drops: dict[DropReason, int] = field(default_factory=dict)
    rtx_requests: int = 0
    """Session ``RTX_REQUEST``s received on this link (0 unless the node counts them)."""
    rtx_replies: int = 0
    """Session ``RTX_REPLY``s received on this link (0 unless the node counts them)."""


@dataclass(frozen=True, slots=True)
class SubscriptionEntry:
    """One (name, id) row of the subscription table: the conns per category."""

    strings: tuple[str, str, str]
    key: RouteKey
    local: tuple[int, ...]
    remote: tuple[int, ...]
    peer: tuple[int, ...]
    edge: tuple[int, ...]
