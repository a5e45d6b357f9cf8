"""gRPC status codes and the ``grpc-message`` percent-encoding.

Status codes are the fixed numbers of the gRPC spec (doc/statuscodes.md); they travel in the
``grpc-status`` trailer as ASCII digits. ``grpc-message`` is percent-encoded UTF-8 so that any
text survives HPACK's restricted header value alphabet (doc/PROTOCOL-HTTP2.md).
"""

from __future__ import annotations

import enum

__all__ = ["Status", "decode_grpc_message", "encode_grpc_message", "status_from_http"]


class Status(enum.IntEnum):
    """The gRPC status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# Printable ASCII except '%' goes through unchanged, as the gRPC spec asks.
_UNRESERVED = frozenset(range(0x20, 0x7F)) - {ord("%")}


def encode_grpc_message(message: str) -> str:
    """Percent-encode ``message`` for the ``grpc-message`` trailer."""
    raw = message.encode("utf-8")
    if all(b in _UNRESERVED for b in raw):
        return message
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in raw)


def decode_grpc_message(value: str) -> str:
    """Decode a ``grpc-message`` value; malformed escapes are kept literally, never an error.

    The spec tells receivers to be lenient here: the message is diagnostics, not protocol.
    """
    if "%" not in value:
        return value
    out = bytearray()
    raw = value.encode("utf-8", "surrogateescape")
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25 and i + 2 < n and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(two: bytes) -> bool:
    return len(two) == 2 and all(c in b"0123456789abcdefABCDEF" for c in two)


_HTTP_TO_GRPC = {
    400: Status.INTERNAL,
    401: Status.UNAUTHENTICATED,
    403: Status.PERMISSION_DENIED,
    404: Status.UNIMPLEMENTED,
    429: Status.UNAVAILABLE,
    502: Status.UNAVAILABLE,
    503: Status.UNAVAILABLE,
    504: Status.UNAVAILABLE,
}


def status_from_http(http_status: int) -> Status:
    """Map a non-200 HTTP status to a gRPC status, as gRPC's http-grpc-status-mapping.md does."""
    return _HTTP_TO_GRPC.get(http_status, Status.UNKNOWN)
