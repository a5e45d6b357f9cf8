"""The point-to-point session state machine (both roles), sans-IO.

Initiator: DISCOVERY_REQUEST to the peer's name (any instance) → DISCOVERY_REPLY names the
instance → JOIN_REQUEST (timer settings, metadata) → JOIN_REPLY → GROUP_WELCOME (roster) →
GROUP_ACK: established. Responder: created by the layer on JOIN_REQUEST, answers JOIN_REPLY,
is established when the GROUP_WELCOME arrives (answered with GROUP_ACK). Control requests are
resent unchanged every second, ten times, until their reply (same message id) arrives.

Data: MSG numbered from 1. When reliable, each MSG is acked (MSG_ACK, same id) and kept by the
sender until acked; missing acks are retransmitted every ``interval`` up to ``max_retries``
times, then reported as :class:`DeliveryFailed`. The receiver delivers in order; a gap sends one
RTX_REQUEST per missing id (also retried), answered by RTX_REPLY with the message, or with
``error=true`` when it is gone, which becomes :class:`MessageLost`.

Close: the initiator broadcasts GROUP_CLOSE (to the name it opened, fanout 256) and waits for
GROUP_ACK; the responder sends LEAVE_REQUEST with ``LEAVING_SESSION`` and waits for LEAVE_REPLY.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from slimwire._constants import MULTICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import SessionClosed
from slimwire.names import Name
from slimwire.session._config import (
    CONTROL_INTERVAL,
    CONTROL_MAX_RETRIES,
    HEARTBEAT_INTERVAL,
    MAX_MISSED_HEARTBEATS,
    SessionConfig,
)
from slimwire.session._events import (
    DeliveryFailed,
    MessageDelivered,
    MessageLost,
    MessageReceived,
    ParticipantStatus,
    ReceivedMessage,
    SessionEstablished,
    SessionEvent,
    SessionFailed,
)
from slimwire.session._events import (
    SessionClosed as SessionClosedEvent,
)
from slimwire.session._ids import id_distance, next_data_id, random_control_id
from slimwire.session._reliability import Lost, ProducerBuffer, ReorderBuffer
from slimwire.session._timers import Timers
from slimwire.session._wire import (
    LEAVING_SESSION,
    PUBLISH_TO,
    TRUE,
    build_publish,
    command,
    name_from_proto,
    user_metadata,
)

__all__ = ["P2PSession", "SessionState"]

log = logging.getLogger(__name__)

P2P = pb.SESSION_TYPE_POINT_TO_POINT
NO_MLS_EPOCH = (1 << 64) - 1
_T = pb  # short alias for message type constants below
MSG = _T.SESSION_MESSAGE_TYPE_MSG
MSG_ACK = _T.SESSION_MESSAGE_TYPE_MSG_ACK
RTX_REQUEST = _T.SESSION_MESSAGE_TYPE_RTX_REQUEST
RTX_REPLY = _T.SESSION_MESSAGE_TYPE_RTX_REPLY
DISCOVERY_REQUEST = _T.SESSION_MESSAGE_TYPE_DISCOVERY_REQUEST
DISCOVERY_REPLY = _T.SESSION_MESSAGE_TYPE_DISCOVERY_REPLY
JOIN_REQUEST = _T.SESSION_MESSAGE_TYPE_JOIN_REQUEST
JOIN_REPLY = _T.SESSION_MESSAGE_TYPE_JOIN_REPLY
LEAVE_REQUEST = _T.SESSION_MESSAGE_TYPE_LEAVE_REQUEST
LEAVE_REPLY = _T.SESSION_MESSAGE_TYPE_LEAVE_REPLY
GROUP_WELCOME = _T.SESSION_MESSAGE_TYPE_GROUP_WELCOME
GROUP_CLOSE = _T.SESSION_MESSAGE_TYPE_GROUP_CLOSE
GROUP_ACK = _T.SESSION_MESSAGE_TYPE_GROUP_ACK
HEARTBEAT = _T.SESSION_MESSAGE_TYPE_HEARTBEAT
SETUP_TIMEOUT = CONTROL_INTERVAL * (CONTROL_MAX_RETRIES + 2)
"""How long a responder waits for the welcome before it forgets a half-open session."""


class Host(Protocol):
    """What a session needs from its layer."""

    @property
    def local(self) -> Name: ...

    @property
    def timers(self) -> Timers: ...

    def send(self, msg: pb.Message) -> None:
        """Stamp identity (and signature for commands) and queue for the network."""

    def emit(self, event: SessionEvent) -> None: ...

    def forget(self, session_id: int) -> None:
        """The session is over; drop it from the session table."""


class SessionState(enum.Enum):
    DISCOVERING = "discovering"
    JOINING = "joining"
    WELCOMING = "welcoming"
    AWAITING_WELCOME = "awaiting-welcome"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class _Request:
    """A control request waiting for its reply (matched by message id and source)."""

    message: pb.Message
    expected: Name | None  # None: any responder (discovery goes to "any instance")
    retries_left: int


def _participant(name: Name) -> pb.Participant:
    part = pb.Participant()
    name.fill_proto(part.name)
    part.settings.sends_data = True
    part.settings.receives_data = True
    return part


class P2PSession:
    """One point-to-point session. Driven by its :class:`SessionLayer`."""

    def __init__(
        self,
        host: Host,
        session_id: int,
        config: SessionConfig,
        *,
        initiator: bool,
        peer: Name,
    ) -> None:
        self.host = host
        self.session_id = session_id
        self.config = config
        self.initiator = initiator
        self.target = peer  # the name the session was opened to (may have no id)
        self.peer: Name = peer  # the peer instance, once known
        self.state = SessionState.DISCOVERING if initiator else SessionState.AWAITING_WELCOME
        self._requests: dict[int, _Request] = {}
        self._next_id = 0
        self._sent: ProducerBuffer[pb.Message] = ProducerBuffer()
        self._unacked: dict[int, int] = {}  # message id -> retries left
        # both ends of a p2p session number from 1, so a lost first message is a gap too
        self._recv: ReorderBuffer[pb.Message] = ReorderBuffer(last_delivered=0)
        self._rtx: dict[int, int] = {}  # requested id -> retries left
        self._sent_since_tick = False
        self._missed = 0
        self._peer_online = True
        self._pending_data: list[tuple[bytes, str, dict[str, str]]] = []

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return (
            f"P2PSession(id={self.session_id}, {role}, peer={self.peer}, "
            f"state={self.state.value}, reliable={self.config.reliable})"
        )

    # -- timers -------------------------------------------------------------------------------

    def _arm(self, key: tuple[object, ...], at: float) -> None:
        self.host.timers.arm((self.session_id, *key), at)

    def _cancel(self, key: tuple[object, ...]) -> None:
        self.host.timers.cancel((self.session_id, *key))

    # -- sending helpers ----------------------------------------------------------------------

    def _build(
        self,
        dst: Name,
        mtype: int,
        mid: int,
        *,
        cmd: pb.CommandPayload | None = None,
        fanout: int = 1,
        metadata: Mapping[str, str] | None = None,
        payload: bytes | None = None,
        payload_type: str = "",
        error: bool | None = None,
    ) -> pb.Message:
        return build_publish(
            self.host.local,
            dst,
            P2P,
            mtype,
            session_id=self.session_id,
            message_id=mid,
            fanout=fanout,
            cmd=cmd,
            metadata=metadata,
            payload=payload,
            payload_type=payload_type,
            error=error,
        )

    def _send(self, msg: pb.Message) -> None:
        self._sent_since_tick = True
        self.host.send(msg)

    def _request(self, msg: pb.Message, expected: Name | None, now: float) -> None:
        mid = msg.publish.session.message_id
        self._requests[mid] = _Request(msg, expected, CONTROL_MAX_RETRIES)
        self._arm(("ctrl", mid), now + CONTROL_INTERVAL)
        self._send(_copy(msg))

    def _reply(self, request: pb.Message, mtype: int, cmd: pb.CommandPayload) -> None:
        src = name_from_proto(request.publish.header.source)
        self._send(self._build(src, mtype, request.publish.session.message_id, cmd=cmd))

    def _answered(self, msg: pb.Message, source: Name) -> bool:
        """True (and the request retired) if ``msg`` answers one of our pending requests."""
        mid = msg.publish.session.message_id
        req = self._requests.get(mid)
        if req is None:
            return False
        if req.expected is not None and req.expected.key != source.key:
            return False
        del self._requests[mid]
        self._cancel(("ctrl", mid))
        return True

    # -- initiator ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Initiator: send the discovery request."""
        msg = self._build(
            self.target,
            DISCOVERY_REQUEST,
            random_control_id(),
            cmd=command(discovery_request=pb.DiscoveryRequestPayload()),
        )
        self._request(msg, None, now)

    def _on_discovery_reply(self, msg: pb.Message, source: Name, now: float) -> None:
        if self.state is not SessionState.DISCOVERING or not self._answered(msg, source):
            return
        self.peer = source
        self.state = SessionState.JOINING
        join = pb.JoinRequestPayload()
        timers = self.config.timer_settings()
        if timers is not None:
            join.timer_settings.CopyFrom(timers)
        req = self._build(
            source,
            JOIN_REQUEST,
            random_control_id(),
            cmd=command(join_request=join),
            metadata=self.config.metadata,
        )
        self._request(req, source, now)

    def _on_join_reply(self, msg: pb.Message, source: Name, now: float) -> None:
        if self.state is not SessionState.JOINING or not self._answered(msg, source):
            return
        self.state = SessionState.WELCOMING
        welcome = pb.GroupWelcomePayload()
        welcome.participants.append(_participant(self.peer))
        welcome.participants.append(_participant(self.host.local))
        req = self._build(
            self.peer, GROUP_WELCOME, random_control_id(), cmd=command(group_welcome=welcome)
        )
        self._request(req, self.peer, now)

    def _on_group_ack(self, msg: pb.Message, source: Name, now: float) -> None:
        if not self._answered(msg, source):
            return
        if self.state is SessionState.WELCOMING:
            self._establish(now)
        elif self.state is SessionState.CLOSING:
            self._finish(by_peer=False)

    def _establish(self, now: float) -> None:
        self.state = SessionState.ESTABLISHED
        self._cancel(("setup",))
        self._arm(("hb",), now + HEARTBEAT_INTERVAL)
        self.host.emit(SessionEstablished(self.session_id, self.peer, self.initiator, self.config))
        pending, self._pending_data = self._pending_data, []
        for payload, payload_type, metadata in pending:
            self.publish(payload, payload_type, metadata, now)

    # -- responder ----------------------------------------------------------------------------

    def accept(self, join: pb.Message, now: float) -> None:
        """Responder: answer the JoinRequest that created this session."""
        self._reply(
            join,
            JOIN_REPLY,
            command(join_reply=pb.JoinReplyPayload(participant=_participant(self.host.local))),
        )
        self._arm(("setup",), now + SETUP_TIMEOUT)

    def _on_welcome(self, msg: pb.Message, now: float) -> None:
        self._reply(msg, GROUP_ACK, command(group_ack=pb.GroupAckPayload()))
        if self.state is SessionState.AWAITING_WELCOME:
            self._establish(now)

    # -- data ---------------------------------------------------------------------------------

    def publish(
        self,
        payload: bytes,
        payload_type: str = "msg",
        metadata: Mapping[str, str] | None = None,
        now: float = 0.0,
    ) -> int | None:
        """Send application data; returns its message id (None while still being set up)."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            raise SessionClosed(f"session {self.session_id} is closed")
        if self.state is not SessionState.ESTABLISHED:
            self._pending_data.append((payload, payload_type, dict(metadata or {})))
            return None
        self._next_id = next_data_id(self._next_id)
        mid = self._next_id
        msg = self._build(
            self.peer, MSG, mid, payload=payload, payload_type=payload_type, metadata=metadata
        )
        if self.config.reliable:
            self._sent.push(mid, msg)
            self._unacked[mid] = self.config.max_retries or 0
            self._arm(("ack", mid), now + (self.config.interval or 1.0))
            self._send(_copy(msg))
        else:
            self._send(msg)
        return mid

    @property
    def unacked(self) -> int:
        """Reliable messages still waiting for their ack."""
        return len(self._unacked)

    def _on_msg(self, msg: pb.Message, source: Name, now: float) -> None:
        if self.state is not SessionState.ESTABLISHED:
            return
        mid = msg.publish.session.message_id
        publish_to = PUBLISH_TO in msg.metadata
        if not self.config.reliable:
            self._deliver(msg, source)
            return
        self._send(
            self._build(source, MSG_ACK, mid, metadata={PUBLISH_TO: TRUE} if publish_to else None)
        )
        if publish_to:
            self._deliver(msg, source)
            return
        delivered, missing = self._recv.on_message(mid, msg)
        self._deliver_all(delivered, source)
        for rid in missing:
            self._rtx[rid] = self.config.max_retries or 0
            self._send_rtx_request(source, rid, now)

    def _send_rtx_request(self, source: Name, mid: int, now: float) -> None:
        self._send(self._build(source, RTX_REQUEST, mid))
        self._arm(("rtx", mid), now + (self.config.interval or 1.0))

    def _on_rtx_reply(self, msg: pb.Message, source: Name, now: float) -> None:
        if self.state is not SessionState.ESTABLISHED or not self.config.reliable:
            return
        mid = msg.publish.session.message_id
        self._rtx.pop(mid, None)
        self._cancel(("rtx", mid))
        if msg.publish.header.HasField("error") and msg.publish.header.error:
            self._deliver_all(self._recv.on_lost(mid), source)
            return
        delivered, missing = self._recv.on_message(mid, msg)
        self._deliver_all(delivered, source)
        for rid in missing:
            self._rtx[rid] = self.config.max_retries or 0
            self._send_rtx_request(source, rid, now)

    def _deliver_all(self, items: list[pb.Message | Lost], source: Name) -> None:
        for item in items:
            if isinstance(item, Lost):
                for rid in list(self._rtx):
                    if id_distance(item.message_id, rid) < item.count:
                        del self._rtx[rid]
                        self._cancel(("rtx", rid))
                self.host.emit(MessageLost(self.session_id, source, item.message_id, item.count))
            else:
                self._deliver(item, source)

    def _deliver(self, msg: pb.Message, source: Name) -> None:
        pub = msg.publish
        app = pub.msg.app_payload
        self.host.emit(
            MessageReceived(
                ReceivedMessage(
                    self.session_id,
                    pub.session.message_id,
                    source,
                    name_from_proto(pub.header.destination),
                    app.blob,
                    app.payload_type,
                    user_metadata(msg.metadata),
                )
            )
        )

    def _on_ack(self, mid: int) -> None:
        if self._unacked.pop(mid, None) is None:
            return
        self._cancel(("ack", mid))
        self.host.emit(MessageDelivered(self.session_id, mid))

    def _on_rtx_request(self, msg: pb.Message, source: Name) -> None:
        mid = msg.publish.session.message_id
        self._on_ack(mid)  # the reference counts an RTX request as that receiver's ack
        stored = self._sent.get(mid)
        if stored is not None:
            reply = _copy(stored)
            reply.publish.header.ClearField("destination")
            reply.publish.header.destination.MergeFrom(msg.publish.header.source)
            reply.publish.session.session_message_type = RTX_REPLY
        else:
            reply = self._build(source, RTX_REPLY, mid, error=True)
        self._send(reply)

    # -- close --------------------------------------------------------------------------------

    def close(self, now: float) -> None:
        """Start a graceful close (idempotent)."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        if self.state is not SessionState.ESTABLISHED:
            self._fail("closed before it was established", notify=self.initiator)
            return
        self.state = SessionState.CLOSING
        if self.initiator:
            close = pb.GroupClosePayload()
            self.peer.fill_proto(close.participants.add())
            self.host.local.fill_proto(close.participants.add())
            msg = self._build(
                self.target,
                GROUP_CLOSE,
                random_control_id(),
                cmd=command(group_close=close),
                fanout=MULTICAST_FANOUT,
            )
        else:
            msg = self._build(
                self.peer,
                LEAVE_REQUEST,
                random_control_id(),
                cmd=command(leave_request=pb.LeaveRequestPayload()),
                metadata={LEAVING_SESSION: TRUE},
            )
        self._request(msg, self.peer, now)

    def _on_peer_close(self, msg: pb.Message, mtype: int) -> None:
        if mtype == GROUP_CLOSE:
            self._reply(msg, GROUP_ACK, command(group_ack=pb.GroupAckPayload()))
        else:
            self._reply(msg, LEAVE_REPLY, command(leave_reply=pb.LeaveReplyPayload()))
        if self.state is not SessionState.CLOSED:
            self._finish(by_peer=True)

    def _finish(self, *, by_peer: bool, reason: str = "") -> None:
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self._clear_timers()
        self.host.emit(SessionClosedEvent(self.session_id, by_peer, reason))
        self.host.forget(self.session_id)

    def _fail(self, reason: str, *, notify: bool = True) -> None:
        self.state = SessionState.CLOSED
        self._clear_timers()
        if notify:
            self.host.emit(SessionFailed(self.session_id, reason))
        self.host.forget(self.session_id)

    def _clear_timers(self) -> None:
        for mid in self._requests:
            self._cancel(("ctrl", mid))
        for mid in self._unacked:
            self._cancel(("ack", mid))
        for mid in self._rtx:
            self._cancel(("rtx", mid))
        self._cancel(("hb",))
        self._cancel(("setup",))
        self._requests.clear()
        self._rtx.clear()

    # -- dispatch -----------------------------------------------------------------------------

    def on_message(self, msg: pb.Message, now: float) -> None:
        if self.state is SessionState.CLOSED:
            return
        pub = msg.publish
        mtype = pub.session.session_message_type
        source = name_from_proto(pub.header.source)
        if self.state is SessionState.ESTABLISHED and source.key == self.peer.key:
            self._missed = 0
            if not self._peer_online:
                self._peer_online = True
                self.host.emit(ParticipantStatus(self.session_id, self.peer, True))
        if mtype == MSG:
            self._on_msg(msg, source, now)
        elif mtype == MSG_ACK:
            self._on_ack(pub.session.message_id)
        elif mtype == RTX_REQUEST:
            self._on_rtx_request(msg, source)
        elif mtype == RTX_REPLY:
            self._on_rtx_reply(msg, source, now)
        elif mtype == DISCOVERY_REPLY:
            self._on_discovery_reply(msg, source, now)
        elif mtype == JOIN_REPLY:
            self._on_join_reply(msg, source, now)
        elif mtype == GROUP_ACK:
            self._on_group_ack(msg, source, now)
        elif mtype == LEAVE_REPLY:
            if self._answered(msg, source) and self.state is SessionState.CLOSING:
                self._finish(by_peer=False)
        elif mtype == GROUP_WELCOME and not self.initiator:
            self._on_welcome(msg, now)
        elif mtype == JOIN_REQUEST and not self.initiator:
            if self.state is SessionState.AWAITING_WELCOME:
                self.accept(msg, now)  # our JoinReply was lost: answer again
        elif mtype in (GROUP_CLOSE, LEAVE_REQUEST):
            self._on_peer_close(msg, mtype)
        elif mtype == HEARTBEAT:
            pass  # liveness was noted above
        else:
            log.debug("session %d: ignoring %s", self.session_id, mtype)

    def on_timer(self, key: tuple[object, ...], now: float) -> None:
        kind = key[0]
        if kind == "ctrl":
            self._on_ctrl_timeout(int(key[1]), now)  # type: ignore[call-overload]
        elif kind == "ack":
            self._on_ack_timeout(int(key[1]), now)  # type: ignore[call-overload]
        elif kind == "rtx":
            self._on_rtx_timeout(int(key[1]), now)  # type: ignore[call-overload]
        elif kind == "hb":
            self._on_heartbeat_tick(now)
        elif kind == "setup" and self.state is SessionState.AWAITING_WELCOME:
            self._fail("no welcome from the initiator", notify=False)

    def _on_ctrl_timeout(self, mid: int, now: float) -> None:
        req = self._requests.get(mid)
        if req is None:
            return
        if req.retries_left > 0:
            req.retries_left -= 1
            self._arm(("ctrl", mid), now + CONTROL_INTERVAL)
            self._send(_copy(req.message))
            return
        del self._requests[mid]
        if self.state is SessionState.CLOSING:
            self._finish(by_peer=False, reason="peer did not acknowledge the close")
        elif self.state is not SessionState.ESTABLISHED:
            what = "discovery" if self.state is SessionState.DISCOVERING else "join"
            self._fail(f"no answer from {self.target} during {what}")

    def _on_ack_timeout(self, mid: int, now: float) -> None:
        left = self._unacked.get(mid)
        if left is None:
            return
        stored = self._sent.get(mid)
        if left > 0 and stored is not None:
            self._unacked[mid] = left - 1
            self._arm(("ack", mid), now + (self.config.interval or 1.0))
            self._send(_copy(stored))
            return
        del self._unacked[mid]
        self.host.emit(DeliveryFailed(self.session_id, mid, (self.peer,)))

    def _on_rtx_timeout(self, mid: int, now: float) -> None:
        left = self._rtx.get(mid)
        if left is None:
            return
        if left > 0:
            self._rtx[mid] = left - 1
            self._send_rtx_request(self.peer, mid, now)
            return
        del self._rtx[mid]
        self._deliver_all(self._recv.on_lost(mid), self.peer)

    def _on_heartbeat_tick(self, now: float) -> None:
        if self.state is not SessionState.ESTABLISHED:
            return
        self._missed += 1
        if self._missed >= MAX_MISSED_HEARTBEATS and self._peer_online:
            self._peer_online = False
            self.host.emit(ParticipantStatus(self.session_id, self.peer, False))
        if not self._sent_since_tick or not self._peer_online:
            hb = self._build(
                self.peer,
                HEARTBEAT,
                random_control_id(),
                cmd=command(heartbeat=pb.HeartbeatPayload(epoch=NO_MLS_EPOCH)),
            )
            self.host.send(hb)
        self._sent_since_tick = False
        self._arm(("hb",), now + HEARTBEAT_INTERVAL)


def _copy(msg: pb.Message) -> pb.Message:
    out = pb.Message()
    out.CopyFrom(msg)
    return out
