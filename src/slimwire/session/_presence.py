"""Soft close and rejoin for group sessions: UPDATE_PARTICIPANT_STATE, GROUP_NACK, REJOIN_*.

A member that goes away without leaving (the reference's ``close_with_mode(SOFT)``) broadcasts
``UPDATE_PARTICIPANT_STATE{itself, OFFLINE, epoch 0}`` to the control name; every other member
marks it offline (no acks are awaited from it any more, it is not dropped for missing heartbeats)
and answers GROUP_ACK. Coming back (``rejoin()``) broadcasts ``ONLINE`` with the member's MLS
epoch; a member whose epoch differs answers GROUP_NACK instead. On the first NACK the returning
member stops the update and sends the moderator ``REJOIN_REQUEST{itself, fresh key package}``;
the moderator removes and re-adds it in one MLS commit, answers ``REJOIN_REPLY{commit_id,
welcome}`` (same id) and broadcasts ``GROUP_UPDATE{REJOIN, commit}`` (acked by every member
not away, the returning one included), and the member re-enters the group from the welcome
(``session_participant.rs::on_group_nack``, ``on_rejoin_reply``;
``session_moderator.rs::on_update_participant_state_from_slim``, ``on_rejoin_request``).

The rejoin reply is not retried: the member acks it with the id of its own request, which the
MLS replay guard (like the reference's) refuses as a replay, so waiting for that ack would fail.
"""

from __future__ import annotations

import logging

from slimwire._constants import MULTICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import MlsError, SessionClosed
from slimwire.names import Name
from slimwire.session._base import (
    GROUP_ACK,
    GROUP_NACK,
    SessionBase,
    SessionState,
)
from slimwire.session._events import ParticipantStatus, TaskDone
from slimwire.session._wire import command, name_from_proto

__all__ = ["REJOIN_REPLY", "REJOIN_REQUEST", "UPDATE_PARTICIPANT_STATE", "GroupPresence"]

log = logging.getLogger(__name__)

UPDATE_PARTICIPANT_STATE = pb.SESSION_MESSAGE_TYPE_UPDATE_PARTICIPANT_STATE
REJOIN_REQUEST = pb.SESSION_MESSAGE_TYPE_REJOIN_REQUEST
REJOIN_REPLY = pb.SESSION_MESSAGE_TYPE_REJOIN_REPLY

_Key = tuple[int, int, int, int]
_WHILE_OFFLINE = frozenset((GROUP_ACK, GROUP_NACK, REJOIN_REPLY))


class GroupPresence(SessionBase):
    """The presence half of :class:`~slimwire.session.GroupSession` (see the module doc)."""

    # provided by GroupSession
    is_moderator: bool
    moderator: Name
    control: Name
    roster: dict[_Key, Name]
    _commit_id: int
    _next_commit: int | None
    _task_seq: int

    def _init_presence(self) -> None:
        self.away: set[_Key] = set()
        """Members that announced they went offline (soft close) and have not come back."""
        self.online = True
        """False from our own soft close until a rejoin completes: meanwhile a member drops
        everything but the answers to its own update (as the reference's participant does)."""

    # -- our own state ------------------------------------------------------------------------

    def update_state(self, online: bool, now: float) -> int:
        """Announce that we go offline (soft close) or come back; returns a task id whose
        :class:`TaskDone` follows once every member answered (or the retries ran out)."""
        if self.state is not SessionState.ESTABLISHED:
            raise SessionClosed(f"session {self.session_id} is not open ({self.state.value})")
        self._task_seq += 1
        task_id = self._task_seq
        epoch = 0
        if online and self.crypto is not None:
            epoch = self.crypto.epoch
        payload = pb.UpdateParticipantStatePayload(
            new_state=pb.ONLINE if online else pb.OFFLINE, epoch=epoch
        )
        self.host.local.fill_proto(payload.participant)
        if not online:
            self.online = False
        others = self.members()
        if not others:
            self.online = online
            self.host.emit(TaskDone(self.session_id, task_id, self.host.local))
            return task_id
        self._new_request(
            self.control,
            UPDATE_PARTICIPANT_STATE,
            command(update_participant_state=payload),
            expected=others,
            now=now,
            purpose="state",
            fanout=MULTICAST_FANOUT,
            task_id=task_id,
            online=online,
        )
        return task_id

    def _state_done(self, task_id: object, error: str = "", *, back: bool = False) -> None:
        """Our update finished; ``back``: we are online again."""
        assert isinstance(task_id, int)
        if back and not error:
            self.online = True
        self.host.emit(TaskDone(self.session_id, task_id, self.host.local, error))

    def _on_state_nack(self, msg: pb.Message, source: Name, now: float) -> bool:
        """A GROUP_NACK to our ONLINE update: rejoin through the moderator. True if handled."""
        mid = msg.publish.session.message_id
        req = self.requests.get(mid)
        if req is None or req.purpose != "state" or not req.data.get("online"):
            return False
        if req.expected is None or source.key not in req.expected:
            return True
        del self.requests[mid]
        self._cancel(("ctrl", mid))
        task_id = req.data["task_id"]
        if self.crypto is None or self.is_moderator:
            self._state_done(task_id, f"{source} refused our epoch")
            return True
        log.info("group %d: %s refused our epoch; rejoining", self.session_id, source)
        rejoin = pb.RejoinRequestPayload(key_package=self.crypto.key_package())
        self.host.local.fill_proto(rejoin.participant)
        self._new_request(
            self.moderator,
            REJOIN_REQUEST,
            command(rejoin_request=rejoin),
            expected=[self.moderator],
            now=now,
            purpose="rejoin",
            task_id=task_id,
        )
        return True

    def _on_rejoin_reply(self, msg: pb.Message, source: Name, now: float) -> None:
        req = self._answer(msg, source)
        if req is None or req.purpose != "rejoin":
            return
        reply = msg.publish.msg.command_payload.rejoin_reply
        error = ""
        if self.crypto is not None:
            try:
                self.crypto.join(reply.mls_content)
                self._next_commit = reply.commit_id + 1
            except (MlsError, ValueError) as exc:
                error = f"cannot re-enter the MLS group: {exc}"
                log.warning("group %d: %s", self.session_id, error)
        self._ack(msg)
        self._state_done(req.data["task_id"], error, back=True)

    # -- other members' state -----------------------------------------------------------------

    def _set_away(self, member: Name, away: bool) -> None:
        key = member.key
        if away and key not in self.away:
            self.away.add(key)
            self.data.forget_member(member)
            self.host.emit(ParticipantStatus(self.session_id, member, False))
        elif not away and key in self.away:
            self.away.discard(key)
            self._missed[key] = 0
            if key in self._offline:
                self._offline.discard(key)
            self.host.emit(ParticipantStatus(self.session_id, member, True))

    def _on_state_update(self, msg: pb.Message, now: float) -> None:
        update = msg.publish.msg.command_payload.update_participant_state
        member = name_from_proto(update.participant)
        if member.key == self.host.local.key or member.key not in self.roster:
            return  # our own broadcast, or a stranger: no answer, as the reference
        member = self.roster[member.key]
        if update.new_state == pb.OFFLINE:
            if member.key in self.away:
                return  # already offline: the reference does not answer either
            self._set_away(member, True)
        else:
            if self.crypto is not None and update.epoch != self.crypto.epoch:
                log.info(
                    "group %d: %s is back at epoch %d, we are at %d: NACK",
                    self.session_id,
                    member,
                    update.epoch,
                    self.crypto.epoch,
                )
                self._reply(msg, GROUP_NACK, command(group_nack=pb.GroupNackPayload()))
                return
            self._set_away(member, False)
        self._reply(msg, GROUP_ACK, command(group_ack=pb.GroupAckPayload()))

    # -- moderator ----------------------------------------------------------------------------

    def _on_rejoin_request(self, msg: pb.Message, source: Name, now: float) -> None:
        request = msg.publish.msg.command_payload.rejoin_request
        member = self.roster.get(name_from_proto(request.participant).key)
        if member is None or member.key != source.key:
            log.info("group %d: rejoin request from non-member %s ignored", self.session_id, source)
            return
        if self.crypto is None:
            return  # without MLS there is no epoch to mismatch (the reference ignores it too)
        if self._busy():
            log.info("group %d: busy, dropping %s's rejoin request", self.session_id, source)
            return  # as the reference: the member retries
        try:
            commit, welcome = self.crypto.rejoin_app(member.id, request.key_package)
        except (MlsError, ValueError) as exc:
            log.warning("group %d: cannot rejoin %s: %s", self.session_id, member, exc)
            return
        self._commit_id += 1
        log.info("group %d: %s rejoins (commit %d)", self.session_id, member, self._commit_id)
        reply = pb.RejoinReplyPayload(commit_id=self._commit_id, mls_content=welcome)
        self._reply(msg, REJOIN_REPLY, command(rejoin_reply=reply))
        self._set_away(member, False)
        self._broadcast_update(pb.REJOIN, member, now, "rejoin-update", commit)

    def _broadcast_update(
        self, op: int, member: Name, now: float, purpose: str, commit: bytes | None = None
    ) -> None:
        """GROUP_UPDATE to the group (GroupSession's, shared by add, remove, leave, rejoin)."""
        raise NotImplementedError

    def _busy(self) -> bool:
        """Whether a moderator task (invite/remove) is running."""
        raise NotImplementedError

    def drops_while_offline(self, mtype: int) -> bool:
        """Whether a member that soft-closed ignores a message of type ``mtype``."""
        return not self.online and not self.is_moderator and mtype not in _WHILE_OFFLINE

    def heartbeat_members(self) -> list[Name]:
        """Members whose silence counts: not those that announced they went offline."""
        return [m for m in self.members() if m.key not in self.away]
