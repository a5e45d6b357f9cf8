"""The asyncio app driver: one link to a node, the session layer, and the user's sessions.

``connect()`` dials the node, negotiates the link as an EDGE client (header MAC on), subscribes
the app's own name *with its id* and waits for the SubscriptionAck. Then the node's messages go
to the sans-IO :class:`~slimwire.session.SessionLayer` from the transport's read callback
(:meth:`App._on_batch`; a reader task only watches the link), one timer task sleeps until its
next deadline, and every layer call is followed by :meth:`App._pump`, which stamps the link MAC
on the layer's output and hands it to the stream (the first publish of a loop tick is written
at once, the rest of the tick's output in one write, with TCP_NODELAY: no Nagle stalls; see
:mod:`._link` for the ACKs a reference node needs). A lost link is re-dialled with backoff under
the same link id, and the subscriptions are replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from slimwire._constants import DATAPLANE_PATH, DEFAULT_TTL, SLIM_VERSION
from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import (
    Identity,
    SharedSecretProvider,
    SharedSecretVerifier,
    TokenProvider,
    TokenVerifier,
    prefetch_keys,
)
from slimwire.client._link import quickack, quickack_socket
from slimwire.client._session import Session
from slimwire.errors import (
    ConnectionClosed,
    LinkNegotiationError,
    PublishDenied,
    SessionError,
    SlimwireError,
    SlimwireTimeout,
    SubscriptionError,
    TransportError,
)
from slimwire.link import ClientNegotiation, HeaderMac, LinkConnectionType
from slimwire.names import Name
from slimwire.policy import DenialNotice, parse_denial_notice
from slimwire.session import (
    DEFAULT_TOKEN_REUSE,
    DeliveryFailed,
    MessageDelivered,
    MessageLost,
    MessageReceived,
    SessionClosed,
    SessionConfig,
    SessionEstablished,
    SessionEvent,
    SessionFailed,
    SessionLayer,
    SubscriptionChange,
    TaskDone,
)
from slimwire.transport import Stream, open_stream

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from slimwire.tracing._client import ClientTracer

__all__ = ["App", "OpeningSession", "connect"]

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 10.0
NEGOTIATION_TIMEOUT = 5.0
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 2.0
MAX_BUFFERED_WHILE_DOWN = 10_000
MAC_CACHE_SIZE = 1024
PUBLISH_BATCH = 64
"""Publishes queued in the session layer before they are handed to the stream at once."""
"""Distinct headers remembered as verified, and signed tags kept, per link."""


def _subscription_id() -> int:
    return secrets.randbits(64) or 1


class OpeningSession:
    """What :meth:`App.open_session` returns: await it, or use it with ``async with``."""

    __slots__ = ("_coro", "_session")

    def __init__(self, coro: Coroutine[Any, Any, Session]) -> None:
        self._coro = coro
        self._session: Session | None = None

    def __await__(self) -> Generator[Any, None, Session]:
        return self._coro.__await__()

    async def __aenter__(self) -> Session:
        self._session = await self._coro
        return self._session

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def __repr__(self) -> str:
        return f"<OpeningSession {self._session!r}>"


class App:
    """A connected app. Build it with :func:`connect`; close it with ``await app.close()``."""

    def __init__(
        self,
        endpoint: str,
        name: Name,
        provider: TokenProvider,
        verifier: TokenVerifier,
        *,
        node_id: str,
        reconnect: bool = True,
        token_reuse: float = DEFAULT_TOKEN_REUSE,
        tracer: ClientTracer | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self._tracer = tracer
        """Automatic spans (``connect(tracing=...)``); None: tracing is off."""
        self._provider = provider
        self._layer = SessionLayer(name, provider, verifier, token_reuse=token_reuse)
        self._node_id = node_id
        self._link_id: str | None = None
        self._reconnect = reconnect
        self._stream: Stream | None = None
        self._ack_sock: Any = None  # set when the node needs our reads ACKed at once (._link)
        self._mac: HeaderMac | None = None
        self._verified: set[bytes] = set()
        self._tags: dict[bytes, bytes] = {}
        self._down_buffer: deque[pb.Message] = deque(maxlen=MAX_BUFFERED_WHILE_DOWN)
        self._subs: dict[Name, int] = {}
        self._sub_acks: dict[int, asyncio.Future[None]] = {}
        self._sessions: dict[int, Session] = {}
        self._opening: dict[int, asyncio.Future[Session]] = {}
        self._group_tasks: dict[tuple[int, int], asyncio.Future[Name]] = {}
        self._incoming: asyncio.Queue[Session] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._sleep_until: float | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._pump_soon = False
        self._tick_sent = False  # a publish of this loop tick was written at once

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self._connected.is_set() else "down")
        return f"<App {self.name} at {self.endpoint} {state}, sessions={len(self._sessions)}>"

    @property
    def identity(self) -> Identity:
        return self._provider.identity

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- link ---------------------------------------------------------------------------------

    async def _dial(self) -> None:
        """Open the stream, negotiate the link, replay subscriptions."""
        stream = await open_stream(self.endpoint, DATAPLANE_PATH)
        try:
            neg = ClientNegotiation(
                self._link_id, node_id=self._node_id, connection_type=LinkConnectionType.EDGE
            )
            self._link_id = neg.link_id
            stream.send(neg.request().SerializeToString())
            info = None
            async with asyncio.timeout(NEGOTIATION_TIMEOUT):
                while info is None:
                    batch = await stream.recv()
                    if not batch:
                        raise LinkNegotiationError("node closed the stream during negotiation")
                    first = pb.Message.FromString(batch[0])
                    info = neg.receive(first)
                    rest = batch[1:]
        except TimeoutError:
            stream.abort()
            raise LinkNegotiationError("timed out waiting for link negotiation") from None
        except BaseException:
            stream.abort()
            raise
        self._stream = stream
        self._ack_sock = quickack_socket(stream)
        self._mac = info.mac if info.needs_mac else None
        self._verified.clear()
        self._tags.clear()
        self._connected.set()
        log.debug("link %s to %s up (node %s)", self._link_id, self.endpoint, info.peer_node_id)
        for raw in rest:
            self._on_raw(raw)
        for name, sub_id in self._subs.items():
            self._send_subscribe(name, sub_id)
        while self._down_buffer:
            self._write(self._down_buffer.popleft())

    async def _reader(self) -> None:
        backoff = BACKOFF_INITIAL
        while not self._closed:
            stream = self._stream
            if stream is not None:
                # Batches are handled in the transport's read callback (_on_batch): no task
                # wake-up and loop turn per read. recv() returns only what a transport does
                # not hand over that way (the in-memory one) and the end of the link.
                stream.set_receiver(self._on_batch)
                try:
                    while batch := await stream.recv():
                        self._on_batch(batch)
                except (ConnectionClosed, TransportError, SlimwireError) as exc:
                    log.info("link to %s lost: %s", self.endpoint, exc)
                finally:
                    stream.set_receiver(None)
                self._stream = None
                self._connected.clear()
                backoff = BACKOFF_INITIAL
            if self._closed or not self._reconnect:
                self._fail_all("link to the node lost")
                return
            await asyncio.sleep(backoff)
            try:
                await self._dial()
            except (OSError, SlimwireError) as exc:
                log.info("reconnect to %s failed: %s", self.endpoint, exc)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _on_batch(self, batch: list[bytes]) -> bool:
        """Messages read from the node, in order; never raises (it runs as a receiver)."""
        sock = self._ack_sock
        if sock is not None:
            quickack(sock)
        for raw in batch:
            self._on_raw(raw)
        try:
            self._pump()
        except Exception:  # a bug on one message must not take the link down
            log.exception("handling received messages failed")
        return True

    def _on_raw(self, raw: bytes) -> None:
        try:
            msg = pb.Message.FromString(raw)
        except DecodeError:
            log.warning("dropping undecodable message (%d bytes)", len(raw))
            return
        kind = msg.WhichOneof("message_type")
        if kind == "publish":
            if self._mac is not None and not self._header_ok(msg.publish.header):
                log.warning("dropping publish with a bad header MAC")
                return
            try:
                self._layer.receive(msg, self._loop.time())
            except Exception:  # a bug on one message must not take the link down
                log.exception("session layer failed on a message; dropped")
        elif kind == "subscription_ack":
            ack = msg.subscription_ack
            if ack.subscription_id == 0:  # never one of ours (_subscription_id() is >= 1)
                notice = parse_denial_notice(ack)
                if notice is not None:
                    self._on_denied(notice)
                return
            fut = self._sub_acks.pop(ack.subscription_id, None)
            if fut is not None and not fut.done():
                if ack.success:
                    fut.set_result(None)
                else:
                    fut.set_exception(SubscriptionError(ack.error or "subscription refused"))

    def _on_denied(self, notice: DenialNotice) -> None:
        """A node's policy refused one of our publishes: tell the session it belonged to.

        A session still being opened fails at once (its discovery or join was refused, so
        waiting for the timeout would only hide why); an open one raises the denial from its
        next ``receive()``/``publish()``, or from ``publish(wait=True)`` on that message.
        """
        sid = notice.session_id
        error = PublishDenied(notice.error, sid, notice.message_id)
        if sid is None:
            log.warning("%s; it names no session", error)
            return
        fut = self._opening.pop(sid, None)
        if fut is not None:
            log.warning("%s", error)
            if not fut.done():
                fut.set_exception(error)
            self._layer.close(sid, self._loop.time())
            return
        session = self._sessions.get(sid)
        if session is None:
            log.warning("%s; no open session to report it to", error)
            return
        session._on_denied(error)

    def _header_ok(self, header: pb.SLIMHeader) -> bool:
        """Verify the node's header MAC, remembering headers whose exact bytes verified.

        A stream's headers repeat byte for byte (same names, token, fanout, ttl, tag: the node
        re-signs each copy, but identically), and the tag is a function of those bytes, so a
        header seen to verify verifies again: one C serialization and a set lookup instead of
        the wire walk and two SHA-256 blocks (~35 % of a received message's CPU). Bounded, and
        emptied with each new link key.
        """
        raw = header.SerializeToString()
        verified = self._verified
        if raw in verified:
            return True
        assert self._mac is not None
        if not self._mac.verify(header):
            return False
        if len(verified) >= MAC_CACHE_SIZE:
            verified.clear()
        verified.add(raw)
        return True

    def _sign(self, header: pb.SLIMHeader) -> None:
        """Set the header MAC, reusing the tag of an identical header signed before.

        With identity tokens reused (``token_reuse``) a session's data headers are identical
        message after message; the tag covers only header fields, so it is looked up by the
        unsigned header's bytes.
        """
        raw = header.SerializeToString()
        tags = self._tags
        tag = tags.get(raw)
        if tag is None:
            assert self._mac is not None
            self._mac.sign(header)
            if len(tags) >= MAC_CACHE_SIZE:
                tags.clear()
            tags[raw] = header.header_mac
            return
        header.header_mac = tag

    def _write(self, msg: pb.Message) -> None:
        stream = self._stream
        if stream is None or stream.closed:
            self._down_buffer.append(msg)
            return
        if self._mac is not None:
            kind = msg.WhichOneof("message_type")
            if kind == "publish":
                header = msg.publish.header
                header.ClearField("header_mac")
                self._sign(header)
            elif kind != "link":
                self._mac.sign(getattr(msg, str(kind)).header)
        try:
            stream.send(msg.SerializeToString())
        except ConnectionClosed:
            self._down_buffer.append(msg)

    async def _drain(self) -> None:
        stream = self._stream
        if stream is not None and stream.pending_bytes >= stream.high_water:
            with contextlib.suppress(ConnectionClosed):
                await stream.drain()

    # -- subscriptions ------------------------------------------------------------------------

    def _send_subscribe(self, name: Name, sub_id: int, *, unsubscribe: bool = False) -> None:
        msg = pb.Message()
        sub = msg.unsubscribe if unsubscribe else msg.subscribe
        header = sub.header
        self.name.fill_proto(header.source)
        name.fill_proto(header.destination)
        if name == self.name:  # the reference sends a token on its own subscription only
            header.identity = self._provider.token()
        header.fanout = 1
        header.version = SLIM_VERSION
        header.ttl = DEFAULT_TTL
        sub.subscription_id = sub_id
        self._write(msg)

    async def subscribe(self, name: Name, timeout: float = SUBSCRIBE_TIMEOUT) -> None:
        """Ask the node to deliver ``name`` (with its exact id) to this app; wait for the ack."""
        sub_id = _subscription_id()
        fut: asyncio.Future[None] = self._loop.create_future()
        self._sub_acks[sub_id] = fut
        self._subs[name] = sub_id
        self._send_subscribe(name, sub_id)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            self._sub_acks.pop(sub_id, None)
            raise SlimwireTimeout(f"no subscription ack for {name} in {timeout}s") from None

    async def unsubscribe(self, name: Name) -> None:
        """Withdraw a subscription made with :meth:`subscribe` (same id, as the node needs)."""
        sub_id = self._subs.pop(name, None)
        if sub_id is None:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._sub_acks[sub_id] = fut
        self._send_subscribe(name, sub_id, unsubscribe=True)
        with contextlib.suppress(TimeoutError, SubscriptionError):
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await fut

    # -- the pump: layer outputs to the network and to sessions --------------------------------

    def _channel_subscription(self, change: SubscriptionChange) -> None:
        """Join or leave a group channel at the node (no ack wait: the layer goes on)."""
        if change.subscribe:
            if change.name in self._subs:
                return
            sub_id = _subscription_id()
            self._subs[change.name] = sub_id
            self._send_subscribe(change.name, sub_id)
        else:
            old = self._subs.pop(change.name, None)
            if old is not None:
                self._send_subscribe(change.name, old, unsubscribe=True)

    def _pump(self) -> None:
        out = self._layer.take()
        for event in out.events:  # subscriptions first: a GROUP_ACK must not overtake them
            if isinstance(event, SubscriptionChange):
                self._channel_subscription(event)
        for msg in out.messages:
            self._write(msg)
        for event in out.events:
            self._dispatch(event)
        nxt = self._layer.next_deadline()
        if nxt is not None and (self._sleep_until is None or nxt < self._sleep_until):
            self._wake.set()

    def _dispatch(self, event: SessionEvent) -> None:
        if isinstance(event, MessageReceived):
            session = self._sessions.get(event.message.session_id)
            if session is not None:
                session._push(event.message)
        elif isinstance(event, MessageDelivered):
            session = self._sessions.get(event.session_id)
            if session is not None:
                session._on_delivered(event.message_id)
        elif isinstance(event, DeliveryFailed):
            session = self._sessions.get(event.session_id)
            if session is not None:
                session._on_failed(event.message_id)
        elif isinstance(event, MessageLost):
            session = self._sessions.get(event.session_id)
            if session is not None:
                session.lost.append((event.source, event.message_id))
        elif isinstance(event, SessionEstablished):
            session = Session(self, event.session_id, event.peer, event.config, event.initiator)
            self._sessions[event.session_id] = session
            if event.initiator:
                fut = self._opening.pop(event.session_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(session)
            else:
                self._incoming.put_nowait(session)
        elif isinstance(event, SessionFailed):
            fut = self._opening.pop(event.session_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(SessionError(event.reason))
        elif isinstance(event, TaskDone):
            task = self._group_tasks.pop((event.session_id, event.task_id), None)
            if task is not None and not task.done():
                if event.error or event.participant is None:
                    task.set_exception(SessionError(event.error or "task failed"))
                else:
                    task.set_result(event.participant)
        elif isinstance(event, SessionClosed):
            closed = self._sessions.pop(event.session_id, None)
            if closed is not None:
                closed._on_closed("closed by the peer" if event.by_peer else "closed")

    async def _timer_loop(self) -> None:
        while not self._closed:
            deadline = self._layer.next_deadline()
            self._sleep_until = deadline
            self._wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._sleep_until = None
            try:
                self._layer.handle_timeout(self._loop.time())
            except Exception:  # keep the clock running whatever one timer did
                log.exception("session layer failed on a timer")
            self._pump()

    def _fail_all(self, reason: str) -> None:
        for fut in self._opening.values():
            if not fut.done():
                fut.set_exception(SessionError(reason))
        self._opening.clear()
        for session in list(self._sessions.values()):
            session._on_closed(reason)
        self._sessions.clear()

    # -- sessions -----------------------------------------------------------------------------

    def _publish(
        self,
        session: Session,
        payload: bytes,
        payload_type: str,
        metadata: Mapping[str, str] | None,
        to: Name | None = None,
    ) -> int | None:
        if to is None:
            mid = self._layer.publish(
                session.session_id,
                payload,
                payload_type=payload_type,
                metadata=metadata,
                now=self._loop.time(),
            )
        else:
            mid = self._layer.publish_to(
                session.session_id,
                to,
                payload,
                payload_type=payload_type,
                metadata=metadata,
                now=self._loop.time(),
            )
        if mid is not None and session.config.reliable:
            session._ack_future(mid)
        # The first publish of a loop tick is written at once: a request or a reply should
        # not wait a loop turn, and whatever this read queued (an ack) leaves with it, since
        # the transport schedules the flushes a read asks for after the tasks it woke. Later
        # publishes of the same tick are handed over together (one take(), one deadline
        # check, one write), but never more than PUBLISH_BATCH at a time, so a sender that
        # never yields still reaches the stream and feels its back-pressure in _drain().
        if self._layer.queued >= PUBLISH_BATCH:
            self._pump()
        elif not self._pump_soon:
            if self._tick_sent:
                self._pump_soon = True
                self._loop.call_soon(self._deferred_pump)
            else:
                self._tick_sent = True
                self._loop.call_soon(self._next_tick)
                self._pump()
                stream = self._stream
                if stream is not None:
                    stream.flush()
        return mid

    def _next_tick(self) -> None:
        self._tick_sent = False

    def _deferred_pump(self) -> None:
        self._pump_soon = False
        self._pump()
        # The publishes of this tick are all queued: write them now rather than in the flush
        # the stream scheduled for the next loop turn (one turn less per sent message).
        stream = self._stream
        if stream is not None:
            stream.flush()

    def _close_session(self, session: Session) -> None:
        self._layer.close(session.session_id, self._loop.time())
        self._pump()

    def open_session(
        self,
        peer: Name | str,
        *,
        reliable: bool = False,
        interval: float = 1.0,
        max_retries: int = 5,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = 15.0,
        mls: bool = False,
    ) -> OpeningSession:
        """Open a point-to-point session to ``peer`` (any instance if it has no id).

        ``s = await app.open_session(...)``, or ``async with app.open_session(...) as s`` to
        close it on exit. Reliable sessions acknowledge and retransmit every message
        (``interval`` seconds, ``max_retries`` times) and deliver in order. ``mls=True``
        encrypts end to end with MLS (ciphersuite 0x0002, as the reference).
        """
        return OpeningSession(
            self._open_session(
                peer,
                reliable=reliable,
                interval=interval,
                max_retries=max_retries,
                metadata=metadata,
                timeout=timeout,
                mls=mls,
            )
        )

    async def _open_session(
        self,
        peer: Name | str,
        *,
        reliable: bool = False,
        interval: float = 1.0,
        max_retries: int = 5,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = 15.0,
        mls: bool = False,
    ) -> Session:
        target = Name.parse(peer) if isinstance(peer, str) else peer
        config = SessionConfig.p2p(
            reliable=reliable,
            interval=interval,
            max_retries=max_retries,
            metadata=metadata,
            mls=mls,
        )
        fut: asyncio.Future[Session] = self._loop.create_future()
        sid = self._layer.open(target, config, self._loop.time())
        self._opening[sid] = fut
        self._pump()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            self._opening.pop(sid, None)
            self._layer.close(sid, self._loop.time())
            self._pump()
            raise SlimwireTimeout(f"opening a session to {target} timed out") from None
        except asyncio.CancelledError:
            self._opening.pop(sid, None)
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                await fut.result().close()
            else:
                self._layer.close(sid, self._loop.time())
                self._pump()
            raise

    def create_group(
        self,
        channel: Name | str,
        *,
        reliable: bool = False,
        interval: float = 1.0,
        max_retries: int = 5,
        metadata: Mapping[str, str] | None = None,
        mls: bool = False,
    ) -> Session:
        """Create a group session on ``channel`` (``org/ns/svc``) with this app as moderator.

        Add members with ``await session.invite(name)``; ``session.publish`` reaches them all.
        """
        target = Name.parse(channel) if isinstance(channel, str) else channel
        config = SessionConfig.group(
            reliable=reliable,
            interval=interval,
            max_retries=max_retries,
            metadata=metadata,
            mls=mls,
        )
        sid = self._layer.create_group(target, config, self._loop.time())
        self._pump()
        return self._sessions[sid]

    async def _group_task(self, session: Session, kind: str, name: Name, timeout: float) -> Name:
        now = self._loop.time()
        if kind == "invite":
            task_id = self._layer.invite(session.session_id, name, now)
        else:
            task_id = self._layer.remove(session.session_id, name, now)
        fut: asyncio.Future[Name] = self._loop.create_future()
        self._group_tasks[(session.session_id, task_id)] = fut
        self._pump()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise SlimwireTimeout(f"{kind} {name} timed out") from None

    async def _state_task(self, session: Session, online: bool, timeout: float) -> None:
        task_id = self._layer.update_state(session.session_id, online, self._loop.time())
        fut: asyncio.Future[Name] = self._loop.create_future()
        self._group_tasks[(session.session_id, task_id)] = fut
        self._pump()
        what = "rejoin" if online else "soft close"
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(fut)
        except TimeoutError:
            raise SlimwireTimeout(f"{what} of session {session.session_id} timed out") from None

    def _status(self, session: Session) -> dict[Name, bool]:
        inner = self._layer.session(session.session_id)
        status = getattr(inner, "status", None)
        if status is None:
            return {session.peer: session.peer.key not in getattr(inner, "_offline", set())}
        result: dict[Name, bool] = status()
        return result

    def _members(self, session: Session) -> list[Name]:
        inner = self._layer.session(session.session_id)
        if inner is None:
            return []
        roster = getattr(inner, "roster", None)
        return list(roster.values()) if roster is not None else [self.name, session.peer]

    async def accept(self, timeout: float | None = None) -> Session:
        """The next session a peer opened to us."""
        try:
            async with asyncio.timeout(timeout):
                return await self._incoming.get()
        except TimeoutError:
            raise SlimwireTimeout(f"no incoming session in {timeout}s") from None

    async def incoming(self) -> AsyncIterator[Session]:
        """``async for session in app.incoming()``: sessions peers open to us, as they come."""
        while not self._closed:
            yield await self._incoming.get()

    @property
    def sessions(self) -> Mapping[int, Session]:
        return dict(self._sessions)

    # -- lifecycle ----------------------------------------------------------------------------

    def _start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._reader(), name=f"slimwire-reader-{self.name.service}"),
            asyncio.create_task(self._timer_loop(), name=f"slimwire-timers-{self.name.service}"),
        ]

    async def close(self) -> None:
        """Close every session, then the link."""
        if self._closed:
            return
        sessions = list(self._sessions.values())
        if sessions and self.connected:
            await asyncio.gather(*(s.close(timeout=5.0) for s in sessions), return_exceptions=True)
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(SlimwireError, OSError):
                await asyncio.wait_for(stream.close(), 2.0)
            stream.abort()
        self._fail_all("app closed")

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect(
    endpoint: str,
    *,
    name: Name | str,
    secret: str | bytes | None = None,
    identity: Identity | None = None,
    provider: TokenProvider | None = None,
    verifier: TokenVerifier | None = None,
    node_id: str | None = None,
    reconnect: bool = True,
    token_reuse: float = DEFAULT_TOKEN_REUSE,
    tracing: bool | Tracer = False,
) -> App:
    """Connect an app named ``name`` to the node at ``endpoint`` (``http://host:port``).

    Identity: pass ``secret`` (the shared secret every app of the deployment uses, >= 32 bytes),
    optionally with a saved ``identity`` (otherwise a fresh one is made from the name), or your
    own ``provider`` and ``verifier``. The app's name id is derived from the identity, exactly
    as a reference app derives its own.

    ``token_reuse``: seconds one identity token is stamped on data messages before a new one
    is minted (0: a fresh token per message, for peers whose verifier keeps a replay cache).
    Signed control messages always carry a fresh token.

    ``tracing``: ``True`` (the global OpenTelemetry tracer provider) or a ``Tracer`` makes a
    PRODUCER span per publish, its W3C ``traceparent`` carried in the message's metadata, and
    a CONSUMER span per received traced message (needs the ``[otel]`` extra; see
    ``docs/tracing.md``).
    """
    base = Name.parse(name) if isinstance(name, str) else name
    if provider is None or verifier is None:
        if secret is None:
            raise ValueError("connect() needs a shared secret (or a provider and a verifier)")
        ident = identity or Identity.generate(base.without_id().short())
        provider = provider or SharedSecretProvider(ident, secret)
        verifier = verifier or SharedSecretVerifier(secret)
    local = base.with_id(provider.identity.name_id)
    app = App(
        endpoint,
        local,
        provider,
        verifier,
        node_id=node_id or f"app-{local.service}-{secrets.token_hex(4)}",
        reconnect=reconnect,
        token_reuse=token_reuse,
        tracer=_client_tracer(tracing, local),
    )
    await prefetch_keys(verifier)  # a JWKS URL: its keys before the first peer's token
    await app._dial()
    app._start()
    try:
        await app.subscribe(local)
    except BaseException:
        await app.close()
        raise
    return app


def _client_tracer(tracing: bool | Tracer, local: Name) -> ClientTracer | None:
    if tracing is False:
        return None
    from slimwire.tracing._client import ClientTracer  # imports OpenTelemetry: only when asked

    return ClientTracer(str(local), None if tracing is True else tracing)
