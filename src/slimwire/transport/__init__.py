"""gRPC over HTTP/2 (sans-IO core on ``h2`` + asyncio drivers) and an in-memory transport.

The SLIM data plane is one bidi-streaming gRPC method; one stream is one link. Every transport
hands out the same :class:`Stream`, so nodes and tests do not care what carries the bytes::

    async def echo(stream: Stream) -> None:          # a server method
        async for batch in stream:                   # batches of whole messages
            stream.send_many(batch)                  # queued; one write per loop tick
            await stream.drain()                     # back-pressure over the high-water mark

    server = await start_server({"/pkg.Svc/Echo": echo}, "127.0.0.1", 0)
    stream = await open_stream(f"http://127.0.0.1:{server.port}", "/pkg.Svc/Echo")
    stream.send(b"hi")
    assert await stream.recv() == [b"hi"]
    await stream.close()                             # client: half-close
    assert await stream.recv() == []                 # server ended with OK
    await server.close(grace=1.0)

``https://`` URLs and ``start_server(ssl=...)`` use TLS with ALPN ``h2``. :func:`connect`
returns a :class:`Channel` for several calls on one connection (``unary``, ``server_stream``,
``open_stream``). :class:`MemoryNetwork` offers ``start_server``/``open_stream``/``connect`` with
the same shapes, without sockets.
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
from slimwire.transport._stream import DEFAULT_HIGH_WATER, BaseChannel, Handler, Receiver, Stream

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
    "Receiver",
    "Server",
    "Status",
    "Stream",
    "connect",
    "encode_message",
    "encode_messages",
    "open_stream",
    "start_server",
]
