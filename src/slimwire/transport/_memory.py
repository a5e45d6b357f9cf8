"""In-memory transport: the same :class:`Stream` without sockets, for whole meshes in one process.

A :class:`MemoryNetwork` is a namespace of addresses. ``serve(address, handlers)`` listens on
``memory://address``; ``open_stream("memory://address", path)`` dials it. Messages move by
reference into the peer's inbox; back-pressure mirrors HTTP/2: ``pending_bytes`` counts bytes
the peer has not yet taken with ``recv()``, so a slow reader stalls a writer that ``drain()``s.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping

from slimwire.errors import ConnectionClosed, GrpcError, TransportError
from slimwire.transport._events import Headers
from slimwire.transport._status import Status
from slimwire.transport._stream import (
    DEFAULT_HIGH_WATER,
    BaseChannel,
    Handler,
    Stream,
    run_handler,
)

__all__ = ["MemoryChannel", "MemoryNetwork", "MemoryServer", "MemoryStream"]

_SCHEME = "memory://"


class MemoryStream(Stream):
    """One end of an in-memory call."""

    def __init__(
        self,
        *,
        peer: str,
        path: str,
        request_headers: Headers,
        high_water: int,
        server_side: bool,
    ) -> None:
        super().__init__(
            peer=peer, path=path, request_headers=request_headers, high_water=high_water
        )
        self._server_side = server_side
        self._other: MemoryStream | None = None
        self._pending = 0  # bytes we sent that the other end has not taken yet
        self._inbox_bytes = 0

    def send(self, message: bytes) -> None:
        other = self._other
        if self._send_closed or other is None:
            raise ConnectionClosed(f"stream {self.path} to {self.peer} is closed")
        n = len(message)
        self._pending += n
        other._inbox_bytes += n
        other._deliver([message])

    def send_many(self, messages: Iterable[bytes]) -> None:
        other = self._other
        if self._send_closed or other is None:
            raise ConnectionClosed(f"stream {self.path} to {self.peer} is closed")
        batch = list(messages)
        if batch:
            n = sum(map(len, batch))
            self._pending += n
            other._inbox_bytes += n
            other._deliver(batch)

    @property
    def pending_bytes(self) -> int:
        return self._pending

    def _consumed(self) -> None:
        n, self._inbox_bytes = self._inbox_bytes, 0
        other = self._other
        if other is not None and n:
            other._pending = max(0, other._pending - n)
            other._wake_drain()

    async def close(self, status: int = 0, message: str = "") -> None:
        if self._send_closed:
            return
        self._close_send()
        other = self._other
        if other is None:
            return
        if self._server_side:
            # Trailers end the whole call: the client can no longer send either.
            other._finish(GrpcError(status, message) if status else None)
            other._close_send()
            self._finish(None)
        else:
            other._finish(None)

    def abort(self, status: int = Status.CANCELLED, message: str = "") -> None:
        if self._send_closed and self._ended:
            return
        self._close_send()
        self._finish(ConnectionClosed(f"stream {self.path} aborted locally"))
        other = self._other
        if other is None:
            return
        other._close_send()
        if self._server_side:
            other._finish(GrpcError(status or Status.UNKNOWN, message))
        else:
            other._finish(ConnectionClosed(f"stream reset by {self.peer}"))

    def _lose(self, reason: str) -> None:
        self._close_send()
        self._finish(ConnectionClosed(reason))


def _pair(
    server_address: str, client_label: str, path: str, headers: Headers, high_water: int
) -> tuple[MemoryStream, MemoryStream]:
    client = MemoryStream(
        peer=_SCHEME + server_address,
        path=path,
        request_headers=headers,
        high_water=high_water,
        server_side=False,
    )
    server = MemoryStream(
        peer=client_label,
        path=path,
        request_headers=headers,
        high_water=high_water,
        server_side=True,
    )
    client._other, server._other = server, client
    return client, server


class MemoryServer:
    """A listener on a :class:`MemoryNetwork` address."""

    def __init__(
        self, network: MemoryNetwork, address: str, handlers: Mapping[str, Handler], high_water: int
    ) -> None:
        self._network = network
        self.address = address
        self._handlers = dict(handlers)
        self._high_water = high_water
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: set[MemoryStream] = set()
        self._closing = False
        self.port = 0
        """The port given by :meth:`MemoryNetwork.start_server` (0 after ``serve``)."""
        self.sockets: tuple[()] = ()

    @property
    def connections(self) -> int:
        """Calls in progress (each in-memory call stands for one connection)."""
        return len(self._streams)

    @property
    def url(self) -> str:
        return _SCHEME + self.address

    def _accept(
        self, path: str, headers: Headers, client_label: str, high_water: int
    ) -> MemoryStream:
        client, server = _pair(self.address, client_label, path, headers, high_water)
        server.high_water = self._high_water
        handler = self._handlers.get(path)
        if handler is None or self._closing:
            status = Status.UNIMPLEMENTED if handler is None else Status.UNAVAILABLE
            server.abort(status, f"unknown method {path}" if handler is None else "shutting down")
            return client
        self._streams.add(server)
        task = asyncio.get_running_loop().create_task(run_handler(handler, server))
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._streams.discard(server)

        task.add_done_callback(done)
        return client

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting; let handlers finish for ``grace`` s; cancel the rest; drop streams."""
        if self._closing:
            return
        self._closing = True
        self._network._servers.pop(self.address, None)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for st in list(self._streams):
            st._lose("server closed")
            if st._other is not None:
                st._other._lose("server closed")

    async def __aenter__(self) -> MemoryServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(0)

    def __repr__(self) -> str:
        return f"<MemoryServer {self.url} paths={sorted(self._handlers)}>"


class MemoryChannel(BaseChannel):
    """Calls to one in-memory server (unary, server-streaming, bidi)."""

    def __init__(self, network: MemoryNetwork, url: str, high_water: int) -> None:
        self._network = network
        self.url = url
        self._high_water = high_water
        self._streams: set[MemoryStream] = set()
        self.closed = False

    async def open_stream(self, path: str, *, headers: Iterable[tuple[str, str]] = ()) -> Stream:
        if self.closed:
            raise ConnectionClosed(f"channel to {self.url} is closed")
        stream = self._network._dial(self.url, path, tuple(headers), self._high_water)
        self._streams.add(stream)
        return stream

    async def aclose(self) -> None:
        self.closed = True
        for st in self._streams:
            if not (st.closed and st._ended):
                st.abort()
        self._streams.clear()

    def __repr__(self) -> str:
        return f"<MemoryChannel {self.url}>"


def _address(url: str) -> str:
    """``memory://a``, ``http://host:port``, ``https://host:port`` or a bare address -> the key."""
    for scheme in (_SCHEME, "http://", "https://"):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/")
    if "://" in url:
        raise ValueError(f"unsupported URL for the in-memory transport: {url!r}")
    return url


class MemoryNetwork:
    """A namespace of in-memory addresses (one per test, typically).

    It offers the same two entry points as the :mod:`slimwire.transport` module,
    ``start_server`` and ``open_stream``, with compatible signatures (TLS and HTTP/2 tuning
    arguments are accepted and ignored), so code that takes "a transport" can be handed either.
    ``http://host:port`` URLs dial the in-memory server started on ``host``/``port``, so node
    configurations work unchanged in one process.
    """

    def __init__(self) -> None:
        self._servers: dict[str, MemoryServer] = {}
        self._ids = itertools.count(1)
        self._ports = itertools.count(40000)

    def serve(
        self,
        address: str,
        handlers: Mapping[str, Handler],
        *,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> MemoryServer:
        """Listen on ``memory://address`` (``address`` may be given with or without scheme)."""
        address = _address(address)
        if address in self._servers:
            raise TransportError(f"address memory://{address} is already in use")
        server = MemoryServer(self, address, handlers, high_water)
        self._servers[address] = server
        return server

    async def start_server(
        self,
        handlers: Mapping[str, Handler],
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        high_water: int = DEFAULT_HIGH_WATER,
        **_ignored: object,
    ) -> MemoryServer:
        """Like :func:`slimwire.transport.start_server`: serve on ``host:port`` (0 picks one)."""
        if port == 0:
            port = next(self._ports)
            while f"{host}:{port}" in self._servers:
                port = next(self._ports)
        server = self.serve(f"{host}:{port}", handlers, high_water=high_water)
        server.port = port
        return server

    def _dial(self, url: str, path: str, headers: Headers, high_water: int) -> MemoryStream:
        server = self._servers.get(_address(url))
        if server is None:
            raise TransportError(f"connection refused: nothing serves {url}")
        return server._accept(path, headers, f"memory-client-{next(self._ids)}", high_water)

    async def open_stream(
        self,
        url: str,
        path: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        high_water: int = DEFAULT_HIGH_WATER,
        **_ignored: object,
    ) -> Stream:
        """Dial ``url`` and open one call on ``path`` (like the module's ``open_stream``)."""
        return self._dial(url, path, tuple(headers), high_water)

    async def connect(
        self, url: str, *, high_water: int = DEFAULT_HIGH_WATER, **_ignored: object
    ) -> MemoryChannel:
        """A channel for several calls to ``url`` (like :func:`slimwire.transport.connect`)."""
        if _address(url) not in self._servers:
            raise TransportError(f"connection refused: nothing serves {url}")
        return MemoryChannel(self, url, high_water)

    def __repr__(self) -> str:
        return f"<MemoryNetwork {sorted(self._servers)}>"
