"""asyncio driver for :class:`GrpcConnection`: an ``asyncio.Protocol`` and the HTTP/2 Stream.

Why a Protocol and not asyncio streams: ``data_received`` hands us whatever the kernel had (often
hundreds of KiB) with no extra task hop, and we feed it to ``h2`` in one call; a stream with a
receiver (``Stream.set_receiver``) gets its messages right there, without a task to wake. Writes
are coalesced: ``Stream.send`` only appends to the stream's queue and asks for a flush; the flush
runs once per loop tick (``call_soon``; asked for while a read is handled, it is scheduled after
the callbacks that read woke) and writes everything queued with a single ``writelines``, unless
the caller knows its burst is over and calls ``Stream.flush()``. No per-message awaits anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from typing import cast

from slimwire.errors import ConnectionClosed, GrpcError
from slimwire.transport._core import GrpcConnection
from slimwire.transport._events import (
    ConnectionTerminated,
    Event,
    Headers,
    MessagesReceived,
    PingAcked,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamFailed,
    StreamReset,
    WindowUpdated,
)
from slimwire.transport._framing import OutQueue
from slimwire.transport._status import Status
from slimwire.transport._stream import Stream

__all__ = ["H2Protocol", "H2Stream", "format_peer"]

log = logging.getLogger(__name__)


def format_peer(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


class H2Stream(Stream):
    """A gRPC call on an HTTP/2 connection (either role)."""

    def __init__(
        self,
        proto: H2Protocol,
        stream_id: int,
        out: OutQueue,
        *,
        path: str,
        request_headers: Headers,
        high_water: int,
    ) -> None:
        super().__init__(
            peer=proto.peer, path=path, request_headers=request_headers, high_water=high_water
        )
        self.stream_id = stream_id
        self._proto = proto
        self._out = out
        self._unacked = 0

    def send(self, message: bytes) -> None:
        if self._send_closed:
            raise ConnectionClosed(f"stream {self.path} to {self.peer} is closed")
        self._out.push(message)
        self._proto.schedule(self)

    def send_many(self, messages: Iterable[bytes]) -> None:
        if self._send_closed:
            raise ConnectionClosed(f"stream {self.path} to {self.peer} is closed")
        if self._out.push_many(messages):
            self._proto.schedule(self)

    def send_framed(self, chunks: list[bytes]) -> None:
        if self._send_closed:
            raise ConnectionClosed(f"stream {self.path} to {self.peer} is closed")
        if self._out.push_framed(chunks):
            self._proto.schedule(self)

    def flush(self) -> None:
        self._proto.flush_now()

    @property
    def pending_bytes(self) -> int:
        return self._out.size

    async def close(self, status: int = 0, message: str = "") -> None:
        if self._send_closed:
            return
        core = self._proto.core
        if core.client_side:
            if status:
                self.abort(status, message)
                return
            core.end_stream(self.stream_id)
        else:
            core.send_trailers(self.stream_id, status, message)
            self._finish(None)  # the call is over: nothing more will be received
        self._close_send()
        self._proto.schedule_flush()
        self._proto.stream_maybe_done(self)

    def abort(self, status: int = Status.CANCELLED, message: str = "") -> None:
        if self._ended and self._send_closed:
            return
        self._proto.core.abort(self.stream_id, status, message)
        self._close_send()
        self._finish(ConnectionClosed(f"stream {self.path} aborted locally"))
        self._proto.schedule_flush()
        self._proto.stream_maybe_done(self)

    def _consumed(self) -> None:
        if self._unacked:
            core = self._proto.core
            core.consumed(self.stream_id, self._unacked)
            self._unacked = 0
            if core.wants_flush:  # h2 returns credit in big WINDOW_UPDATEs, rarely
                self._proto.schedule_flush()


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection. The server subclass reacts to new requests; the client opens them."""

    def __init__(
        self,
        core: GrpcConnection,
        *,
        high_water: int,
        keepalive_interval: float | None = None,
        keepalive_timeout: float = 20.0,
    ) -> None:
        self.core = core
        self.high_water = high_water
        self.peer = "?"
        self.streams: dict[int, H2Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._flush_handle: asyncio.Handle | None = None
        self._receiving = False  # inside data_received: flushes are scheduled at its end
        self._paused = False
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self._keepalive_handle: asyncio.TimerHandle | None = None
        self._ping_deadline: asyncio.TimerHandle | None = None
        self._ping_seq = 0
        self._lost_reason = "connection lost"
        self.on_idle: Callable[[], None] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = format_peer(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.core.initiate()
        self._flush()
        self._arm_keepalive()

    def data_received(self, data: bytes) -> None:
        events = self.core.receive_data(data)
        streams = self.streams
        # Flushes asked for while the events are handled are scheduled after them (below), so
        # after the tasks they wake: what those tasks write on their first turn (a reply) goes
        # out with what was queued here (an ack) in one write.
        self._receiving = True
        try:
            self._dispatch(events, streams)
        finally:
            self._receiving = False
        # Only when there is something to write (acks, WINDOW_UPDATEs, responses, data a
        # window update released, a failure to close on): a DATA frame alone writes nothing,
        # and an empty flush costs a loop callback per read.
        if self._flush_handle is None and self.core.wants_flush:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _dispatch(self, events: list[Event], streams: dict[int, H2Stream]) -> None:
        for ev in events:
            if type(ev) is MessagesReceived:
                st = streams.get(ev.stream_id)
                if st is None:
                    self.core.consumed(ev.stream_id, ev.flow_bytes)
                else:
                    st._unacked += ev.flow_bytes
                    receiver = st._receiver
                    if receiver is not None and not st._inbox:
                        try:
                            taken = receiver(ev.messages)
                        except Exception:  # a bug there must not take the connection down
                            log.exception("receiver of %s from %s failed", st.path, self.peer)
                            st.abort(Status.INTERNAL, "receiver failed")
                            continue
                        if taken:
                            st._consumed()
                            continue
                    st._deliver(ev.messages)
            elif isinstance(ev, WindowUpdated):
                pass  # the flush below moves whatever the window now allows
            elif isinstance(ev, RequestReceived):
                self.on_request(ev)
            elif isinstance(ev, ResponseReceived):
                st = streams.get(ev.stream_id)
                if st is not None:
                    st.response_headers = ev.headers
            elif isinstance(ev, StreamEnded):
                self._on_stream_ended(ev)
            elif isinstance(ev, StreamReset):
                st = streams.get(ev.stream_id)
                if st is not None:
                    st._close_send()
                    st._finish(
                        ConnectionClosed(f"stream reset by {self.peer} (code {ev.error_code})")
                    )
                    self.stream_maybe_done(st)
            elif isinstance(ev, StreamFailed):
                st = streams.get(ev.stream_id)
                if st is not None:
                    st._close_send()
                    st._finish(ev.error)
                    self.stream_maybe_done(st)
            elif isinstance(ev, PingAcked):
                if self._ping_deadline is not None:
                    self._ping_deadline.cancel()
                    self._ping_deadline = None
            elif isinstance(ev, ConnectionTerminated):
                self._on_terminated(ev)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self.schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._cancel_keepalive()
        reason = self._lost_reason if exc is None else f"{self._lost_reason}: {exc}"
        for st in list(self.streams.values()):
            st._close_send()
            st._finish(ConnectionClosed(f"{reason} ({self.peer})"))
        self.streams.clear()
        self.core.terminated = True
        if not self.closed.done():
            self.closed.set_result(None)
        self.connection_closed()

    # -- hooks for the roles -----------------------------------------------------------------

    def on_request(self, ev: RequestReceived) -> None:
        """A peer opened a call (server role only)."""
        self.core.reject(ev.stream_id, Status.UNIMPLEMENTED, "this peer serves no methods")

    def connection_closed(self) -> None:
        """The socket is gone (after every stream has been failed)."""

    # -- flushing ----------------------------------------------------------------------------

    def schedule(self, stream: H2Stream) -> None:
        """``stream`` has queued output: make sure a flush runs this tick."""
        self.core.mark_dirty(stream.stream_id, stream._out)
        if self._flush_handle is None and not self._receiving:
            self._flush_handle = self._loop.call_soon(self._flush)

    def schedule_flush(self) -> None:
        if self._flush_handle is None and not self._receiving:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._paused:
            data = self.core.flush_control()
            if data:
                transport.write(data)
        else:
            chunks = self.core.flush_chunks()
            if chunks:
                transport.writelines(chunks)
        for st in self.streams.values():
            if st._drain_waiters:
                st._wake_drain()
        if self.core.terminated:
            transport.close()

    # -- stream lifecycle --------------------------------------------------------------------

    def _on_stream_ended(self, ev: StreamEnded) -> None:
        st = self.streams.get(ev.stream_id)
        if st is None:
            return
        if ev.status is None:  # server: the client half-closed
            st._finish(None)
            return
        st.trailers = ev.trailers
        st._close_send()
        if ev.status == Status.OK:
            st._finish(None)
        else:
            st._finish(GrpcError(ev.status, ev.message))
        self.stream_maybe_done(st)

    def stream_maybe_done(self, st: H2Stream) -> None:
        """Forget a stream whose call is over on both sides; tell an idle-watcher."""
        if st._send_closed and (st._ended or not self.core.client_side):
            self.streams.pop(st.stream_id, None)
            if not self.streams:
                if self.on_idle is not None:
                    self.on_idle()
                if self.core.goaway_received:  # the peer is going away: nothing more to do
                    self.schedule_flush()
                    self._close_soon()

    def _on_terminated(self, ev: ConnectionTerminated) -> None:
        if ev.remote:
            log.debug("GOAWAY from %s: code %d %s", self.peer, ev.error_code, ev.reason)
            if not self.streams and self.transport is not None:
                self._lost_reason = "connection closed by peer (GOAWAY)"
                self.schedule_flush()
                self._close_soon()
            return
        log.info("HTTP/2 connection to %s failed: %s", self.peer, ev.reason)
        self._lost_reason = ev.reason
        for st in list(self.streams.values()):
            st._close_send()
            st._finish(ConnectionClosed(f"{ev.reason} ({self.peer})"))

    def _close_soon(self) -> None:
        transport = self.transport
        if transport is not None:
            # the flush goes first, even one deferred to the end of data_received
            if self._flush_handle is None and self.core.wants_flush:
                self._flush_handle = self._loop.call_soon(self._flush)
            self._loop.call_soon(transport.close)

    def close(self, reason: str = "") -> None:
        """GOAWAY and close the socket once written (streams in flight are lost)."""
        self.core.close(0, reason)
        self._lost_reason = reason or "connection closed locally"
        self.flush_now()
        if self.transport is not None:
            self.transport.close()

    def goaway(self, reason: str = "") -> None:
        """GOAWAY but keep serving the streams already open."""
        self.core.close(0, reason)
        self.flush_now()

    def flush_now(self) -> None:
        """Write what is queued now (the scheduled flush, if any, is cancelled)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()

    # -- keepalive ---------------------------------------------------------------------------

    def _arm_keepalive(self) -> None:
        if self._keepalive_interval:
            self._keepalive_handle = self._loop.call_later(self._keepalive_interval, self._ping)

    def _ping(self) -> None:
        self._keepalive_handle = None
        if self.transport is None or self.transport.is_closing():
            return
        self._ping_seq += 1
        self.core.ping(struct.pack(">Q", self._ping_seq))
        self.schedule_flush()
        if self._ping_deadline is None:
            self._ping_deadline = self._loop.call_later(self._keepalive_timeout, self._ping_timeout)
        self._arm_keepalive()

    def _ping_timeout(self) -> None:
        self._ping_deadline = None
        log.info("keepalive timeout: closing connection to %s", self.peer)
        self._lost_reason = "keepalive timeout"
        if self.transport is not None:
            self.transport.abort()

    def _cancel_keepalive(self) -> None:
        for h in (self._keepalive_handle, self._ping_deadline):
            if h is not None:
                h.cancel()
        self._keepalive_handle = self._ping_deadline = None
