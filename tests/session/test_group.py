"""Group sessions between in-memory session layers: invite, data, remove, leave, close."""

from __future__ import annotations

from slimwire.names import Name, channel_ids
from slimwire.session import (
    MAX_PUBLISH_ID,
    GroupSession,
    MessageDelivered,
    MessageReceived,
    ParticipantJoined,
    ParticipantLeft,
    SessionClosed,
    SessionConfig,
    SessionEstablished,
    SubscriptionChange,
    TaskDone,
)
from tests.session._net import Net, make_layer

CHANNEL = Name("org", "grp", "chat")


def _group(n: int, *, reliable: bool = True) -> tuple[Net, list, int]:
    mod = make_layer("moderator")
    members = [make_layer(f"p{i}") for i in range(n)]
    net = Net([mod, *members])
    sid = mod.create_group(CHANNEL, SessionConfig.group(reliable=reliable), net.now)
    for m in members:
        mod.invite(sid, m.local.without_id(), net.now)
    net.settle()
    return net, [mod, *members], sid


def _payloads(net: Net, who: str) -> list[bytes]:
    return [e.message.payload for e in net.of(who, MessageReceived)]


def test_channel_names_and_setup() -> None:
    net, (mod, p0, p1, p2), sid = _group(3)
    session = mod.session(sid)
    assert isinstance(session, GroupSession)
    data_id, ctrl_id = channel_ids(mod._provider.identity.token_id, CHANNEL)
    assert session.channel == CHANNEL.with_id(data_id)
    assert session.control == CHANNEL.with_id(ctrl_id)
    done = net.of("moderator", TaskDone)
    assert [d.error for d in done] == ["", "", ""]
    assert [d.participant for d in done] == [p0.local, p1.local, p2.local]
    for m in (p0, p1, p2):
        [est] = net.of(m.local.service, SessionEstablished)
        assert est.session_id == sid
        assert not est.initiator
        theirs = m.session(sid)
        assert isinstance(theirs, GroupSession)
        assert set(theirs.roster) == {x.local.key for x in (mod, p0, p1, p2)}
        subs = [e for e in net.of(m.local.service, SubscriptionChange) if e.subscribe]
        assert {e.name for e in subs} == {session.channel, session.control}
    # p0 learnt about p1 and p2 through GROUP_UPDATE broadcasts
    assert [e.participant for e in net.of("p0", ParticipantJoined)] == [p1.local, p2.local]
    updates = [m for m in net.sent if m.publish.session.session_message_type == 11]
    assert len(updates) == 2  # roster > 2 only for the 2nd and 3rd invites
    for u in updates:
        assert u.publish.header.fanout == 256
        assert u.publish.header.destination.name.name_id.id_1 == ctrl_id & (2**64 - 1)
        assert u.publish.session.session_type == 2


def test_all_to_all_reliable_data() -> None:
    net, layers, sid = _group(3)
    for layer in layers:
        layer.publish(sid, layer.local.service.encode(), now=net.now)
    net.settle()
    names = [x.local.service for x in layers]
    for who in names:
        assert sorted(_payloads(net, who)) == sorted(n.encode() for n in names if n != who)
        assert net.of(who, MessageDelivered)  # every member acked every sender
    msgs = [m for m in net.sent if m.publish.session.session_message_type == 1]
    assert all(m.publish.header.fanout == 256 for m in msgs)


def test_lossy_group_delivery_recovers() -> None:
    """A lost copy of message 3 (to p0) and a lost ack: both recovered.

    (A member's first message from a source sets its baseline, as in the reference: a member
    may join a running stream, so a loss of the very first message is not recoverable.)"""
    net, (mod, _p0, _p1), sid = _group(2)
    for i in range(5):
        mod.publish(sid, b"%d" % i, now=net.now)
    net.collect()
    # in flight: message k to p0 at 2k, to p1 at 2k+1
    assert net.in_flight[4][0].local.service == "p0"
    net.drop(4)
    net.deliver(0)  # p0 gets message 1 and acks it ...
    net.collect()
    net.drop(len(net.in_flight) - 1)  # ... but the ack is lost: resent after the interval
    net.run(until=30)
    assert _payloads(net, "p0") == [b"%d" % i for i in range(5)]
    assert _payloads(net, "p1") == [b"%d" % i for i in range(5)]
    assert sorted(e.message_id for e in net.of("moderator", MessageDelivered)) == [1, 2, 3, 4, 5]


def test_remove_member() -> None:
    net, (mod, p0, p1, p2), sid = _group(3)
    task = mod.remove(sid, p0.local.without_id(), net.now)
    net.settle()
    assert TaskDone(sid, task, p0.local) in net.of("moderator", TaskDone)
    assert net.of("p0", SessionClosed) == [SessionClosed(sid, by_peer=True)]
    assert [e.subscribe for e in net.of("p0", SubscriptionChange)][-2:] == [False, False]
    for m in (p1, p2):
        assert ParticipantLeft(sid, p0.local) in net.of(m.local.service, ParticipantLeft)
        s = m.session(sid)
        assert s is not None
        assert p0.local.key not in s.roster
    mod.publish(sid, b"after", now=net.now)
    net.settle()
    assert b"after" not in _payloads(net, "p0")
    assert b"after" in _payloads(net, "p1")


def test_member_leaves_and_moderator_closes() -> None:
    net, (mod, _p0, p1), sid = _group(2)
    p1.close(sid, net.now)
    net.settle()
    assert net.of("p1", SessionClosed) == [SessionClosed(sid, by_peer=False)]
    assert ParticipantLeft(sid, p1.local) in net.of("moderator", ParticipantLeft)
    mod.close(sid, net.now)
    net.settle()
    assert net.of("moderator", SessionClosed) == [SessionClosed(sid, by_peer=False)]
    assert net.of("p0", SessionClosed) == [SessionClosed(sid, by_peer=True)]
    closes = [m for m in net.sent if m.publish.session.session_message_type == 13]
    assert len(closes) == 1
    members = {
        n.str_name.str_component_2
        for n in closes[0].publish.msg.command_payload.group_close.participants
    }
    assert members == {"moderator", "p0"}


def test_invite_nobody_fails_and_next_task_runs() -> None:
    net, (mod, _p0), sid = _group(1)
    mod.invite(sid, Name("org", "ns", "ghost"), net.now)
    later = make_layer("late")
    net.layers.append(later)
    mod.invite(sid, later.local.without_id(), net.now)
    net.run(until=30)
    done = net.of("moderator", TaskDone)
    assert done[-2].error
    assert done[-1].participant == later.local
    assert net.of("late", SessionEstablished)


def test_publish_to_reaches_one_member_unsequenced() -> None:
    net, (mod, p0, _p1), sid = _group(2)
    mod.publish(sid, b"question", now=net.now)
    net.settle()
    mid = p0.publish_to(sid, mod.local, b"answer", now=net.now)
    assert mid is not None
    assert mid > MAX_PUBLISH_ID
    net.settle()
    [got] = [e.message for e in net.of("moderator", MessageReceived)]
    assert got.payload == b"answer"
    assert got.metadata == {}  # PUBLISH_TO is internal
    assert b"answer" not in _payloads(net, "p1")
    direct = [m for m in net.sent if m.publish.session.message_id == mid]
    assert direct[0].metadata["PUBLISH_TO"] == "TRUE"
    assert direct[0].publish.header.fanout == 1
    acks = [m for m in direct if m.publish.session.session_message_type == 2]
    assert acks
    assert acks[0].metadata["PUBLISH_TO"] == "TRUE"
    assert MessageDelivered(sid, mid) in net.of("p0", MessageDelivered)
    # the ordered stream is untouched: the next sequenced message is still 1 for p0
    assert p0.publish(sid, b"next", now=net.now) == 1


def test_moderator_drops_a_silent_member() -> None:
    """As the reference: a member that misses three heartbeats is removed by the moderator,
    which tells the others with a REMOVE update (and sends the silent one nothing)."""
    net, (mod, _p0, p1), sid = _group(2, reliable=False)
    net.layers.remove(p1)  # p1 is gone for good
    for _ in range(4):
        net.advance(10.0)
        net.settle()
    session = mod.session(sid)
    assert session is not None
    assert p1.local.key not in session.roster
    assert ParticipantLeft(sid, p1.local) in net.of("moderator", ParticipantLeft)
    assert ParticipantLeft(sid, p1.local) in net.of("p0", ParticipantLeft)  # told by the update
    mod.publish(sid, b"still here", now=net.now)
    net.settle()
    assert b"still here" in _payloads(net, "p0")
