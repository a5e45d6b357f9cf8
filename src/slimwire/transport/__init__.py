"""gRPC over HTTP/2 (sans-IO core on ``h2`` + asyncio drivers) and an in-memory transport.

The SLIM data plane is one bidi-streaming gRPC method; one stream is one link. Every transport
hands out the same :class:`Stream`, so nodes and tests do not care what carries the bytes.
"""

from __future__ import annotations

from slimwire.transport._client import Channel, connect, open_stream
from slimwire.transport._core import GrpcConnection
from slimwire.transport._framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MessageDecoder,
    encode_message,
    encode_messages,
)
from slimwire.transport._memory import MemoryChannel, MemoryNetwork, MemoryServer, MemoryStream
from slimwire.transport._server import Server, start_server
from slimwire.transport._status import Status
from slimwire.transport._stream import DEFAULT_HIGH_WATER, BaseChannel, Handler, Stream

__all__ = [
    "DEFAULT_HIGH_WATER",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "BaseChannel",
    "Channel",
    "GrpcConnection",
    "Handler",
    "MemoryChannel",
    "MemoryNetwork",
    "MemoryServer",
    "MemoryStream",
    "MessageDecoder",
    "Server",
    "Status",
    "Stream",
    "connect",
    "encode_message",
    "encode_messages",
    "open_stream",
    "start_server",
]
