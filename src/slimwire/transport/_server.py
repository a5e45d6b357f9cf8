"""The gRPC server: ``start_server`` and :class:`Server` (HTTP/2 over TCP, h2c or TLS+ALPN)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as _ssl
from collections.abc import Mapping

from slimwire.transport._core import DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, GrpcConnection
from slimwire.transport._events import RequestReceived
from slimwire.transport._framing import DEFAULT_MAX_MESSAGE_SIZE
from slimwire.transport._protocol import H2Protocol, H2Stream
from slimwire.transport._status import Status
from slimwire.transport._stream import DEFAULT_HIGH_WATER, Handler, run_handler

__all__ = ["Server", "start_server"]

log = logging.getLogger(__name__)


class _ServerProtocol(H2Protocol):
    def __init__(self, server: Server, core: GrpcConnection) -> None:
        super().__init__(
            core,
            high_water=server._high_water,
            keepalive_interval=server._keepalive_interval,
            keepalive_timeout=server._keepalive_timeout,
        )
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._server._connections.add(self)
        super().connection_made(transport)

    def on_request(self, ev: RequestReceived) -> None:
        server = self._server
        handler = server._handlers.get(ev.path)
        if handler is None:
            self.core.reject(ev.stream_id, Status.UNIMPLEMENTED, f"unknown method {ev.path}")
            return
        if server._closing:
            self.core.reject(ev.stream_id, Status.UNAVAILABLE, "server is shutting down")
            return
        # Response headers go out at once: the reference client waits for them before it sends.
        out = self.core.send_response_headers(ev.stream_id)
        stream = H2Stream(
            self,
            ev.stream_id,
            out,
            path=ev.path,
            request_headers=ev.headers,
            high_water=self.high_water,
        )
        self.streams[ev.stream_id] = stream
        server._spawn(handler, stream)

    def connection_closed(self) -> None:
        self._server._connections.discard(self)


class Server:
    """A running gRPC server. ``port`` is the bound port (useful with port 0)."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        max_message_size: int,
        window_size: int,
        max_frame_size: int,
        high_water: int,
        keepalive_interval: float | None,
        keepalive_timeout: float,
        max_concurrent_streams: int = 1000,
    ) -> None:
        self._handlers = dict(handlers)
        self._max_concurrent_streams = max_concurrent_streams
        self._max_message_size = max_message_size
        self._window_size = window_size
        self._max_frame_size = max_frame_size
        self._high_water = high_water
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerProtocol] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = asyncio.get_running_loop().create_future()

    def _protocol(self) -> _ServerProtocol:
        core = GrpcConnection(
            client_side=False,
            max_message_size=self._max_message_size,
            window_size=self._window_size,
            max_frame_size=self._max_frame_size,
            max_concurrent_streams=self._max_concurrent_streams,
        )
        return _ServerProtocol(self, core)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty once closed)."""
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        """The bound port (of the first listening socket)."""
        for sock in self.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("server is not listening")

    @property
    def connections(self) -> int:
        """Open HTTP/2 connections."""
        return len(self._connections)

    def _spawn(self, handler: Handler, stream: H2Stream) -> None:
        task = asyncio.get_running_loop().create_task(run_handler(handler, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, send GOAWAY, let open calls finish for up to ``grace`` seconds, then
        cancel their handlers and close every connection."""
        if self._closing:
            await asyncio.shield(self._closed)
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for proto in list(self._connections):
            proto.goaway("server shutting down")
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for proto in list(self._connections):
            proto.close("server shutting down")
        waits = [p.closed for p in self._connections]
        if waits:
            await asyncio.wait(waits, timeout=1.0)
        for proto in list(self._connections):
            if proto.transport is not None:
                proto.transport.abort()
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(0)

    def __repr__(self) -> str:
        where = f"port {self.port}" if self._server is not None and self.sockets else "unbound"
        return f"<Server {where} paths={sorted(self._handlers)} connections={self.connections}>"


async def start_server(
    handlers: Mapping[str, Handler],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    ssl: _ssl.SSLContext | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    window_size: int = DEFAULT_WINDOW_SIZE,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    high_water: int = DEFAULT_HIGH_WATER,
    keepalive_interval: float | None = None,
    keepalive_timeout: float = 20.0,
    max_concurrent_streams: int = 1000,
    backlog: int = 128,
) -> Server:
    """Serve gRPC ``handlers`` (path -> handler) on ``host:port``.

    h2c (prior knowledge) without ``ssl``; with ``ssl``, TLS and ALPN ``h2`` (the context's ALPN
    list is set to ``["h2"]``). ``host=None`` listens on every interface.
    """
    server = Server(
        handlers,
        max_message_size=max_message_size,
        window_size=window_size,
        max_frame_size=max_frame_size,
        high_water=high_water,
        keepalive_interval=keepalive_interval,
        keepalive_timeout=keepalive_timeout,
        max_concurrent_streams=max_concurrent_streams,
    )
    if ssl is not None:
        ssl.set_alpn_protocols(["h2"])
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(
        server._protocol, host, port, ssl=ssl, backlog=backlog, reuse_address=True
    )
    log.debug("gRPC server on %s", [s.getsockname() for s in server._server.sockets])
    return server
