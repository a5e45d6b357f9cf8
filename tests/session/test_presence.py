"""Soft close and rejoin in groups: UPDATE_PARTICIPANT_STATE, GROUP_NACK, REJOIN_REQUEST/REPLY."""

from __future__ import annotations

import pytest

from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name
from slimwire.session import (
    MessageDelivered,
    MessageReceived,
    ParticipantStatus,
    SessionConfig,
    TaskDone,
)
from tests.session._net import Net, make_layer

CHANNEL = Name("org", "grp", "presence")


def _group(n: int, *, mls: bool) -> tuple[Net, list, int]:
    mod = make_layer("moderator")
    members = [make_layer(f"p{i}") for i in range(n)]
    net = Net([mod, *members])
    sid = mod.create_group(CHANNEL, SessionConfig.group(reliable=True, mls=mls), net.now)
    for m in members:
        mod.invite(sid, m.local.without_id(), net.now)
    net.settle()
    assert len(mod.session(sid).roster) == n + 1
    return net, [mod, *members], sid


def _types(net: Net, start: int) -> list[int]:
    return [m.publish.session.session_message_type for m in net.sent[start:]]


def _payloads(net: Net, who: str) -> list[bytes]:
    return [e.message.payload for e in net.of(who, MessageReceived)]


def test_soft_close_and_come_back_without_mls() -> None:
    net, (mod, _p0, p1), sid = _group(2, mls=False)
    task = p1.update_state(sid, False, net.now)
    net.settle()
    assert net.of("p1", TaskDone)[-1] == TaskDone(sid, task, p1.local)
    for who in ("moderator", "p0"):
        assert net.of(who, ParticipantStatus)[-1] == ParticipantStatus(sid, p1.local, False)
    net.layers.remove(p1)  # really gone for a while: no heartbeats, no acks
    for _ in range(5):
        net.advance(10.0)
        net.settle()
    assert p1.local.key in mod.session(sid).roster  # offline by choice: not dropped
    mid = mod.publish(sid, b"while away", now=net.now)
    net.settle()
    assert MessageDelivered(sid, mid) in net.of("moderator", MessageDelivered)  # p0's ack only
    net.layers.append(p1)
    task = p1.update_state(sid, True, net.now)
    net.settle()
    assert net.of("p1", TaskDone)[-1] == TaskDone(sid, task, p1.local)
    for who in ("moderator", "p0"):
        assert net.of(who, ParticipantStatus)[-1] == ParticipantStatus(sid, p1.local, True)
    mod.publish(sid, b"welcome back", now=net.now)
    net.settle()
    assert b"welcome back" in _payloads(net, "p1")


@pytest.mark.parametrize("reachable", [False, True], ids=["gone", "connected"])
def test_stale_epoch_is_nacked_and_the_member_rejoins_through_the_moderator(
    reachable: bool,
) -> None:
    """Gone: p1 hears nothing while away. Connected: it hears everything but, offline by
    choice, ignores it (as the reference's participant) - either way it misses a commit."""
    net, (mod, p0, p1), sid = _group(2, mls=True)
    p1.update_state(sid, False, net.now)
    net.settle()
    if not reachable:
        net.layers.remove(p1)
    p2 = make_layer("p2")
    net.layers.append(p2)
    mod.invite(sid, p2.local.without_id(), net.now)  # a new epoch p1 does not see
    mod.publish(sid, b"while p1 is away", now=net.now)
    net.settle()
    assert net.of("moderator", TaskDone)[-1].participant == p2.local
    assert b"while p1 is away" not in _payloads(net, "p1")
    if not reachable:
        net.layers.append(p1)
    start = len(net.sent)
    task = p1.update_state(sid, True, net.now)
    net.settle()
    sent = _types(net, start)
    assert pb.SESSION_MESSAGE_TYPE_GROUP_NACK in sent
    assert pb.SESSION_MESSAGE_TYPE_REJOIN_REQUEST in sent
    assert pb.SESSION_MESSAGE_TYPE_REJOIN_REPLY in sent
    updates = [
        m.publish.msg.command_payload.group_update
        for m in net.sent[start:]
        if m.publish.session.session_message_type == pb.SESSION_MESSAGE_TYPE_GROUP_UPDATE
    ]
    assert [u.op for u in updates] == [pb.REJOIN]
    assert updates[0].mls.mls_content
    assert net.of("p1", TaskDone)[-1] == TaskDone(sid, task, p1.local)
    epochs = {layer.session(sid).crypto.epoch for layer in (mod, p0, p1, p2)}
    assert len(epochs) == 1  # everyone on the rejoin commit's epoch
    mod.publish(sid, b"sealed for all", now=net.now)
    p1.publish(sid, b"p1 is back", now=net.now)
    net.settle()
    for who in ("p0", "p1", "p2"):
        assert b"sealed for all" in _payloads(net, who)
    for who in ("moderator", "p0", "p2"):
        assert b"p1 is back" in _payloads(net, who)


def test_matching_epoch_comes_back_without_rejoin() -> None:
    net, (_mod, _p0, p1), sid = _group(2, mls=True)
    p1.update_state(sid, False, net.now)
    net.settle()
    start = len(net.sent)
    task = p1.update_state(sid, True, net.now)
    net.settle()
    sent = _types(net, start)
    assert pb.SESSION_MESSAGE_TYPE_GROUP_NACK not in sent
    assert pb.SESSION_MESSAGE_TYPE_REJOIN_REQUEST not in sent
    assert net.of("p1", TaskDone)[-1] == TaskDone(sid, task, p1.local)
    assert net.of("moderator", ParticipantStatus)[-1] == ParticipantStatus(sid, p1.local, True)


def test_state_update_from_a_stranger_is_ignored() -> None:
    net, (mod, _p0, _p1), sid = _group(2, mls=False)
    stranger = make_layer("stranger")
    payload = pb.UpdateParticipantStatePayload(new_state=pb.OFFLINE)
    stranger.local.fill_proto(payload.participant)
    from slimwire.session._wire import build_publish, command

    msg = build_publish(
        stranger.local,
        mod.local,
        pb.SESSION_TYPE_MULTICAST,
        pb.SESSION_MESSAGE_TYPE_UPDATE_PARTICIPANT_STATE,
        session_id=sid,
        message_id=99,
        cmd=command(update_participant_state=payload),
    )
    mod.receive(msg, net.now)
    out = mod.take()
    assert not out.messages
    assert not [e for e in out.events if isinstance(e, ParticipantStatus)]


# -- GROUP_UPDATE acks and members that are away ---------------------------------------------

UPDATE = pb.SESSION_MESSAGE_TYPE_GROUP_UPDATE


def _pending_updates(layer, sid: int) -> list:
    session = layer.session(sid)
    return [
        r
        for r in session.requests.values()
        if r.message.publish.session.session_message_type == UPDATE
    ]


def _go_away(net: Net, layer, sid: int) -> None:
    layer.update_state(sid, False, net.now)
    net.settle()
    net.layers.remove(layer)  # away and unreachable: it acks nothing


def test_leave_update_does_not_wait_for_members_that_are_away() -> None:
    """As the reference's moderator: acks come from the members it still tracks, so a member
    leaving while another is away completes at once, and the roster sent marks the away one."""
    net, (mod, p0, p1, p2), sid = _group(3, mls=False)
    _go_away(net, p2, sid)
    start = len(net.sent)
    p0.close(sid, net.now)
    net.settle()
    [update] = [m for m in net.sent[start:] if m.publish.session.session_message_type == UPDATE]
    payload = update.publish.msg.command_payload.group_update
    assert payload.op == pb.REMOVE
    status = {p.name.str_name.str_component_2: p.status for p in payload.participants}
    assert status == {"moderator": pb.ONLINE, "p0": pb.ONLINE, "p1": pb.ONLINE, "p2": pb.OFFLINE}
    assert _pending_updates(mod, sid) == []  # p1 acked; p2 (away) and p0 (leaving) not awaited
    net.advance(5.0)
    net.settle()
    assert [m for m in net.sent[start:] if m.publish.session.session_message_type == UPDATE] == [
        update
    ]  # never retransmitted
    assert p0.local.key not in p1.session(sid).roster


def test_update_with_nobody_to_wait_for_completes_at_once() -> None:
    net, (mod, p0, p1), sid = _group(2, mls=False)
    _go_away(net, p1, sid)
    start = len(net.sent)
    p0.close(sid, net.now)
    net.settle()
    assert UPDATE in _types(net, start)
    assert _pending_updates(mod, sid) == []
    assert set(mod.session(sid).roster) == {mod.local.key, p1.local.key}


def test_remove_update_awaits_the_others_only() -> None:
    """The removed member is not awaited (the reference stops tracking it before the REMOVE);
    the member that is away is not either."""
    net, (mod, p0, p1, p2, p3), sid = _group(4, mls=False)
    _go_away(net, p3, sid)
    task = mod.remove(sid, p0.local.without_id(), net.now)
    [update] = _pending_updates(mod, sid)
    assert set(update.expected) == {p1.local.key, p2.local.key}
    net.settle()
    assert TaskDone(sid, task, p0.local) in net.of("moderator", TaskDone)


def test_rejoin_update_is_acked_by_the_returning_member_not_by_those_away() -> None:
    net, (mod, _p0, p1, p2), sid = _group(3, mls=True)
    p1.update_state(sid, False, net.now)
    net.settle()
    p3 = make_layer("p3")
    net.layers.append(p3)
    mod.invite(sid, p3.local.without_id(), net.now)  # a commit p1 misses
    net.settle()
    _go_away(net, p2, sid)
    start = len(net.sent)
    task = p1.update_state(sid, True, net.now)
    net.settle()
    [update] = [m for m in net.sent[start:] if m.publish.session.session_message_type == UPDATE]
    assert update.publish.msg.command_payload.group_update.op == pb.REJOIN
    mid = update.publish.session.message_id
    ackers = {
        m.publish.header.source.str_name.str_component_2
        for m in net.sent[start:]
        if m.publish.session.message_id == mid
        and m.publish.session.session_message_type == pb.SESSION_MESSAGE_TYPE_GROUP_ACK
    }
    assert ackers == {"p0", "p1", "p3"}
    assert _pending_updates(mod, sid) == []  # p2 (away) not awaited
    assert net.of("p1", TaskDone)[-1] == TaskDone(sid, task, p1.local)
