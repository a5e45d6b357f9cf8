"""TCP details of an app's link to its node: when to force immediate ACKs, and how.

Linux delays the ACK of data we read (up to 40 ms) unless we answer with data of our own. A
node that writes with Nagle's algorithm on (the reference node: hyper's ``set_nodelay(false)``)
holds its *next* small message until that ACK arrives, so whenever it forwards two messages in a
row (an MSG_ACK, then the reply) the second one waits: a reliable request/reply through a
reference node takes ~88 ms instead of ~1 ms. Setting ``TCP_QUICKACK`` after every read ACKs at
once; it costs an ACK segment, i.e. a syscall plus loopback processing (~16 us measured in a
round trip), per read.

A slimwire node never needs it: its transport sets ``TCP_NODELAY`` on every connection, so it
never waits for our ACKs. The node is recognised by what its gRPC server already answers to our
``OpenChannel`` call: exactly ``grpc-accept-encoding: identity`` and no ``date`` header
(hyper, under tonic, stamps a ``date`` on every response and tonic announces no identity-only
encoding). Anything else, or no headers at all, keeps the quickacks: mistaking a Nagle node for
ours costs 40 ms stalls, the opposite mistake only the ACK segments.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from typing import Any

from slimwire.transport import Stream

__all__ = ["node_needs_quickack", "quickack", "quickack_socket"]


def node_needs_quickack(response_headers: Iterable[tuple[str, str]]) -> bool:
    """Whether the node that answered with these gRPC response headers may write with Nagle on
    (so our reads must be ACKed at once); False only for a slimwire node."""
    encoding = None
    for key, value in response_headers:
        if key == "date":
            return True
        if key == "grpc-accept-encoding":
            encoding = value
    return encoding != "identity"


def quickack_socket(stream: Stream) -> Any:
    """The TCP socket to quickack after each read of ``stream``, or None when not needed (a
    slimwire node, an in-memory transport, a platform without ``TCP_QUICKACK``)."""
    if not hasattr(socket, "TCP_QUICKACK"):  # Linux only
        return None
    if not node_needs_quickack(stream.response_headers):
        return None
    proto = getattr(stream, "_proto", None)
    transport = getattr(proto, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock


def quickack(sock: Any) -> None:
    """ACK what we just read at once instead of after the delayed-ACK timer."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
