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
