"""What every session shares: control requests with retries, replies, timers, heartbeats.

A control request is resent unchanged every second, ten times, until its reply arrives: a
message with the same id from the expected member (or, for discovery, from anyone). A
session's timers live in the layer's :class:`Timers` under ``(session_id, kind, ...)``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import header_aad
from slimwire.errors import MlsError
from slimwire.names import Name
from slimwire.session._config import (
    CONTROL_INTERVAL,
    CONTROL_MAX_RETRIES,
    HEARTBEAT_INTERVAL,
    MAX_MISSED_HEARTBEATS,
    SessionConfig,
)
from slimwire.session._crypto import GroupCrypto
from slimwire.session._data import DataPath
from slimwire.session._events import (
    ParticipantStatus,
    SessionClosed,
    SessionEvent,
    SessionFailed,
)
from slimwire.session._ids import random_control_id
from slimwire.session._replay import ControlReplayGuard
from slimwire.session._timers import Timers
from slimwire.session._wire import (
    ACK_RANGES,
    LEAVING_SESSION,
    TRUE,
    build_publish,
    command,
    name_from_proto,
)

__all__ = ["Host", "SessionBase", "SessionState"]

log = logging.getLogger(__name__)

NO_MLS_EPOCH = (1 << 64) - 1
T = pb
MSG = T.SESSION_MESSAGE_TYPE_MSG
MSG_ACK = T.SESSION_MESSAGE_TYPE_MSG_ACK
RTX_REQUEST = T.SESSION_MESSAGE_TYPE_RTX_REQUEST
RTX_REPLY = T.SESSION_MESSAGE_TYPE_RTX_REPLY
DISCOVERY_REQUEST = T.SESSION_MESSAGE_TYPE_DISCOVERY_REQUEST
DISCOVERY_REPLY = T.SESSION_MESSAGE_TYPE_DISCOVERY_REPLY
JOIN_REQUEST = T.SESSION_MESSAGE_TYPE_JOIN_REQUEST
JOIN_REPLY = T.SESSION_MESSAGE_TYPE_JOIN_REPLY
LEAVE_REQUEST = T.SESSION_MESSAGE_TYPE_LEAVE_REQUEST
LEAVE_REPLY = T.SESSION_MESSAGE_TYPE_LEAVE_REPLY
GROUP_UPDATE = T.SESSION_MESSAGE_TYPE_GROUP_UPDATE
GROUP_WELCOME = T.SESSION_MESSAGE_TYPE_GROUP_WELCOME
GROUP_CLOSE = T.SESSION_MESSAGE_TYPE_GROUP_CLOSE
GROUP_ACK = T.SESSION_MESSAGE_TYPE_GROUP_ACK
GROUP_NACK = T.SESSION_MESSAGE_TYPE_GROUP_NACK
HEARTBEAT = T.SESSION_MESSAGE_TYPE_HEARTBEAT
SETUP_TIMEOUT = CONTROL_INTERVAL * (CONTROL_MAX_RETRIES + 2)
"""How long a joiner waits for the welcome before it forgets a half-open session."""


class Host(Protocol):
    """What a session needs from its layer."""

    @property
    def local(self) -> Name: ...

    @property
    def timers(self) -> Timers: ...

    def send(self, msg: pb.Message, crypto: GroupCrypto | None = None) -> None:
        """Stamp identity, seal data with ``crypto`` (MLS), sign commands, queue for sending."""

    def emit(self, event: SessionEvent) -> None: ...

    def forget(self, session_id: int) -> None:
        """The session is over; drop it from the session table."""

    @property
    def ack_ranges(self) -> bool:
        """Whether our sessions offer and send ranged acks (see :mod:`._data`)."""

    def hold_acks(self, data: DataPath) -> None:
        """``data`` holds acks to send: call its ``flush_acks()`` before outputs are taken."""


class SessionState(enum.Enum):
    DISCOVERING = "discovering"
    JOINING = "joining"
    WELCOMING = "welcoming"
    AWAITING_WELCOME = "awaiting-welcome"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class Request:
    """A control request waiting for replies (matched by message id and source)."""

    message: pb.Message
    expected: dict[tuple[int, int, int, int], Name] | None  # None: any one responder
    retries_left: int
    purpose: str
    data: dict[str, object] = field(default_factory=dict)


def participant(name: Name) -> pb.Participant:
    part = pb.Participant()
    name.fill_proto(part.name)
    part.settings.sends_data = True
    part.settings.receives_data = True
    return part


def copy_message(msg: pb.Message) -> pb.Message:
    out = pb.Message()
    out.CopyFrom(msg)
    return out


class SessionBase:
    """Machinery shared by point-to-point and group sessions."""

    session_type: int = pb.SESSION_TYPE_POINT_TO_POINT
    start_known = True

    def __init__(self, host: Host, session_id: int, config: SessionConfig) -> None:
        self.host = host
        self.session_id = session_id
        self.config = config
        self.state = SessionState.DISCOVERING
        self.requests: dict[int, Request] = {}
        self.data = DataPath(self, start_known=self.start_known)
        self.crypto: GroupCrypto | None = None
        """The session's MLS state when ``config.mls`` (set by the layer)."""
        self._sent_since_tick = False
        self._missed: dict[tuple[int, int, int, int], int] = {}
        self._offline: set[tuple[int, int, int, int]] = set()
        self.replay = ControlReplayGuard()
        """Seen signed control ids per sender (checked by the layer when ``config.mls``)."""

    # -- timers -------------------------------------------------------------------------------

    def _arm(self, key: tuple[object, ...], at: float) -> None:
        self.host.timers.arm((self.session_id, *key), at)

    def _cancel(self, key: tuple[object, ...]) -> None:
        self.host.timers.cancel((self.session_id, *key))

    # -- sending ------------------------------------------------------------------------------

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
            self.session_type,
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
        if self.data._run_last is not None:  # held acks go first, where they were due
            self.data.flush_acks()
        self._sent_since_tick = True
        self.host.send(msg, self.crypto)

    def _request(
        self,
        msg: pb.Message,
        expected: Iterable[Name] | None,
        now: float,
        purpose: str,
        **data: object,
    ) -> Request:
        mid = msg.publish.session.message_id
        exp = None if expected is None else {n.key: n for n in expected}
        req = Request(msg, exp, CONTROL_MAX_RETRIES, purpose, dict(data))
        self.requests[mid] = req
        self._arm(("ctrl", mid), now + CONTROL_INTERVAL)
        self._send(copy_message(msg))
        return req

    def _new_request(
        self,
        dst: Name,
        mtype: int,
        cmd: pb.CommandPayload,
        *,
        expected: Iterable[Name] | None,
        now: float,
        purpose: str,
        fanout: int = 1,
        metadata: Mapping[str, str] | None = None,
        **data: object,
    ) -> Request:
        msg = self._build(
            dst, mtype, random_control_id(), cmd=cmd, fanout=fanout, metadata=metadata
        )
        return self._request(msg, expected, now, purpose, **data)

    def _send_join_request(
        self, target: Name, now: float, channel: Name | None = None, control: Name | None = None
    ) -> None:
        """JOIN_REQUEST to ``target``: our timers, the group's channel names (groups only) and
        the MLS settings (present iff the session runs MLS), with the session metadata."""
        join = pb.JoinRequestPayload()
        timers = self.config.timer_settings()
        if timers is not None:
            join.timer_settings.CopyFrom(timers)
        if channel is not None and control is not None:
            channel.fill_proto(join.channel)
            control.fill_proto(join.control)
        if self.crypto is not None:
            join.mls_settings.header_integrity_validation_percent = self.config.integrity_percent
        self._new_request(
            target,
            JOIN_REQUEST,
            command(join_request=join),
            expected=[target],
            now=now,
            purpose="join",
            metadata=self.config.metadata,
        )

    def _send_leaving(self, to: Name, now: float) -> None:
        """LEAVE_REQUEST marked LEAVING_SESSION: we leave on our own and ``to`` must answer."""
        self._new_request(
            to,
            LEAVE_REQUEST,
            command(leave_request=pb.LeaveRequestPayload()),
            expected=[to],
            now=now,
            purpose="close",
            metadata={LEAVING_SESSION: TRUE},
        )

    def _reply(
        self,
        request: pb.Message,
        mtype: int,
        cmd: pb.CommandPayload,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        src = name_from_proto(request.publish.header.source)
        self._send(
            self._build(src, mtype, request.publish.session.message_id, cmd=cmd, metadata=metadata)
        )

    def _ack_ranges_offer(self) -> dict[str, str] | None:
        """The metadata announcing that we take ranged acks (reliable sessions of a layer that
        offers them; see :mod:`._data`)."""
        return {ACK_RANGES: TRUE} if self.config.reliable and self.host.ack_ranges else None

    def _learn_ack_ranges(self, msg: pb.Message) -> None:
        """The peer's JOIN_REPLY or GROUP_WELCOME says whether it takes ranged acks."""
        self.data.batch_acks = (
            self.config.reliable and self.host.ack_ranges and ACK_RANGES in msg.metadata
        )

    def _not_taken(self, msg: pb.Message) -> None:
        """``msg`` passed the replay check but was not acted on (and not acked): let its
        retransmission through."""
        source = name_from_proto(msg.publish.header.source)
        self.replay.forget(source.key, msg.publish.session.message_id)

    def _ack(self, request: pb.Message) -> None:
        self._reply(request, GROUP_ACK, command(group_ack=pb.GroupAckPayload()))

    def _answer(self, msg: pb.Message, source: Name) -> Request | None:
        """Record a reply; return its request once every expected reply is in."""
        mid = msg.publish.session.message_id
        req = self.requests.get(mid)
        if req is None:
            return None
        if req.expected is not None:
            if req.expected.pop(source.key, None) is None:
                return None
            if req.expected:
                return None
        del self.requests[mid]
        self._cancel(("ctrl", mid))
        return req

    def _drop_from_requests(self, member: Name, now: float) -> None:
        """A member is gone: stop waiting for its replies."""
        for mid, req in list(self.requests.items()):
            if req.expected is None or req.expected.pop(member.key, None) is None:
                continue
            if not req.expected:
                del self.requests[mid]
                self._cancel(("ctrl", mid))
                self._request_done(req, now)

    # -- hooks for subclasses -----------------------------------------------------------------

    def _request_done(self, req: Request, now: float) -> None:
        """Every reply to ``req`` arrived."""

    def _request_failed(self, req: Request, now: float) -> None:
        """``req`` ran out of retries."""

    def heartbeat_target(self) -> tuple[Name, int] | None:
        return None

    def members(self) -> list[Name]:
        """Everyone we expect data acks and heartbeats from."""
        return []

    def heartbeat_members(self) -> list[Name]:
        """The members whose silence marks them offline."""
        return self.members()

    # -- timers -------------------------------------------------------------------------------

    def on_timer(self, key: tuple[object, ...], now: float) -> None:
        kind = key[0]
        if kind == "ctrl":
            self._on_ctrl_timeout(key[1], now)
        elif kind in ("ack", "rtx"):
            self.data.on_timer(str(kind), key[1], now)
        elif kind == "hb":
            self._on_heartbeat_tick(now)
        elif kind == "setup" and self.state is SessionState.AWAITING_WELCOME:
            self.fail("no welcome from the inviter", notify=False)

    def _on_ctrl_timeout(self, mid: object, now: float) -> None:
        assert isinstance(mid, int)
        req = self.requests.get(mid)
        if req is None:
            return
        if req.retries_left > 0:
            req.retries_left -= 1
            self._arm(("ctrl", mid), now + CONTROL_INTERVAL)
            self._send(copy_message(req.message))
            return
        del self.requests[mid]
        self._request_failed(req, now)

    def note_alive(self, source: Name) -> None:
        key = source.key
        if key in self._missed:
            self._missed[key] = 0
        if key in self._offline:
            self._offline.discard(key)
            self.host.emit(ParticipantStatus(self.session_id, source, True))

    def start_heartbeats(self, now: float) -> None:
        for member in self.members():
            self._missed.setdefault(member.key, 0)
        self._arm(("hb",), now + HEARTBEAT_INTERVAL)

    def _on_heartbeat_tick(self, now: float) -> None:
        if self.state is not SessionState.ESTABLISHED:
            return
        members = {m.key: m for m in self.heartbeat_members()}
        for key in list(self._missed):
            if key not in members:
                del self._missed[key]
        for key, member in members.items():
            missed = self._missed.get(key, 0) + 1
            self._missed[key] = missed
            if missed >= MAX_MISSED_HEARTBEATS and key not in self._offline:
                self._offline.add(key)
                self.host.emit(ParticipantStatus(self.session_id, member, False))
        target = self.heartbeat_target()
        all_offline = bool(members) and len(self._offline) >= len(members)
        if target is not None and (not self._sent_since_tick or all_offline):
            dst, fanout = target
            hb = self._build(
                dst,
                HEARTBEAT,
                random_control_id(),
                cmd=command(
                    heartbeat=pb.HeartbeatPayload(
                        epoch=NO_MLS_EPOCH if self.crypto is None else self.crypto.epoch
                    )
                ),
                fanout=fanout,
            )
            self.host.send(hb, self.crypto)
        self._sent_since_tick = False
        self._arm(("hb",), now + HEARTBEAT_INTERVAL)

    # -- data dispatch ------------------------------------------------------------------------

    def on_data(self, msg: pb.Message, mtype: int, source: Name, now: float) -> bool:
        """Handle MSG/MSG_ACK/RTX_*; False if ``mtype`` is not a data type."""
        if self.crypto is not None and mtype in (MSG, RTX_REPLY) and not self._open(msg):
            return True
        if mtype == MSG:
            if self.state is SessionState.ESTABLISHED or self.state is SessionState.CLOSING:
                self.data.on_msg(msg, source, now)
        elif mtype == MSG_ACK:
            self.data.on_ack_message(msg.publish.session.message_id, source, msg.metadata)
        elif mtype == RTX_REQUEST:
            self.data.on_rtx_request(msg, source)
        elif mtype == RTX_REPLY:
            if self.state is SessionState.ESTABLISHED:
                self.data.on_rtx_reply(msg, source, now)
        else:
            return False
        return True

    def _open(self, msg: pb.Message) -> bool:
        """Decrypt an MLS-sealed blob in place; False (drop it) if it does not authenticate."""
        pub = msg.publish
        if pub.header.HasField("error") and pub.header.error:
            return True
        if pub.msg.WhichOneof("content_type") != "app_payload":
            return False
        assert self.crypto is not None
        app = pub.msg.app_payload
        try:
            app.blob = self.crypto.decrypt(app.blob, header_aad(pub))
        except (MlsError, ValueError) as exc:
            log.warning("session %d: dropping a message that fails MLS: %s", self.session_id, exc)
            return False
        return True

    # -- teardown -----------------------------------------------------------------------------

    def finish(self, *, by_peer: bool, reason: str = "") -> None:
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self.clear_timers()
        self.host.emit(SessionClosed(self.session_id, by_peer, reason))
        self.host.forget(self.session_id)

    def fail(self, reason: str, *, notify: bool = True) -> None:
        self.state = SessionState.CLOSED
        self.clear_timers()
        if notify:
            self.host.emit(SessionFailed(self.session_id, reason))
        self.host.forget(self.session_id)

    def clear_timers(self) -> None:
        for mid in self.requests:
            self._cancel(("ctrl", mid))
        self.requests.clear()
        self.data.clear()
        self._cancel(("hb",))
        self._cancel(("setup",))
