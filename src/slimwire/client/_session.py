"""The user's view of a session: publish, receive, reply, close — all awaitable."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from slimwire.errors import DeliveryFailed, PublishDenied, SessionClosed, SlimwireTimeout
from slimwire.names import Name
from slimwire.session import ReceivedMessage, SessionConfig

if TYPE_CHECKING:
    from slimwire.client._app import App

__all__ = ["Message", "Session"]

log = logging.getLogger(__name__)

DENIED_REMEMBERED = 256
"""Refused message ids remembered per session, so the notices for a refused message's
retransmissions are not reported again."""

Payload = bytes | bytearray | memoryview | str


def _as_bytes(payload: Payload) -> bytes:
    return payload.encode() if isinstance(payload, str) else bytes(payload)


@dataclass(frozen=True, slots=True)
class Message:
    """A received application message. ``await msg.reply(...)`` answers its sender."""

    session: Session
    source: Name
    payload: bytes
    payload_type: str
    metadata: Mapping[str, str]
    message_id: int

    @classmethod
    def _from(cls, session: Session, received: ReceivedMessage) -> Message:
        # ``cls(...)`` at half the cost: one is made per received message, and a frozen
        # dataclass's __init__ sets each field through object.__setattr__; the slots'
        # descriptors set them directly (the value is as immutable afterwards).
        msg: Message = _object_new(cls)
        _S0(msg, session)
        _S1(msg, received.source)
        _S2(msg, received.payload)
        _S3(msg, received.payload_type)
        _S4(msg, received.metadata)
        _S5(msg, received.message_id)
        return msg

    @property
    def text(self) -> str:
        return self.payload.decode()

    async def reply(
        self,
        payload: Payload,
        *,
        payload_type: str = "msg",
        metadata: Mapping[str, str] | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> int | None:
        """Answer the sender only (``publish_to``; in a p2p session the same as ``publish``)."""
        return await self.session.publish(
            payload,
            payload_type=payload_type,
            metadata=metadata,
            wait=wait,
            timeout=timeout,
            to=self.source,
        )

    def __repr__(self) -> str:
        body = self.payload[:32]
        more = "…" if len(self.payload) > 32 else ""
        return (
            f"Message(from={self.source.short()}, id={self.message_id}, "
            f"type={self.payload_type!r}, payload={body!r}{more})"
        )


def _wake_one(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_FIELDS = ("session", "source", "payload", "payload_type", "metadata", "message_id")
assert tuple(f.name for f in dataclasses.fields(Message)) == _FIELDS
_S0, _S1, _S2, _S3, _S4, _S5 = (getattr(Message, name).__set__ for name in _FIELDS)
_object_new = object.__new__


class Session:
    """One session of an :class:`App`. Use ``async with`` to close it on exit.

    Received messages queue up until read with :meth:`receive` or ``async for``; a
    :class:`SessionClosed` is raised once the session is closed and the queue is empty.

    When the node's policy refuses one of our publishes, the next :meth:`receive` or
    :meth:`publish` raises :class:`PublishDenied` (once), or ``publish(wait=True)`` of that
    message does; the session stays open (the policy may change, other messages may pass).
    """

    def __init__(
        self, app: App, session_id: int, peer: Name, config: SessionConfig, initiator: bool
    ) -> None:
        self._app = app
        self.session_id = session_id
        self.peer = peer
        self.config = config
        self.initiator = initiator
        self._inbox: deque[Message] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        # Reliable sends: ids awaiting an ack, and futures only for the callers who wait (a
        # future per message cost ~1.5 us each way when nobody awaited it).
        self._unacked: set[int] = set()
        self._ack_waiters: dict[int, asyncio.Future[None]] = {}
        self._flushes: list[tuple[set[int], asyncio.Future[None]]] = []
        self._closed: str | None = None
        self._closed_event = asyncio.Event()
        self._denied: PublishDenied | None = None
        self._denied_ids: deque[int | None] = deque(maxlen=DENIED_REMEMBERED)
        self.lost: list[tuple[Name, int]] = []
        """Messages the peer sent that will never arrive (id reported by reliable delivery)."""

    def __repr__(self) -> str:
        state = f"closed: {self._closed}" if self._closed else "open"
        return (
            f"<Session {self.session_id} with {self.peer.short()} "
            f"{'reliable' if self.config.reliable else 'best-effort'} {state}>"
        )

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def participants(self) -> list[Name]:
        """Everyone in the session, us included (for a group: the current roster)."""
        return self._app._members(self)

    @property
    def status(self) -> dict[Name, bool]:
        """Every other participant and whether it is online (missed heartbeats: offline)."""
        return self._app._status(self)

    async def invite(self, name: Name | str, timeout: float = 30.0) -> Name:
        """Moderator of a group: add a member; returns its full name once it has joined."""
        target = Name.parse(name) if isinstance(name, str) else name
        return await self._app._group_task(self, "invite", target, timeout)

    async def remove(self, name: Name | str, timeout: float = 30.0) -> Name:
        """Moderator of a group: remove a member; returns once it has left."""
        target = Name.parse(name) if isinstance(name, str) else name
        return await self._app._group_task(self, "remove", target, timeout)

    async def soft_close(self, timeout: float = 30.0) -> None:
        """Group member: go offline without leaving (the reference's ``close_with_mode(SOFT)``).

        The others stop waiting for our acks and do not drop us for silence; we send no
        heartbeats until :meth:`rejoin`. Returns once every member answered (or retries ran out).
        """
        await self._app._state_task(self, False, timeout)

    async def rejoin(self, timeout: float = 30.0) -> None:
        """Group member: come back online after :meth:`soft_close`. If our MLS epoch is stale
        (commits happened while away) a member NACKs and we re-enter the MLS group through the
        moderator. Raises :class:`SessionError` if that fails."""
        await self._app._state_task(self, True, timeout)

    @property
    def metadata(self) -> Mapping[str, str]:
        """The session metadata (set by the initiator, carried on the JoinRequest)."""
        return self.config.metadata

    # -- sending ------------------------------------------------------------------------------

    async def publish(
        self,
        payload: Payload,
        *,
        payload_type: str = "msg",
        metadata: Mapping[str, str] | None = None,
        wait: bool = False,
        timeout: float | None = None,
        to: Name | str | None = None,
    ) -> int | None:
        """Send ``payload`` to the peer (or every member of a group); returns its message id.

        ``to`` sends to one member of a group only (unsequenced). With ``wait=True`` on a
        reliable session, return only once every receiver acknowledged it (raises
        :class:`DeliveryFailed` after every retry failed, :class:`PublishDenied` if the node's
        policy refused it). Raises :class:`PublishDenied` if an earlier publish of this session
        was refused and not reported yet (this message is then not sent).
        """
        if self._closed is not None:
            raise SessionClosed(f"session {self.session_id} is closed: {self._closed}")
        if self._denied is not None:
            denied, self._denied = self._denied, None
            raise denied
        target = Name.parse(to) if isinstance(to, str) else to
        tracer = self._app._tracer
        if tracer is None:
            mid = self._app._publish(self, _as_bytes(payload), payload_type, metadata, target)
        else:
            span, metadata = tracer.start_publish(
                str(target or self.peer), self.session_id, metadata
            )
            mid = None
            try:
                mid = self._app._publish(self, _as_bytes(payload), payload_type, metadata, target)
            finally:
                tracer.end_publish(span, mid)
        if wait and self.config.reliable and mid is not None and mid in self._unacked:
            fut = self._ack_waiters.get(mid)
            if fut is None:
                fut = self._ack_waiters[mid] = asyncio.get_running_loop().create_future()
            await self._wait(asyncio.shield(fut), timeout, f"ack of message {mid}")
        stream = self._app._stream
        if stream is not None and stream.pending_bytes >= stream.high_water:
            await self._app._drain()  # back-pressure; checked here to skip a coroutine per call
        return mid

    def _ack_future(self, mid: int) -> None:
        self._unacked.add(mid)

    def _settled(self, mid: int) -> None:
        self._unacked.discard(mid)
        if self._flushes:
            keep = []
            for ids, fut in self._flushes:
                ids.discard(mid)
                if not ids:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((ids, fut))
            self._flushes = keep

    def _on_delivered(self, mid: int) -> None:
        self._settled(mid)
        fut = self._ack_waiters.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _on_failed(self, mid: int) -> None:
        self._settled(mid)
        fut = self._ack_waiters.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_exception(DeliveryFailed(f"message {mid} to {self.peer} was not acknowledged"))
            fut.exception()  # retrieved: the waiter may have timed out already

    def _on_denied(self, error: PublishDenied) -> None:
        """The node refused our message ``error.message_id``: fail its waiter, or keep the
        error for the next receive()/publish(). Reported once per message (retransmissions of a
        reliable message are refused again, each with its own notice)."""
        mid = error.message_id
        if mid is not None and mid in self._denied_ids:
            log.debug("%s (again)", error)
            return
        self._denied_ids.append(mid)
        log.warning("%s", error)
        if mid is not None:
            self._settled(mid)
            fut = self._ack_waiters.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: the waiter may have timed out already
                return
        self._denied = error
        self._wake()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every reliable message sent so far is acknowledged (or failed)."""
        if not self._unacked:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (set(self._unacked), fut)
        self._flushes.append(entry)
        try:
            await self._wait(asyncio.shield(fut), timeout, "acks")
        finally:
            if entry in self._flushes:
                self._flushes.remove(entry)

    # -- receiving ----------------------------------------------------------------------------

    def _push(self, received: ReceivedMessage) -> None:
        self._inbox.append(Message._from(self, received))
        if self._app._tracer is not None:
            self._app._tracer.received(
                str(received.source), self.session_id, received.message_id, received.metadata
            )
        self._wake()

    def _wake(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message; raises :class:`SlimwireTimeout`, :class:`SessionClosed`, or
        :class:`PublishDenied` when the node refused one of our publishes since the last
        receive()/publish() (reported once)."""
        if self._denied is not None:
            denied, self._denied = self._denied, None
            raise denied
        if self._inbox:  # the common case under load: no clock, no future
            return self._inbox.popleft()
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        # Each receiver waits on its own future (a cancelled receiver cancels only its own,
        # so no shield), and a timeout is a plain timer that wakes it to re-check: about half
        # the cost of asyncio.timeout() + shield() per wait, measured.
        while not self._inbox:
            if self._denied is not None:
                denied, self._denied = self._denied, None
                raise denied
            if self._closed is not None:
                raise SessionClosed(f"session {self.session_id} is closed: {self._closed}")
            if end is not None and loop.time() >= end:
                raise SlimwireTimeout(f"no message on session {self.session_id} in {timeout}s")
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = None if end is None else loop.call_at(end, _wake_one, waiter)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                if waiter in self._waiters:  # timed out or cancelled, not woken by _wake
                    self._waiters.remove(waiter)
        return self._inbox.popleft()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.receive()
            except SessionClosed:
                return

    # -- closing ------------------------------------------------------------------------------

    def _on_closed(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
        self._closed_event.set()
        self._wake()
        for mid in list(self._unacked):
            self._on_failed(mid)

    async def close(self, timeout: float = 15.0) -> None:
        """Close gracefully: let outstanding reliable messages finish, then tell the peer."""
        if self._closed is not None:
            return
        with contextlib.suppress(SlimwireTimeout):
            await self.flush(timeout=timeout / 2)
        if self._closed is None:
            self._app._close_session(self)
        with contextlib.suppress(SlimwireTimeout):
            await self._wait(self._closed_event.wait(), timeout, "close")
        self._on_closed("closed locally")

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _wait(self, aw: object, timeout: float | None, what: str) -> None:
        try:
            await asyncio.wait_for(aw, timeout)  # type: ignore[arg-type]
        except TimeoutError:
            raise SlimwireTimeout(f"session {self.session_id}: {what} timed out") from None
