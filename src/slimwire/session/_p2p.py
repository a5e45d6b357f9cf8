"""The point-to-point session (both roles), sans-IO.

Initiator: DISCOVERY_REQUEST to the peer's name (any instance) → DISCOVERY_REPLY names the
instance → JOIN_REQUEST (timer settings, metadata) → JOIN_REPLY → GROUP_WELCOME (roster) →
GROUP_ACK: established. Responder: created by the layer on JOIN_REQUEST, answers JOIN_REPLY,
is established when the GROUP_WELCOME arrives (answered with GROUP_ACK).

Close: the initiator broadcasts GROUP_CLOSE (to the name it opened, fanout 256) and waits for
GROUP_ACK; the responder sends LEAVE_REQUEST with ``LEAVING_SESSION`` and waits for LEAVE_REPLY.
Data (see :mod:`._data`) goes to the peer instance with fanout 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from slimwire._constants import MULTICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import MlsError, SessionClosed
from slimwire.names import Name
from slimwire.session._base import (
    DISCOVERY_REPLY,
    DISCOVERY_REQUEST,
    GROUP_ACK,
    GROUP_CLOSE,
    GROUP_WELCOME,
    HEARTBEAT,
    JOIN_REPLY,
    JOIN_REQUEST,
    LEAVE_REPLY,
    LEAVE_REQUEST,
    SETUP_TIMEOUT,
    Host,
    Request,
    SessionBase,
    SessionState,
    participant,
)
from slimwire.session._config import SessionConfig
from slimwire.session._events import SessionEstablished
from slimwire.session._wire import command, name_from_proto

__all__ = ["P2PSession", "SessionState"]

log = logging.getLogger(__name__)


class P2PSession(SessionBase):
    """One point-to-point session. Driven by its :class:`SessionLayer`."""

    session_type = pb.SESSION_TYPE_POINT_TO_POINT
    start_known = True

    def __init__(
        self,
        host: Host,
        session_id: int,
        config: SessionConfig,
        *,
        initiator: bool,
        peer: Name,
    ) -> None:
        super().__init__(host, session_id, config)
        self.initiator = initiator
        self.target = peer  # the name the session was opened to (may have no id)
        self.peer: Name = peer  # the peer instance, once known
        self.state = SessionState.DISCOVERING if initiator else SessionState.AWAITING_WELCOME
        self._pending_data: list[tuple[bytes, str, dict[str, str]]] = []

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return (
            f"P2PSession(id={self.session_id}, {role}, peer={self.peer}, "
            f"state={self.state.value}, reliable={self.config.reliable})"
        )

    def members(self) -> list[Name]:
        return [self.peer]

    def heartbeat_target(self) -> tuple[Name, int] | None:
        return (self.peer, 1)

    @property
    def unacked(self) -> int:
        """Reliable messages still waiting for their ack."""
        return self.data.unacked

    # -- initiator ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Initiator: send the discovery request."""
        self._new_request(
            self.target,
            DISCOVERY_REQUEST,
            command(discovery_request=pb.DiscoveryRequestPayload()),
            expected=None,
            now=now,
            purpose="discovery",
        )

    def _on_discovery_reply(self, source: Name, now: float) -> None:
        self.peer = source
        self.state = SessionState.JOINING
        self._send_join_request(source, now)

    def _on_join_reply(self, msg: pb.Message, now: float) -> None:
        self._learn_ack_ranges(msg)
        welcome = pb.GroupWelcomePayload()
        if self.crypto is not None:
            reply = msg.publish.msg.command_payload.join_reply
            try:
                self.crypto.create_group()
                _commit, mls_welcome = self.crypto.add(reply.key_package)
            except (MlsError, ValueError) as exc:
                self.fail(f"MLS: cannot add {self.peer}: {exc}")
                return
            welcome.mls.commit_id = 1
            welcome.mls.mls_content = mls_welcome
        self.state = SessionState.WELCOMING
        welcome.participants.append(participant(self.peer))
        welcome.participants.append(participant(self.host.local))
        self._new_request(
            self.peer,
            GROUP_WELCOME,
            command(group_welcome=welcome),
            expected=[self.peer],
            now=now,
            purpose="welcome",
            metadata=self._ack_ranges_offer(),
        )

    def _request_done(self, req: Request, now: float) -> None:
        if req.purpose == "welcome" and self.state is SessionState.WELCOMING:
            self._establish(now)
        elif req.purpose == "close" and self.state is SessionState.CLOSING:
            self.finish(by_peer=False)

    def _request_failed(self, req: Request, now: float) -> None:
        if self.state is SessionState.CLOSING:
            self.finish(by_peer=False, reason="peer did not acknowledge the close")
        elif self.state is not SessionState.ESTABLISHED:
            self.fail(f"no answer from {self.target} during {req.purpose}")

    def _establish(self, now: float) -> None:
        self.state = SessionState.ESTABLISHED
        self._cancel(("setup",))
        self.start_heartbeats(now)
        self.host.emit(SessionEstablished(self.session_id, self.peer, self.initiator, self.config))
        pending, self._pending_data = self._pending_data, []
        for payload, payload_type, metadata in pending:
            self.publish(payload, payload_type, metadata, now)

    # -- responder ----------------------------------------------------------------------------

    def accept(self, join: pb.Message, now: float) -> None:
        """Responder: answer the JoinRequest that created this session."""
        reply = pb.JoinReplyPayload(participant=participant(self.host.local))
        if self.crypto is not None:
            reply.key_package = self.crypto.key_package()
        self._reply(join, JOIN_REPLY, command(join_reply=reply), self._ack_ranges_offer())
        self._arm(("setup",), now + SETUP_TIMEOUT)

    def _on_welcome(self, msg: pb.Message, now: float) -> None:
        if self.state is SessionState.AWAITING_WELCOME and self.crypto is not None:
            welcome = msg.publish.msg.command_payload.group_welcome
            try:
                self.crypto.join(welcome.mls.mls_content)
            except (MlsError, ValueError) as exc:
                log.warning("session %d: cannot join the MLS group: %s", self.session_id, exc)
                self._not_taken(msg)
                return  # no ack: the initiator retries, then gives up
        self._ack(msg)
        if self.state is SessionState.AWAITING_WELCOME:
            self._learn_ack_ranges(msg)
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
        return self.data.publish(
            self.peer,
            1,
            [self.peer],
            payload=payload,
            payload_type=payload_type,
            metadata=metadata,
            now=now,
        )

    # -- close --------------------------------------------------------------------------------

    def close(self, now: float) -> None:
        """Start a graceful close (idempotent)."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        if self.state is not SessionState.ESTABLISHED:
            self.fail("closed before it was established", notify=self.initiator)
            return
        self.state = SessionState.CLOSING
        if self.initiator:
            close = pb.GroupClosePayload()
            self.peer.fill_proto(close.participants.add())
            self.host.local.fill_proto(close.participants.add())
            self._new_request(
                self.target,
                GROUP_CLOSE,
                command(group_close=close),
                expected=[self.peer],
                now=now,
                purpose="close",
                fanout=MULTICAST_FANOUT,
            )
        else:
            self._send_leaving(self.peer, now)

    def _on_peer_close(self, msg: pb.Message, mtype: int) -> None:
        if mtype == GROUP_CLOSE:
            self._ack(msg)
        else:
            self._reply(msg, LEAVE_REPLY, command(leave_reply=pb.LeaveReplyPayload()))
        self.finish(by_peer=True)

    # -- dispatch -----------------------------------------------------------------------------

    def on_message(self, msg: pb.Message, now: float) -> None:
        if self.state is SessionState.CLOSED:
            return
        pub = msg.publish
        mtype = pub.session.session_message_type
        source = name_from_proto(pub.header.source)
        if self.state is SessionState.ESTABLISHED and source.key == self.peer.key:
            self.note_alive(source)
        if self.on_data(msg, mtype, source, now):
            return
        if mtype in (DISCOVERY_REPLY, JOIN_REPLY, GROUP_ACK, LEAVE_REPLY):
            req = self._answer(msg, source)
            if req is None:
                return
            if req.purpose == "discovery" and self.state is SessionState.DISCOVERING:
                self._on_discovery_reply(source, now)
            elif req.purpose == "join" and self.state is SessionState.JOINING:
                self._on_join_reply(msg, now)
            else:
                self._request_done(req, now)
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
            log.debug("session %d: ignoring message type %d", self.session_id, mtype)
