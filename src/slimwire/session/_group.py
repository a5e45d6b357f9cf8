"""Group sessions: a moderator, its channel, and the members it invites (sans-IO).

The moderator owns the channel: two names under the channel's ``org/ns/svc`` whose ids it
derives from its token id (data and control, :func:`slimwire.names.channel_ids`). Creating the
group sends nothing. ``invite`` runs, one task at a time: DISCOVERY_REQUEST → DISCOVERY_REPLY →
JOIN_REQUEST (timer settings, channel, control, metadata) → JOIN_REPLY → GROUP_WELCOME to the
newcomer, and in the same batch, when the roster then has more than two members, GROUP_UPDATE
(ADD, full roster) broadcast to the control name (fanout 256) and acked by every old member.
``remove``: GROUP_UPDATE (REMOVE, roster still listing the member) when the roster has more than
two members, then LEAVE_REQUEST → LEAVE_REPLY. ``close``: GROUP_CLOSE (remaining members) to the
control name, acked by each member. Members subscribe both channel names when welcomed, apply
updates (in ``commit_id`` order when MLS numbers them), and leave with LEAVE_REQUEST
(``LEAVING_SESSION``). Data goes to the data name with fanout 256; every receiver acks its
sender, and direct messages (``publish_to``) go to one member, unsequenced.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from slimwire._constants import MULTICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import MlsError, SessionClosed
from slimwire.names import Name, channel_ids
from slimwire.session._base import (
    DISCOVERY_REPLY,
    DISCOVERY_REQUEST,
    GROUP_ACK,
    GROUP_CLOSE,
    GROUP_NACK,
    GROUP_UPDATE,
    GROUP_WELCOME,
    HEARTBEAT,
    JOIN_REPLY,
    JOIN_REQUEST,
    LEAVE_REPLY,
    LEAVE_REQUEST,
    SETUP_TIMEOUT,
    Host,
    Request,
    SessionState,
    participant,
)
from slimwire.session._config import SessionConfig
from slimwire.session._events import (
    ParticipantJoined,
    ParticipantLeft,
    SessionEstablished,
    SubscriptionChange,
    TaskDone,
)
from slimwire.session._presence import (
    REJOIN_REPLY,
    REJOIN_REQUEST,
    UPDATE_PARTICIPANT_STATE,
    GroupPresence,
)
from slimwire.session._wire import command, name_from_proto

__all__ = ["GroupSession"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Task:
    task_id: int
    kind: str  # "add" | "remove" | "drop" (a member that went silent)
    target: Name
    member: Name | None = None
    pending: int = 0  # requests of this task still waiting for replies


def _matches(target: Name, member: Name) -> bool:
    return member.encoded == target.encoded and (not target.has_id or member.id == target.id)


class GroupSession(GroupPresence):
    """One group session, as its moderator or as a member."""

    session_type = pb.SESSION_TYPE_MULTICAST
    start_known = False  # a member may join a stream that is already running

    def __init__(
        self,
        host: Host,
        session_id: int,
        config: SessionConfig,
        *,
        moderator: Name,
        channel: Name,
        control: Name,
    ) -> None:
        super().__init__(host, session_id, config)
        self.is_moderator = moderator.key == host.local.key
        self.moderator = moderator
        self.channel = channel
        self.control = control
        self.roster: dict[tuple[int, int, int, int], Name] = {host.local.key: host.local}
        self._tasks: deque[_Task] = deque()
        self._task: _Task | None = None
        self._task_seq = 0
        self._next_commit: int | None = None
        self._commit_id = 0  # moderator: the last MLS commit it numbered
        self._held_updates: dict[int, pb.Message] = {}
        self._init_presence()

    def __repr__(self) -> str:
        role = "moderator" if self.is_moderator else "member"
        return (
            f"GroupSession(id={self.session_id}, {role}, channel={self.channel.short()}, "
            f"members={len(self.roster)}, state={self.state.value})"
        )

    @classmethod
    def create(
        cls, host: Host, session_id: int, config: SessionConfig, channel: Name, token_id: str
    ) -> GroupSession:
        """A new group with ``host`` as moderator (nothing is sent yet)."""
        data_id, ctrl_id = channel_ids(token_id, channel)
        return cls(
            host,
            session_id,
            config,
            moderator=host.local,
            channel=channel.with_id(data_id),
            control=channel.with_id(ctrl_id),
        )

    def members(self) -> list[Name]:
        return [m for k, m in self.roster.items() if k != self.host.local.key]

    def heartbeat_target(self) -> tuple[Name, int] | None:
        return (self.control, MULTICAST_FANOUT) if self.online else None

    def _busy(self) -> bool:
        return self._task is not None

    def _subscribe(self, on: bool) -> None:
        for name in (self.channel, self.control):
            self.host.emit(SubscriptionChange(self.session_id, name, on))

    def _roster_proto(self, into: RepeatedCompositeFieldContainer[pb.Participant]) -> None:
        for member in self.roster.values():
            part = participant(member)
            if member.key in self.away:  # the reference's group list carries each status
                part.status = pb.OFFLINE
            into.append(part)

    # -- moderator ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Moderator: subscribe the channel and report the session ready."""
        self.state = SessionState.ESTABLISHED
        if self.crypto is not None:
            self.crypto.create_group()
        self._subscribe(True)
        self.start_heartbeats(now)
        self.host.emit(SessionEstablished(self.session_id, self.channel, True, self.config))

    def invite(self, name: Name, now: float) -> int:
        return self._enqueue("add", name, now)

    def remove(self, name: Name, now: float) -> int:
        return self._enqueue("remove", name, now)

    def _enqueue(self, kind: str, name: Name, now: float) -> int:
        if not self.is_moderator:
            raise SessionClosed("only the moderator can invite or remove members")
        if self.state is not SessionState.ESTABLISHED:
            raise SessionClosed(f"session {self.session_id} is closed")
        self._task_seq += 1
        self._tasks.append(_Task(self._task_seq, kind, name))
        if self._task is None:
            self._next_task(now)
        return self._task_seq

    def _next_task(self, now: float) -> None:
        while self._task is None and self._tasks:
            task = self._tasks.popleft()
            if task.kind == "add":
                self._task = task
                self._new_request(
                    task.target,
                    DISCOVERY_REQUEST,
                    command(discovery_request=pb.DiscoveryRequestPayload()),
                    expected=None,
                    now=now,
                    purpose="discovery",
                )
            else:
                member = next((m for m in self.members() if _matches(task.target, m)), None)
                if member is None:
                    self._done(task, None, f"{task.target} is not a member")
                    continue
                task.member = member
                self._task = task
                commit = self._mls_remove(member)
                if task.kind == "drop":  # gone silent: tell the others, send it nothing
                    if len(self.roster) > 2:
                        self._broadcast_update(pb.REMOVE, member, now, "drop-update", commit)
                    else:
                        self._drop_member(member, now)
                        self._finish_task(member, now)
                elif len(self.roster) > 2:
                    self._broadcast_update(pb.REMOVE, member, now, "remove-update", commit)
                else:
                    self._send_leave(member, now)

    def _done(self, task: _Task, member: Name | None, error: str = "") -> None:
        self.host.emit(TaskDone(self.session_id, task.task_id, member, error))

    def _finish_task(self, member: Name | None, now: float, error: str = "") -> None:
        task, self._task = self._task, None
        if task is not None:
            self._done(task, member, error)
        self._next_task(now)

    def _mls_remove(self, member: Name) -> bytes | None:
        """Moderator: the MLS commit removing ``member`` (None without MLS)."""
        if self.crypto is None:
            return None
        try:
            commit = self.crypto.remove_app(member.id)
        except MlsError as exc:
            log.warning("group %d: cannot remove %s from MLS: %s", self.session_id, member, exc)
            return None
        self._commit_id += 1
        return commit

    def _broadcast_update(
        self, op: int, member: Name, now: float, purpose: str, commit: bytes | None = None
    ) -> None:
        """GROUP_UPDATE{op, member, the roster as it is now, MLS commit} to the control name.

        The one place acks for an update are decided, as the reference's moderator does: its
        sender waits for every endpoint it still tracks, and it stops tracking a member that
        went away (soft close) and one it removes *before* sending the REMOVE. So: every member
        not away, except the update's subject for ADD (the newcomer gets its welcome instead)
        and REMOVE (it may still ack; that is ignored). A REJOIN's subject is back before the
        update and acks it. With nobody left to wait for, the update is sent and done at once
        (waiting would only run the retries out)."""
        update = pb.GroupUpdatePayload(op=op, participant=participant(member))  # type: ignore[arg-type]
        self._roster_proto(update.participants)
        if commit is not None:
            update.mls.commit_id = self._commit_id
            update.mls.mls_content = commit
        subject = member.key if op in (pb.ADD, pb.REMOVE) else None
        expected = [m for m in self.members() if m.key != subject and m.key not in self.away]
        req = self._new_request(
            self.control,
            GROUP_UPDATE,
            command(group_update=update),
            expected=expected,
            now=now,
            purpose=purpose,
            fanout=MULTICAST_FANOUT,
        )
        if not expected:
            mid = req.message.publish.session.message_id
            del self.requests[mid]
            self._cancel(("ctrl", mid))
            self._request_done(req, now)

    def _send_leave(self, member: Name, now: float) -> None:
        self._new_request(
            member,
            LEAVE_REQUEST,
            command(leave_request=pb.LeaveRequestPayload()),
            expected=[member],
            now=now,
            purpose="leave",
        )

    def _on_discovery_reply(self, source: Name, now: float) -> None:
        task = self._task
        if task is None or task.kind != "add":
            return
        task.member = source
        self._send_join_request(source, now, self.channel, self.control)

    def _on_join_reply(self, msg: pb.Message, now: float) -> None:
        task = self._task
        if task is None or task.member is None:
            return
        member = task.member
        commit: bytes | None = None
        welcome = pb.GroupWelcomePayload()
        if self.crypto is not None:
            reply = msg.publish.msg.command_payload.join_reply
            try:
                commit, mls_welcome = self.crypto.add(reply.key_package)
            except (MlsError, ValueError) as exc:
                self._finish_task(None, now, f"MLS: cannot add {member}: {exc}")
                return
            self._commit_id += 1
            welcome.mls.commit_id = self._commit_id
            welcome.mls.mls_content = mls_welcome
        self.roster[member.key] = member
        self._roster_proto(welcome.participants)
        self._new_request(
            member,
            GROUP_WELCOME,
            command(group_welcome=welcome),
            expected=[member],
            now=now,
            purpose="welcome",
        )
        big = len(self.roster) > 2
        task.pending = 2 if big else 1  # the welcome's ack, and the update's acks
        if big:
            self._broadcast_update(pb.ADD, member, now, "add-update", commit)

    def _moderator_request_done(self, req: Request, now: float) -> None:
        task = self._task
        if req.purpose in ("welcome", "add-update") and task is not None:
            task.pending -= 1
            if task.pending <= 0 and task.member is not None:
                self.data_ready_for(task.member)
                self.host.emit(ParticipantJoined(self.session_id, task.member))
                self._finish_task(task.member, now)
        elif req.purpose == "remove-update" and task is not None and task.member is not None:
            self._send_leave(task.member, now)
        elif req.purpose in ("drop-update", "leave") and task is not None and task.member:
            self._drop_member(task.member, now)
            self._finish_task(task.member, now)
        elif req.purpose == "close":
            self._subscribe(False)
            self.finish(by_peer=False)

    def data_ready_for(self, member: Name) -> None:
        """Hook: a member was fully added (nothing to do without MLS)."""

    def _drop_member(self, member: Name, now: float) -> None:
        if self.roster.pop(member.key, None) is None:
            return
        self.data.forget_member(member)
        self._drop_from_requests(member, now)
        self.host.emit(ParticipantLeft(self.session_id, member))

    def _on_member_leaving(self, msg: pb.Message, source: Name, now: float) -> None:
        """A member leaves on its own (LEAVE_REQUEST with LEAVING_SESSION)."""
        self._reply(msg, LEAVE_REPLY, command(leave_reply=pb.LeaveReplyPayload()))
        if source.key not in self.roster:
            return
        member = self.roster[source.key]
        commit = self._mls_remove(member)
        if len(self.roster) > 2:
            self._broadcast_update(pb.REMOVE, member, now, "left-update", commit)
        self._drop_member(member, now)

    # -- member -------------------------------------------------------------------------------

    def accept(self, join: pb.Message, now: float) -> None:
        """Member: answer the JoinRequest that created this session."""
        self.state = SessionState.AWAITING_WELCOME
        reply = pb.JoinReplyPayload(participant=participant(self.host.local))
        if self.crypto is not None:
            reply.key_package = self.crypto.key_package()
        self._reply(join, JOIN_REPLY, command(join_reply=reply))
        self._arm(("setup",), now + SETUP_TIMEOUT)

    def _on_welcome(self, msg: pb.Message, now: float) -> None:
        welcome = msg.publish.msg.command_payload.group_welcome
        if self.state is SessionState.AWAITING_WELCOME and self.crypto is not None:
            try:
                self.crypto.join(welcome.mls.mls_content)
            except (MlsError, ValueError) as exc:
                log.warning("group %d: cannot join the MLS group: %s", self.session_id, exc)
                self._not_taken(msg)
                return  # no ack: the moderator retries, then gives up on us
        if self.state is SessionState.AWAITING_WELCOME:
            self._subscribe(True)
            for part in welcome.participants:
                member = name_from_proto(part.name)
                self.roster[member.key] = member
            if welcome.HasField("mls"):
                self._next_commit = welcome.mls.commit_id + 1
            self.state = SessionState.ESTABLISHED
            self._cancel(("setup",))
            self.start_heartbeats(now)
            self.host.emit(SessionEstablished(self.session_id, self.channel, False, self.config))
        self._ack(msg)

    def _on_update(self, msg: pb.Message, now: float) -> None:
        update = msg.publish.msg.command_payload.group_update
        if update.HasField("mls") and self._next_commit is not None:
            cid = update.mls.commit_id
            if cid < self._next_commit:
                self._ack(msg)  # already applied: a retransmission
                return
            self._held_updates[cid] = msg
            while self._next_commit in self._held_updates:
                held = self._held_updates.pop(self._next_commit)
                self._apply_update(held, now)
                self._next_commit += 1
            return
        self._apply_update(msg, now)

    def _apply_update(self, msg: pb.Message, now: float) -> None:
        update = msg.publish.msg.command_payload.group_update
        member = name_from_proto(update.participant.name)
        if self.crypto is not None and update.HasField("mls"):
            try:
                self.crypto.apply_commit(update.mls.mls_content)
            except (MlsError, ValueError) as exc:
                log.warning("group %d: cannot apply commit: %s", self.session_id, exc)
                return
        if update.op == pb.ADD:
            if member.key not in self.roster:
                self.roster[member.key] = member
                self.host.emit(ParticipantJoined(self.session_id, member))
        elif update.op == pb.REMOVE and member.key != self.host.local.key:
            self._drop_member(member, now)
        elif update.op == pb.REJOIN and member.key in self.roster:
            self._set_away(self.roster[member.key], False)
        self._ack(msg)

    def _on_removed(self, msg: pb.Message) -> None:
        """The moderator removed us (LEAVE_REQUEST) or closed the group (GROUP_CLOSE)."""
        if msg.publish.session.session_message_type == GROUP_CLOSE:
            self._ack(msg)
        else:
            self._reply(msg, LEAVE_REPLY, command(leave_reply=pb.LeaveReplyPayload()))
        self._subscribe(False)
        self.finish(by_peer=True)

    # -- data ---------------------------------------------------------------------------------

    def publish(
        self,
        payload: bytes,
        payload_type: str = "msg",
        metadata: Mapping[str, str] | None = None,
        now: float = 0.0,
    ) -> int | None:
        """Send to every member (fanout 256 on the channel's data name)."""
        if self.state is not SessionState.ESTABLISHED:
            raise SessionClosed(f"session {self.session_id} is not open ({self.state.value})")
        return self.data.publish(
            self.channel,
            MULTICAST_FANOUT,
            self.heartbeat_members(),  # not those that went offline: they will not ack
            payload=payload,
            payload_type=payload_type,
            metadata=metadata,
            now=now,
        )

    def publish_to(
        self,
        target: Name,
        payload: bytes,
        payload_type: str = "msg",
        metadata: Mapping[str, str] | None = None,
        now: float = 0.0,
    ) -> int:
        """Send to one member only (the reference's ``publish_to``: replies inside a group)."""
        if self.state is not SessionState.ESTABLISHED:
            raise SessionClosed(f"session {self.session_id} is not open ({self.state.value})")
        member = self.roster.get(target.key) or next(
            (m for m in self.members() if _matches(target, m)), None
        )
        if member is None:
            raise SessionClosed(f"{target} is not a member of session {self.session_id}")
        return self.data.publish_to(
            member, payload=payload, payload_type=payload_type, metadata=metadata, now=now
        )

    def _on_heartbeat_tick(self, now: float) -> None:
        before = set(self._offline)
        super()._on_heartbeat_tick(now)
        if not self.is_moderator or self.state is not SessionState.ESTABLISHED:
            return
        for key in self._offline - before:  # as the reference: a silent member is removed
            member = self.roster.get(key)
            if member is not None:
                self._task_seq += 1
                self._tasks.append(_Task(self._task_seq, "drop", member))
        if self._task is None:
            self._next_task(now)

    def status(self) -> dict[Name, bool]:
        """Every other member and whether it is online (heartbeats or traffic seen lately)."""
        return {m: m.key not in self._offline and m.key not in self.away for m in self.members()}

    # -- close --------------------------------------------------------------------------------

    def close(self, now: float) -> None:
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        if self.state is not SessionState.ESTABLISHED:
            self.fail("closed before it was established", notify=False)
            return
        self.state = SessionState.CLOSING
        if self.is_moderator:
            others = self.members()
            if not others:
                self._subscribe(False)
                self.finish(by_peer=False)
                return
            close = pb.GroupClosePayload()
            for member in self.roster.values():
                member.fill_proto(close.participants.add())
            self._new_request(
                self.control,
                GROUP_CLOSE,
                command(group_close=close),
                expected=others,
                now=now,
                purpose="close",
                fanout=MULTICAST_FANOUT,
            )
        else:
            self._send_leaving(self.moderator, now)

    # -- requests -----------------------------------------------------------------------------

    def _request_done(self, req: Request, now: float) -> None:
        if req.purpose == "state":
            self._state_done(req.data["task_id"], back=bool(req.data.get("online")))
            return
        if self.is_moderator:
            self._moderator_request_done(req, now)
        elif req.purpose == "close":
            self._subscribe(False)
            self.finish(by_peer=False)

    def _request_failed(self, req: Request, now: float) -> None:
        if req.purpose in ("state", "rejoin"):
            # going offline completes on timeout too (as the reference); coming back does not
            online = req.purpose == "rejoin" or bool(req.data.get("online"))
            self._state_done(req.data["task_id"], "no answer" if online else "")
            return
        if req.purpose == "close":
            self._subscribe(False)
            self.finish(by_peer=False, reason="not every member acknowledged the close")
            return
        task = self._task
        if not self.is_moderator or task is None:
            return
        missing = list(req.expected.values()) if req.expected else []
        if req.purpose in ("discovery", "join", "welcome"):
            if task.member is not None and task.member.key in self.roster:
                self._drop_member(task.member, now)
            self._finish_task(None, now, f"no answer from {task.target} during {req.purpose}")
            return
        # an update that some members never acked: treat them as gone, carry on
        for member in missing:
            self._drop_member(member, now)
        self._request_done(req, now)

    # -- dispatch -----------------------------------------------------------------------------

    def on_message(self, msg: pb.Message, now: float) -> None:
        if self.state is SessionState.CLOSED:
            return
        pub = msg.publish
        mtype = pub.session.session_message_type
        if self.drops_while_offline(mtype):
            return
        source = name_from_proto(pub.header.source)
        self.note_alive(source)
        if self.on_data(msg, mtype, source, now):
            return
        if mtype == GROUP_NACK and self._on_state_nack(msg, source, now):
            return
        if mtype == UPDATE_PARTICIPANT_STATE:
            if self.state is SessionState.ESTABLISHED:
                self._on_state_update(msg, now)
            return
        if mtype == REJOIN_REPLY:
            self._on_rejoin_reply(msg, source, now)
            return
        if mtype in (DISCOVERY_REPLY, JOIN_REPLY, GROUP_ACK, LEAVE_REPLY, GROUP_NACK):
            req = self._answer(msg, source)
            if req is None:
                return
            if req.purpose == "discovery":
                self._on_discovery_reply(source, now)
            elif req.purpose == "join":
                self._on_join_reply(msg, now)
            else:
                self._request_done(req, now)
        elif self.is_moderator:
            if mtype == LEAVE_REQUEST:
                self._on_member_leaving(msg, source, now)
            elif mtype == REJOIN_REQUEST:
                self._on_rejoin_request(msg, source, now)
        elif mtype == GROUP_WELCOME:
            self._on_welcome(msg, now)
        elif mtype == GROUP_UPDATE and self.state is SessionState.ESTABLISHED:
            self._on_update(msg, now)
        elif mtype in (LEAVE_REQUEST, GROUP_CLOSE):
            self._on_removed(msg)
        elif mtype == JOIN_REQUEST and self.state is SessionState.AWAITING_WELCOME:
            self.accept(msg, now)
        elif mtype != HEARTBEAT:
            log.debug("group %d: ignoring message type %d", self.session_id, mtype)
