"""The session layer: every session of one app, behind one sans-IO object.

Inputs: :meth:`SessionLayer.receive` (a publish from the node), :meth:`handle_timeout` (the
clock), and user calls (:meth:`open`, :meth:`publish`, :meth:`close`). Outputs, collected with
:meth:`take`: messages for the node (already carrying a fresh identity token and, for commands,
the e2e header signature) and :mod:`events <slimwire.session._events>` for the app. Deadlines
are values: the driver sleeps until :meth:`next_deadline`.

Sessions are found by ``session_id`` alone. For an unknown id only a JoinRequest (creates a
responder session) and a DiscoveryRequest (stateless reply, after checking the sender's token
and header signature, which the reference requires even without MLS) are accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import NamedTuple

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import TokenProvider, TokenVerifier, header_aad, sign_header, verify_header
from slimwire.errors import AuthError, SessionClosed
from slimwire.names import Name
from slimwire.session._base import (
    DISCOVERY_REPLY,
    DISCOVERY_REQUEST,
    GROUP_ACK,
    GROUP_CLOSE,
    JOIN_REQUEST,
    MSG,
    MSG_ACK,
    RTX_REPLY,
    SessionState,
)
from slimwire.session._config import SessionConfig, SessionKind
from slimwire.session._crypto import GroupCrypto
from slimwire.session._data import DataPath
from slimwire.session._events import SessionEvent, received_message
from slimwire.session._group import GroupSession
from slimwire.session._ids import random_session_id
from slimwire.session._p2p import P2PSession
from slimwire.session._timers import Timers
from slimwire.session._tokens import DEFAULT_TOKEN_REUSE, TokenCache
from slimwire.session._wire import (
    COMMAND_TYPES,
    build_publish,
    command,
    name_bytes,
    name_from_proto,
    user_metadata,
)

__all__ = ["Outputs", "SessionLayer"]

log = logging.getLogger(__name__)


class Outputs(NamedTuple):
    """What :meth:`SessionLayer.take` hands the driver."""

    messages: list[pb.Message]
    events: list[SessionEvent]


class SessionLayer:
    """All sessions of the app ``local`` (a name with the app's id)."""

    def __init__(
        self,
        local: Name,
        provider: TokenProvider,
        verifier: TokenVerifier,
        *,
        token_reuse: float = DEFAULT_TOKEN_REUSE,
        ack_ranges: bool = True,
    ) -> None:
        """``token_reuse``: seconds one identity token is stamped on data messages (0: a fresh
        token per message; see :mod:`slimwire.session._tokens` for the trade-off).
        ``ack_ranges``: offer and send ranged acks in reliable point-to-point sessions (a
        slimwire extension that only slimwire peers use; see :mod:`slimwire.session._data`);
        False acks every message on its own, exactly as the reference does."""
        if not local.has_id:
            raise ValueError("the local name needs the app's id")
        self._local = local
        self._local_bytes = name_bytes(local)
        self._peer_bytes: dict[int, tuple[Name, bytes]] = {}
        self._provider = provider
        self._tokens = TokenCache(provider, token_reuse)
        self._verifier = verifier
        self._key = provider.identity.signing_key
        self._timers = Timers()
        self._sessions: dict[int, P2PSession | GroupSession] = {}
        self._out: list[pb.Message] = []
        self._events: list[SessionEvent] = []
        self._ack_ranges = ack_ranges
        self._held_acks: list[DataPath] = []

    def __repr__(self) -> str:
        return f"SessionLayer({self._local}, sessions={len(self._sessions)})"

    # -- Host protocol for sessions -----------------------------------------------------------

    @property
    def local(self) -> Name:
        return self._local

    @property
    def timers(self) -> Timers:
        return self._timers

    def send(self, msg: pb.Message, crypto: GroupCrypto | None = None) -> None:
        pub = msg.publish
        mtype = pub.session.session_message_type
        if mtype in COMMAND_TYPES:
            pub.header.identity = self._tokens.fresh()
            sign_header(pub, self._key)
            self._out.append(msg)
            return
        pub.header.identity = self._tokens.token()
        if (
            crypto is not None
            and mtype in (MSG, RTX_REPLY)
            and not (pub.header.HasField("error") and pub.header.error)
        ):
            # the AAD covers the identity token: seal after stamping, per copy sent
            app = pub.msg.app_payload
            app.blob = crypto.encrypt(app.blob, header_aad(pub))
        self._out.append(msg)

    def _crypto(self, config: SessionConfig) -> GroupCrypto:
        # imported on first use: sessions without MLS never load the MLS stack
        from slimwire.session._mls import MlsCrypto

        return MlsCrypto(self._provider, self._verifier, integrity_percent=config.integrity_percent)

    def emit(self, event: SessionEvent) -> None:
        self._events.append(event)

    @property
    def ack_ranges(self) -> bool:
        return self._ack_ranges

    def hold_acks(self, data: DataPath) -> None:
        self._held_acks.append(data)

    def forget(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)
        self._peer_bytes.pop(session_id, None)

    # -- user calls ---------------------------------------------------------------------------

    def _new_id(self) -> int:
        session_id = random_session_id()
        while session_id in self._sessions:
            session_id = random_session_id()
        return session_id

    def open(self, peer: Name, config: SessionConfig, now: float) -> int:
        """Start a session to ``peer`` (any instance unless it has an id); returns its id.

        :class:`SessionEstablished` or :class:`SessionFailed` follows.
        """
        if config.kind is not SessionKind.POINT_TO_POINT:
            raise ValueError("use create_group() for group sessions")
        session_id = self._new_id()
        session = P2PSession(self, session_id, config, initiator=True, peer=peer)
        if config.mls:
            session.crypto = self._crypto(config)
        self._sessions[session_id] = session
        session.start(now)
        return session_id

    def create_group(self, channel: Name, config: SessionConfig, now: float) -> int:
        """Create a group on ``channel`` (``org/ns/svc``) with us as moderator; returns its id.

        Emits :class:`SubscriptionChange` for the channel's two names and
        :class:`SessionEstablished`; members are added with :meth:`invite`.
        """
        if config.kind is not SessionKind.GROUP:
            config = SessionConfig(
                SessionKind.GROUP, config.interval, config.max_retries, config.metadata, config.mls
            )
        session_id = self._new_id()
        session = GroupSession.create(
            self, session_id, config, channel.without_id(), self._provider.identity.token_id
        )
        if config.mls:
            session.crypto = self._crypto(config)
        self._sessions[session_id] = session
        session.start(now)
        return session_id

    def invite(self, session_id: int, name: Name, now: float) -> int:
        """Moderator: add ``name`` (any instance unless it has an id); a :class:`TaskDone`
        with the returned task id follows."""
        return self._group(session_id).invite(name, now)

    def remove(self, session_id: int, name: Name, now: float) -> int:
        """Moderator: remove a member; a :class:`TaskDone` with the returned task id follows."""
        return self._group(session_id).remove(name, now)

    def update_state(self, session_id: int, online: bool, now: float) -> int:
        """Group member: announce going offline (``online=False``, the reference's soft close)
        or coming back (rejoining through the moderator if our MLS epoch is stale); a
        :class:`TaskDone` with the returned task id follows."""
        return self._group(session_id).update_state(online, now)

    def _group(self, session_id: int) -> GroupSession:
        session = self._session(session_id)
        if not isinstance(session, GroupSession):
            raise ValueError(f"session {session_id} is not a group session")
        return session

    def publish(
        self,
        session_id: int,
        payload: bytes,
        *,
        payload_type: str = "msg",
        metadata: Mapping[str, str] | None = None,
        now: float,
    ) -> int | None:
        """Send data on a session; returns the message id (``None`` if queued until set up)."""
        return self._session(session_id).publish(payload, payload_type, metadata, now)

    def publish_to(
        self,
        session_id: int,
        target: Name,
        payload: bytes,
        *,
        payload_type: str = "msg",
        metadata: Mapping[str, str] | None = None,
        now: float,
    ) -> int | None:
        """Send to one participant: in a group a direct, unsequenced message (``PUBLISH_TO``);
        in a point-to-point session the same as :meth:`publish` (as the reference does)."""
        session = self._session(session_id)
        if isinstance(session, GroupSession):
            return session.publish_to(target, payload, payload_type, metadata, now)
        return session.publish(payload, payload_type, metadata, now)

    def close(self, session_id: int, now: float) -> None:
        """Close gracefully; :class:`SessionClosed` follows."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.close(now)

    def session(self, session_id: int) -> P2PSession | GroupSession | None:
        return self._sessions.get(session_id)

    @property
    def sessions(self) -> Mapping[int, P2PSession | GroupSession]:
        return self._sessions

    def _session(self, session_id: int) -> P2PSession | GroupSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionClosed(f"no session {session_id}")
        return session

    # -- network and clock --------------------------------------------------------------------

    def receive(self, msg: pb.Message, now: float) -> None:
        """Take one message from the node (anything but a publish is ignored)."""
        if msg.WhichOneof("message_type") != "publish":
            return
        pub = msg.publish
        if not pub.HasField("session") or not pub.header.HasField("source"):
            return
        if self._receive_data(msg, pub, now):
            return
        session_id = pub.session.session_id
        session = self._sessions.get(session_id)
        if session is not None:
            if (
                session.config.mls
                and pub.session.session_message_type in COMMAND_TYPES
                and not (self._verify_command(msg) and self._fresh(session, msg))
            ):
                return
            session.on_message(msg, now)
            return
        mtype = pub.session.session_message_type
        if mtype == DISCOVERY_REQUEST:
            self._on_discovery_request(msg)
        elif mtype == JOIN_REQUEST:
            self._on_join_request(msg, now)
        elif mtype == GROUP_CLOSE:
            # we already forgot this session: confirm so the peer stops retrying
            self._reply(msg, GROUP_ACK, command(group_ack=pb.GroupAckPayload()))
        else:
            log.info(
                "dropping a message (type %d) for unknown session %d from %s",
                mtype,
                session_id,
                name_from_proto(pub.header.source),
            )

    def _receive_data(self, msg: pb.Message, pub: pb.Publish, now: float) -> bool:
        """The common case, read with as few protobuf accesses as possible: an MSG or MSG_ACK
        of an established point-to-point session without MLS, from its peer, to us, without
        metadata. Returns False, having changed nothing, for anything else.

        The names are compared as serialized bytes with the cached encodings of the peer's and
        our own name (a name encoded any other way simply takes the general path), which skips
        building :class:`Name` objects and the session's dispatch; the outcome is the same.
        """
        header = pub.session
        session = self._sessions.get(header.session_id)
        if (
            type(session) is not P2PSession
            or session.state is not SessionState.ESTABLISHED
            or session.crypto is not None
            or session.config.mls
        ):
            return False
        mtype = header.session_message_type
        if mtype != MSG and mtype != MSG_ACK:  # noqa: PLR1714 - cheaper than a tuple
            return False
        peer = session.peer
        cached = self._peer_bytes.get(header.session_id)
        if cached is None or cached[0] is not peer:  # by identity: hashing a Name costs
            cached = self._peer_bytes[header.session_id] = (peer, name_bytes(peer))
        routing = pub.header
        if routing.source.SerializeToString() != cached[1]:
            return False
        if mtype == MSG_ACK:
            session.note_alive(peer)
            session.data.on_ack_message(header.message_id, peer, msg.metadata)
            return True
        if msg.metadata or routing.destination.SerializeToString() != self._local_bytes:
            return False
        session.note_alive(peer)
        app = pub.msg.app_payload
        session.data.on_received(
            received_message(
                header.session_id,
                header.message_id,
                peer,
                self._local,
                app.blob,
                app.payload_type,
                {},
            ),
            peer,
            now,
        )
        return True

    def _reply(self, request: pb.Message, mtype: int, cmd: pb.CommandPayload) -> None:
        pub = request.publish
        self.send(
            build_publish(
                self._local,
                name_from_proto(pub.header.source),
                pub.session.session_type,
                mtype,
                session_id=pub.session.session_id,
                message_id=pub.session.message_id,
                cmd=cmd,
            )
        )

    def _verify_command(self, msg: pb.Message) -> bool:
        """With MLS, every control message must carry a valid token and header signature."""
        try:
            verify_header(msg.publish, self._verifier)
        except AuthError as exc:
            log.warning("dropping an unverifiable control message: %s", exc)
            return False
        return True

    @staticmethod
    def _fresh(session: P2PSession | GroupSession, msg: pb.Message) -> bool:
        """With MLS, a signed control message is refused if its id was seen (or is 0)."""
        pub = msg.publish
        source = name_from_proto(pub.header.source)
        reason = session.replay.check(source.key, pub.session.message_id)
        if reason is not None:
            log.warning("session %d: dropping %s from %s", session.session_id, reason, source)
            return False
        return True

    def _on_discovery_request(self, msg: pb.Message) -> None:
        try:
            verify_header(msg.publish, self._verifier)
        except AuthError as exc:
            log.warning("refusing discovery request: %s", exc)
            return
        self._reply(msg, DISCOVERY_REPLY, command(discovery_reply=pb.DiscoveryReplyPayload()))

    def _on_join_request(self, msg: pb.Message, now: float) -> None:
        pub = msg.publish
        stype = pub.session.session_type
        cp = pub.msg.command_payload
        if cp.WhichOneof("command_payload_type") != "join_request":
            return
        join = cp.join_request
        if join.HasField("mls_settings") and not self._verify_command(msg):
            return
        peer = name_from_proto(pub.header.source)
        session: P2PSession | GroupSession
        if stype == pb.SESSION_TYPE_POINT_TO_POINT:
            config = SessionConfig.from_join_request(
                SessionKind.POINT_TO_POINT, join, user_metadata(msg.metadata)
            )
            session = P2PSession(self, pub.session.session_id, config, initiator=False, peer=peer)
        elif stype == pb.SESSION_TYPE_MULTICAST:
            if not join.HasField("channel") or not join.HasField("control"):
                log.warning("group invite without channel names from %s", peer)
                return
            config = SessionConfig.from_join_request(
                SessionKind.GROUP, join, user_metadata(msg.metadata)
            )
            session = GroupSession(
                self,
                pub.session.session_id,
                config,
                moderator=peer,
                channel=name_from_proto(join.channel),
                control=name_from_proto(join.control),
            )
        else:
            return
        if config.mls:
            if not self._fresh(session, msg):
                return
            session.crypto = self._crypto(config)
        self._sessions[session.session_id] = session
        session.accept(msg, now)

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def handle_timeout(self, now: float) -> None:
        for key in self._timers.pop_expired(now):
            assert isinstance(key, tuple)
            session = self._sessions.get(key[0])
            if session is not None:
                session.on_timer(key[1:], now)

    @property
    def queued(self) -> int:
        """How many messages wait to be taken (a driver may batch until this grows)."""
        return len(self._out)

    def take(self) -> Outputs:
        """Hand over (and forget) the queued messages and events (held acks go out now)."""
        if self._held_acks:
            held, self._held_acks = self._held_acks, []
            for data in held:
                data.flush_acks()
        out, self._out = self._out, []
        events, self._events = self._events, []
        return Outputs(out, events)

    def established(self, session_id: int) -> bool:
        session = self._sessions.get(session_id)
        return session is not None and session.state is SessionState.ESTABLISHED
