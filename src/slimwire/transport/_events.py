"""Events the sans-IO gRPC connection (:class:`GrpcConnection`) reports to its driver.

They are immutable values; a driver dispatches on their type. ``stream_id`` is the HTTP/2 stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from slimwire.errors import RemoteProtocolError

__all__ = [
    "ConnectionTerminated",
    "Event",
    "Headers",
    "MessagesReceived",
    "PingAcked",
    "RequestReceived",
    "ResponseReceived",
    "StreamEnded",
    "StreamFailed",
    "StreamReset",
    "WindowUpdated",
]

Headers = tuple[tuple[str, str], ...]
"""Header (metadata) pairs in wire order, names lower-case."""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """Server side: a peer opened a gRPC call on ``path`` (already validated as POST+grpc)."""

    stream_id: int
    path: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """Client side: the server's response headers (``:status`` 200) arrived."""

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class MessagesReceived:
    """Whole gRPC messages, in order.

    ``flow_bytes`` is the HTTP/2 flow-control credit they hold: the driver hands it back with
    :meth:`GrpcConnection.consumed` once the application has taken the messages, which is what
    makes a slow reader stall its peer instead of growing our memory.
    """

    stream_id: int
    messages: list[bytes]
    flow_bytes: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer ended its side cleanly.

    Server side: the client half-closed (``status`` is None). Client side: the call is over;
    ``status``/``message`` come from the trailers (or a trailers-only response, or an HTTP error).
    """

    stream_id: int
    status: int | None = None
    message: str = ""
    trailers: Headers = ()


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The stream was reset (RST_STREAM from the peer, or refused by a GOAWAY)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The peer sent something invalid on this stream (oversized or compressed message, a
    truncated message); the connection has already queued the status/reset that ends the stream."""

    stream_id: int
    error: RemoteProtocolError
    status: int


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    """Flow-control windows may have opened: queued data can move."""


@dataclass(frozen=True, slots=True)
class PingAcked:
    """The peer answered one of our PINGs."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection is going away.

    ``remote``: the peer sent GOAWAY (streams up to ``last_stream_id`` may still finish);
    otherwise we hit a connection-level protocol error and queued a GOAWAY ourselves, and the
    driver should write it and close the socket.
    """

    error_code: int
    last_stream_id: int | None
    reason: str
    remote: bool


Event = (
    RequestReceived
    | ResponseReceived
    | MessagesReceived
    | StreamEnded
    | StreamReset
    | StreamFailed
    | WindowUpdated
    | PingAcked
    | ConnectionTerminated
)
