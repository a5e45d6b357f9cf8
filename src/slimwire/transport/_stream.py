"""The transport-independent :class:`Stream` (one gRPC call) and :class:`BaseChannel`.

Every transport (HTTP/2 server side, HTTP/2 client side, in-memory) hands out the same
``Stream``: messages go out with a non-blocking :meth:`Stream.send` and come in as *batches*
from :meth:`Stream.recv`. Batches are what keep the per-message cost low: a forwarder awaits
once per batch, not once per message, and back-pressure is applied per batch via
:meth:`Stream.drain` when :attr:`Stream.pending_bytes` is over the high-water mark.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeAlias

from slimwire.errors import (
    ConnectionClosed,
    GrpcError,
    RemoteProtocolError,
    SlimwireError,
    SlimwireTimeout,
)
from slimwire.transport._events import Headers
from slimwire.transport._status import Status

__all__ = ["DEFAULT_HIGH_WATER", "BaseChannel", "Handler", "Receiver", "Stream", "run_handler"]

log = logging.getLogger(__name__)

DEFAULT_HIGH_WATER = 1024 * 1024
"""Outbound bytes queued on a stream above which :meth:`Stream.drain` waits."""

Receiver: TypeAlias = Callable[[list[bytes]], bool]
"""Takes a batch of received messages inside the transport's read callback (see
:meth:`Stream.set_receiver`); returns False to leave the batch queued for :meth:`Stream.recv`."""


class Stream(abc.ABC):
    """One gRPC call (one SLIM link), the same on every transport.

    * ``send``/``send_many`` queue serialized messages and never block; they raise
      :class:`ConnectionClosed` once the stream can no longer send.
    * ``await drain()`` returns once queued outbound bytes are below the high-water mark.
    * ``await recv()`` returns the next non-empty batch of whole messages, ``[]`` once the peer
      ended its side cleanly, raises :class:`GrpcError` for a non-OK status and
      :class:`ConnectionClosed` on reset or connection loss (messages that arrived before the end
      are always returned first).
    * ``set_receiver(fn)`` lets a transport hand batches to ``fn`` as they are read, with no
      task to wake; ``recv()`` still returns what ``fn`` declined and reports the end.
    """

    def __init__(self, *, peer: str, path: str, request_headers: Headers, high_water: int) -> None:
        self.peer = peer
        self.path = path
        self.request_headers = request_headers
        self.high_water = high_water
        self._inbox: list[bytes] = []
        self._receiver: Receiver | None = None
        self._recv_waiter: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._ended = False  # the peer's side is over (cleanly or not)
        self._end_error: SlimwireError | None = None
        self._send_closed = False  # we can no longer send
        self.response_headers: Headers = ()
        """Client side: the server's response headers, once they arrived."""
        self.trailers: Headers = ()
        """Client side: the trailers that ended the call."""

    # -- abstract, per transport -------------------------------------------------------------

    @abc.abstractmethod
    def send(self, message: bytes) -> None:
        """Queue one serialized message."""

    @abc.abstractmethod
    def send_many(self, messages: Iterable[bytes]) -> None:
        """Queue several serialized messages, in order."""

    def send_framed(self, chunks: list[bytes]) -> None:
        """Queue messages that already carry their 5-byte gRPC prefix (uncompressed), in
        order. A forwarder that builds each copy in one piece saves the transport a prefix
        and an append per message; this default strips the prefixes for transports that
        do not frame (in memory)."""
        self.send_many([c[5:] for c in chunks])

    @property
    @abc.abstractmethod
    def pending_bytes(self) -> int:
        """Outbound bytes queued and not yet handed to the network."""

    @abc.abstractmethod
    async def close(self, status: int = 0, message: str = "") -> None:
        """End our side: the server sends trailers with ``status``; the client half-closes."""

    @abc.abstractmethod
    def abort(self, status: int = Status.CANCELLED, message: str = "") -> None:
        """End the call now, dropping queued output (server: trailers; client: RST_STREAM)."""

    def _consumed(self) -> None:  # noqa: B027 - optional hook
        """The application took the inbox (hook for returning flow-control credit)."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Hand what is queued to the network now rather than at the end of this loop tick.

        For a caller that knows its burst is over (a node that routed a read, an app that
        pumped its publishes): it saves the loop turn a scheduled flush waits for, which is a
        fixed cost on every message of a request/reply exchange. Transports that do not queue
        ignore it; the event loop still coalesces the socket writes of one tick (uvloop)."""

    def set_receiver(self, receiver: Receiver | None) -> None:
        """Have received batches handed to ``receiver`` synchronously, from the transport's read
        callback, instead of queued for :meth:`recv` (``None``: queue them again).

        Waking a task per read is a loop turn and a future per message on a request/reply
        path; a receiver that only routes or parses (never awaits) saves both. It must not
        raise, and returns False to decline a batch (too big to handle at once, or the
        receiver is paused for back-pressure): the batch is then queued for :meth:`recv`, and
        so is every later batch until that queue has been taken, so order is kept. Flow-control
        credit for a batch the receiver took is returned when it returns. A transport may
        never call the receiver (the in-memory one does not: a send there would run the
        peer's receiver inside the sender's own call), so the caller keeps reading with
        :meth:`recv`, which also reports the end of the stream as before.
        """
        self._receiver = receiver

    # -- shared ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once this side can no longer send (closed, aborted, reset or lost)."""
        return self._send_closed

    async def recv(self) -> list[bytes]:
        while True:
            inbox = self._inbox
            if inbox:
                self._inbox = []
                self._consumed()
                return inbox
            if self._ended:
                if self._end_error is not None:
                    raise self._end_error
                return []
            if self._recv_waiter is not None:
                raise RuntimeError("recv() is already being awaited on this stream")
            waiter = asyncio.get_running_loop().create_future()
            self._recv_waiter = waiter
            try:
                await waiter
            finally:
                self._recv_waiter = None

    async def drain(self) -> None:
        if self.pending_bytes < self.high_water:
            return
        if self._send_closed:
            raise ConnectionClosed(f"stream {self.path} to {self.peer} is closed")
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._drain_waiters.remove(waiter)
        if self._send_closed and self.pending_bytes >= self.high_water:
            raise ConnectionClosed(f"stream {self.path} to {self.peer} is closed")

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[bytes]]:
        """Batches until the peer ends cleanly (errors propagate)."""
        while batch := await self.recv():
            yield batch

    def __repr__(self) -> str:
        state = "closed" if self._send_closed else "open"
        return f"<{type(self).__name__} {self.path} peer={self.peer} {state}>"

    # -- driver side -------------------------------------------------------------------------

    def _deliver(self, messages: list[bytes]) -> None:
        if self._inbox:
            self._inbox.extend(messages)
        else:
            self._inbox = messages
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self, error: SlimwireError | None) -> None:
        """The peer's side ended (``error`` None: cleanly)."""
        if not self._ended:
            self._ended = True
            self._end_error = error
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close_send(self) -> None:
        self._send_closed = True
        self._wake_drain(force=True)

    def _wake_drain(self, force: bool = False) -> None:
        if self._drain_waiters and (force or self.pending_bytes < self.high_water):
            for w in self._drain_waiters:
                if not w.done():
                    w.set_result(None)
            self._drain_waiters.clear()


Handler = Callable[[Stream], Awaitable[None]]
"""A server method: called once per incoming stream on its path; returning ends the call OK."""


async def run_handler(handler: Handler, stream: Stream) -> None:
    """Run a server handler and end its call the way gRPC servers do.

    Returning sends OK (unless the handler already closed the stream); raising
    :class:`GrpcError` sends that status; any other exception sends INTERNAL with its text;
    cancellation (server shutdown) sends UNAVAILABLE.
    """
    try:
        await handler(stream)
    except asyncio.CancelledError:
        if not stream.closed:
            stream.abort(Status.UNAVAILABLE, "server is shutting down")
        raise
    except GrpcError as exc:
        if not stream.closed:
            stream.abort(exc.status, exc.grpc_message)
    except ConnectionClosed as exc:
        log.debug("call %s from %s ended: %s", stream.path, stream.peer, exc)
    except RemoteProtocolError as exc:  # the stream already ended with the right status
        log.info("call %s from %s failed: %s", stream.path, stream.peer, exc)
        if not stream.closed:
            stream.abort(Status.INTERNAL, str(exc))
    except Exception as exc:
        log.exception("handler for %s from %s failed", stream.path, stream.peer)
        if not stream.closed:
            stream.abort(Status.INTERNAL, f"{type(exc).__name__}: {exc}")
    else:
        if not stream.closed:
            await stream.close(Status.OK)


class BaseChannel(abc.ABC):
    """Several calls to one peer; unary and server-streaming calls built on :meth:`open_stream`."""

    @abc.abstractmethod
    async def open_stream(self, path: str, *, headers: Iterable[tuple[str, str]] = ()) -> Stream:
        """Open a bidi-streaming call."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the channel; open calls end with :class:`ConnectionClosed`."""

    async def unary(
        self,
        path: str,
        request: bytes,
        *,
        headers: Iterable[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> bytes:
        """One request, one response."""
        hdrs = list(headers)
        if timeout is not None:
            hdrs.append(("grpc-timeout", f"{max(1, int(timeout * 1000))}m"))
        stream = await self.open_stream(path, headers=hdrs)
        try:
            async with asyncio.timeout(timeout):
                stream.send(request)
                await stream.close()
                replies: list[bytes] = []
                while batch := await stream.recv():
                    replies.extend(batch)
        except TimeoutError:
            stream.abort(Status.DEADLINE_EXCEEDED, "deadline exceeded")
            raise SlimwireTimeout(f"unary call {path} timed out after {timeout} s") from None
        except BaseException:
            if not stream.closed or not stream._ended:
                stream.abort()
            raise
        if len(replies) != 1:
            raise RemoteProtocolError(f"unary call {path} got {len(replies)} responses")
        return replies[0]

    async def server_stream(
        self, path: str, request: bytes, *, headers: Iterable[tuple[str, str]] = ()
    ) -> AsyncIterator[bytes]:
        """One request, a stream of responses (ends at OK; raises :class:`GrpcError` otherwise)."""
        stream = await self.open_stream(path, headers=headers)
        done = False
        try:
            stream.send(request)
            await stream.close()
            while batch := await stream.recv():
                for message in batch:
                    yield message
            done = True
        finally:
            if not done:
                stream.abort()

    async def __aenter__(self) -> BaseChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
