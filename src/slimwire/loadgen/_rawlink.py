"""The asyncio driver of :class:`~slimwire.loadgen._rawh2.ClientCore`: the fast bench link.

Same surface as the transport-based :class:`~slimwire.loadgen._link.BenchLink` for the handshake
(``send``/``recv``/``drain``), plus the two bulk operations the hot paths need: ``write_pool``
(hand over pre-framed bytes, no per-message work) and ``count`` (let received bytes flow
straight into a :class:`GrpcCounter`, with no task wake-up per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from slimwire._constants import DATAPLANE_PATH, NEGOTIATION_TIMEOUT_S
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import (
    ConnectionClosed,
    LinkNegotiationError,
    SlimwireTimeout,
    TransportError,
)
from slimwire.link import ClientNegotiation, HeaderMac
from slimwire.loadgen._rawh2 import MAX_WINDOW, ClientCore, GrpcCounter, split_grpc
from slimwire.loadgen._wire import HeaderSigner, PublishPool, grpc_frame

__all__ = ["RawLink", "open_raw_link"]

log = logging.getLogger(__name__)

_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)
_HIGH_WATER = 1024 * 1024
"""Socket write-buffer bytes above which ``drain`` waits."""


class RawLink(asyncio.Protocol):
    """One h2c connection with one ``OpenChannel`` call, driven for bulk traffic."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core
        self.mac: HeaderMac | None = None
        self.transport: asyncio.Transport | None = None
        self._sock: Any = None
        self._pending: list[memoryview] = []
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._lost = False
        self._counter: GrpcCounter | None = None
        self._expected = 0
        self._rate = 0.0
        self._first_ns = 0
        self.last_ns = 0
        self._progress: Any = None
        self._slot = 0

    def __repr__(self) -> str:
        return f"RawLink(ended={self.core.ended}, mac={self.mac is not None})"

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._sock = transport.get_extra_info("socket")
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        try:
            flow = self.core.receive(data)
        except Exception as exc:  # a protocol error from the node: end the link
            self.core._end(f"{type(exc).__name__}: {exc}")
            self._wake()
            if self.transport is not None:
                self.transport.abort()
            return
        counter = self._counter
        if counter is not None:
            # Counting mode: no task wake-up per chunk, only when the count is complete.
            if flow:
                self.last_ns = now
                if not self._first_ns:
                    self._first_ns = now
                if self._progress is not None:
                    self._progress[self._slot] = counter.count
                if counter.count >= self._expected:
                    self._wake()
                elif self._rate:
                    self._throttle(now)
            if self.core.ended:
                self._wake()
            self._flush()
            return
        if self._pending:
            self._pump()
        self._flush()
        self._wake()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.core._end(f"connection lost: {exc}" if exc else "connection closed")
        self._wake()

    # -- internals ---------------------------------------------------------------------------

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _flush(self) -> None:
        out = self.core.out
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(out)
            out.clear()

    def _pump(self) -> None:
        """Frame pending bytes while the windows allow."""
        pending = self._pending
        core = self.core
        while pending:
            head = pending[0]
            n = core.send_data(head)
            if n == 0:
                break
            if n == len(head):
                pending.pop(0)
            else:
                pending[0] = head[n:]
        self._flush()

    def _throttle(self, now: int) -> None:
        """Slow-consumer mode: stop reading from the socket while ahead of ``rate``."""
        assert self._counter is not None
        assert self.transport is not None
        ahead = self._counter.count / self._rate - (now - self._first_ns) / 1e9
        if ahead > 0.001:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(ahead, self._resume_reading)

    def _resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _check_open(self) -> None:
        if self._lost or (self.core.ended and self.core.error):
            raise ConnectionClosed(self.core.error or "link closed")

    # -- handshake-phase API (the same as BenchLink) -----------------------------------------

    @property
    def signer(self) -> HeaderSigner | None:
        return self.mac.sign if self.mac is not None else None

    def send(self, message: bytes) -> None:
        self._check_open()
        self._pending.append(memoryview(grpc_frame(message)))
        self._pump()

    def send_many(self, messages: Iterable[bytes]) -> None:
        self._check_open()
        self._pending.append(memoryview(b"".join(grpc_frame(m) for m in messages)))
        self._pump()

    async def drain(self) -> None:
        """Wait until everything written is framed and the socket buffer is below the mark."""
        while self._pending or self._paused:
            self._check_open()
            await self._wait()

    def quickack(self) -> None:
        """Ask the kernel to ACK at once (Linux ``TCP_QUICKACK``); see ``BenchLink.quickack``."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    async def recv(self) -> list[bytes]:
        """The next batch of whole messages (handshake phase); ``[]`` once the link ended."""
        while True:
            messages = split_grpc(self.core.grpc_buffer)
            if messages:
                return messages
            if self.core.ended or self._lost:
                return []
            await self._wait()

    def verify(self, header: pb.SLIMHeader) -> bool:
        return self.mac.verify(header) if self.mac is not None else True

    async def aclose(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.core.end_stream()
            self._flush()
            self.transport.close()

    # -- bulk API ----------------------------------------------------------------------------

    def write_pool(self, pool: PublishPool, start: int, end: int) -> None:
        """Queue pool slots ``[start, end)`` (pre-framed; the caller stamped them)."""
        self._check_open()
        self._pending.append(pool.view(start, end))
        self._pump()

    async def count(
        self,
        counter: GrpcCounter,
        expected: int,
        *,
        progress: Any = None,
        slot: int = 0,
        rate: float = 0.0,
    ) -> None:
        """Feed every received byte of our stream to ``counter`` until it has ``expected``
        messages or the link ends; cancel it for idle and deadline handling."""
        leftover = bytes(self.core.grpc_buffer)
        self.core.grpc_buffer.clear()
        self._counter = counter
        self._expected = expected
        self._rate = rate
        self._progress = progress
        self._slot = slot
        now = time.monotonic_ns()
        self.core.on_grpc_bytes = lambda chunk: counter.feed(chunk, time.monotonic_ns())
        if leftover:
            counter.feed(leftover, now)
        while counter.count < expected and not (self.core.ended or self._lost):
            await self._wait()
        if counter.count < expected and self.core.error:
            raise ConnectionClosed(self.core.error)


def _host_port(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", ""):
        raise ValueError(f"the raw bench link speaks h2c only (http://), not {parts.scheme!r}")
    host = parts.hostname or "127.0.0.1"
    return host, parts.port or 80, parts.netloc


async def open_raw_link(
    endpoint: str, timeout: float = NEGOTIATION_TIMEOUT_S, window: int = MAX_WINDOW
) -> RawLink:
    """Connect (h2c), open ``OpenChannel``, wait for the response headers, negotiate (EDGE)."""
    host, port, authority = _host_port(endpoint)
    loop = asyncio.get_running_loop()
    core = ClientCore(authority, DATAPLANE_PATH, window=window)
    try:
        async with asyncio.timeout(timeout):
            _, link = await loop.create_connection(lambda: RawLink(core), host, port)
    except (OSError, TimeoutError) as exc:
        raise TransportError(f"cannot connect to {endpoint}: {exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            # The reference client waits for the response headers before its first message.
            while core.response_headers is None and not core.ended:
                await link._wait()
            if core.ended:
                raise LinkNegotiationError(f"OpenChannel failed: {core.error}")
            negotiation = ClientNegotiation(node_id=f"slimwire-bench-{uuid.uuid4()}")
            link.send(negotiation.request().SerializeToString())
            while True:
                batch = await link.recv()
                if not batch:
                    raise LinkNegotiationError(f"link closed during negotiation: {core.error}")
                for raw in batch:
                    msg = pb.Message.FromString(raw)
                    if msg.WhichOneof("message_type") == "link":
                        link.mac = negotiation.receive(msg).mac
                        return link
    except TimeoutError:
        if link.transport is not None:
            link.transport.abort()
        phase = "link negotiation" if core.response_headers is not None else "response headers"
        raise SlimwireTimeout(f"{endpoint}: no {phase} within {timeout:.0f} s") from None
    except BaseException:
        if link.transport is not None:
            link.transport.abort()
        raise
