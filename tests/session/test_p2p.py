"""Point-to-point sessions between in-memory session layers."""

from __future__ import annotations

import pytest

from slimwire.errors import SessionClosed as SessionClosedError
from slimwire.session import (
    DeliveryFailed,
    MessageDelivered,
    MessageLost,
    MessageReceived,
    ParticipantStatus,
    SessionClosed,
    SessionConfig,
    SessionEstablished,
    SessionFailed,
)
from tests.session._net import Net, make_layer


def _pair() -> tuple[Net, object, object]:
    alice, bob = make_layer("alice"), make_layer("bob")
    return Net([alice, bob]), alice, bob


def test_open_exchange_close_unreliable() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(metadata={"k": "v"}), net.now)
    net.settle()
    [est_a] = net.of("alice", SessionEstablished)
    [est_b] = net.of("bob", SessionEstablished)
    assert est_a.session_id == est_b.session_id == sid
    assert est_a.peer == bob.local
    assert est_b.peer == alice.local
    assert est_b.config.metadata == {"k": "v"}
    assert not est_b.config.reliable
    assert alice.publish(sid, b"one", now=net.now) == 1
    assert bob.publish(sid, b"back", payload_type="text/plain", metadata={"x": "y"}, now=0) == 1
    net.settle()
    [got_b] = net.of("bob", MessageReceived)
    assert got_b.message.payload == b"one"
    assert got_b.message.payload_type == "msg"
    [got_a] = net.of("alice", MessageReceived)
    assert (got_a.message.payload, got_a.message.payload_type) == (b"back", "text/plain")
    assert got_a.message.metadata == {"x": "y"}
    assert not net.of("alice", MessageDelivered)  # no acks when not reliable
    alice.close(sid, net.now)
    net.settle()
    assert net.of("alice", SessionClosed) == [SessionClosed(sid, by_peer=False)]
    assert net.of("bob", SessionClosed) == [SessionClosed(sid, by_peer=True)]
    assert not alice.sessions
    assert not bob.sessions
    with pytest.raises(SessionClosedError):
        alice.publish(sid, b"late", now=net.now)


def test_responder_leaves() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(reliable=True), net.now)
    net.settle()
    bob.close(sid, net.now)
    net.settle()
    assert net.of("bob", SessionClosed) == [SessionClosed(sid, by_peer=False)]
    assert net.of("alice", SessionClosed) == [SessionClosed(sid, by_peer=True)]


def test_reliable_acks_and_retransmission() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(reliable=True, interval=0.5), net.now)
    net.settle()
    alice.publish(sid, b"a", now=net.now)
    net.collect()
    net.drop(0)  # the MSG is lost
    net.advance(0.5)  # retransmitted
    net.settle()
    assert [e.message.payload for e in net.of("bob", MessageReceived)] == [b"a"]
    assert net.of("alice", MessageDelivered) == [MessageDelivered(sid, 1)]


def test_reliable_gap_triggers_rtx() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(reliable=True, interval=5.0), net.now)
    net.settle()
    for p in (b"1", b"2", b"3"):
        alice.publish(sid, p, now=net.now)
    net.collect()
    net.drop(1)  # lose message 2
    net.settle()  # 1 and 3 arrive; bob asks for 2 with RTX_REQUEST at once; alice replies
    assert [e.message.payload for e in net.of("bob", MessageReceived)] == [b"1", b"2", b"3"]
    kinds = [m.publish.session.session_message_type for m in net.sent]
    assert 3 in kinds  # RTX_REQUEST
    assert 4 in kinds  # RTX_REPLY


def test_gone_message_reported_lost() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(reliable=True, interval=5.0), net.now)
    net.settle()
    session = alice.session(sid)
    assert session is not None
    session.data._sent.capacity = 1  # the sender keeps only the newest message
    alice.publish(sid, b"1", now=net.now)
    alice.publish(sid, b"2", now=net.now)
    alice.publish(sid, b"3", now=net.now)
    net.collect()
    net.drop(1)  # lose 2, which the sender no longer has
    net.settle()
    assert [e.message.payload for e in net.of("bob", MessageReceived)] == [b"1", b"3"]
    assert net.of("bob", MessageLost) == [MessageLost(sid, alice.local, 2)]


def test_delivery_failed_after_retries() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(reliable=True, interval=1, max_retries=2), 0)
    net.settle()
    alice.publish(sid, b"x", now=net.now)
    net.collect()
    for _ in range(3):
        net.drop(0)
        net.advance(1.0)
    net.in_flight.clear()
    assert net.of("alice", DeliveryFailed) == [DeliveryFailed(sid, 1, (bob.local,))]
    assert not net.of("alice", MessageDelivered)


def test_discovery_without_peer_fails() -> None:
    alice = make_layer("alice")
    net = Net([alice])
    sid = alice.open(make_layer("nobody").local.without_id(), SessionConfig.p2p(), 0.0)
    net.run(until=30)
    assert net.of("alice", SessionFailed)[0].session_id == sid
    assert not alice.sessions


def test_discovery_with_wrong_secret_refused() -> None:
    from slimwire.auth import Identity, SharedSecretProvider, SharedSecretVerifier
    from slimwire.names import Name
    from slimwire.session import SessionLayer

    ident = Identity.generate("org/ns/mallory")
    mallory = SessionLayer(
        Name("org", "ns", "mallory", ident.name_id),
        SharedSecretProvider(ident, "m" * 32),
        SharedSecretVerifier("m" * 32),
    )
    bob = make_layer("bob")
    net = Net([mallory, bob])
    mallory.open(bob.local.without_id(), SessionConfig.p2p(), 0.0)
    net.run(until=30)
    assert net.of("mallory", SessionFailed)
    assert not net.of("bob", SessionEstablished)


def test_data_before_established_is_queued() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(reliable=True), net.now)
    assert alice.publish(sid, b"early", now=net.now) is None
    net.settle()
    assert [e.message.payload for e in net.of("bob", MessageReceived)] == [b"early"]


def test_heartbeats_only_when_idle() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(), net.now)
    net.settle()
    net.advance(10.0)  # set-up traffic counts: nothing sent on the first tick
    net.settle()
    before = len(net.sent)
    net.advance(10.0)
    hbs = [m for m in net.sent[before:] if m.publish.session.session_message_type == 17]
    assert len(hbs) == 2  # one each way
    assert all(m.publish.msg.command_payload.heartbeat.epoch == 2**64 - 1 for m in hbs)
    assert all(m.publish.header.HasField("e2e_header_sig") for m in hbs)
    net.settle()
    alice.publish(sid, b"traffic", now=net.now)
    net.settle()
    before = len(net.sent)
    net.advance(10.0)
    hb_src = [
        m.publish.header.source.str_name.str_component_2
        for m in net.sent[before:]
        if m.publish.session.session_message_type == 17
    ]
    assert hb_src == ["bob"]  # alice sent traffic in this interval


@pytest.mark.parametrize("reliable", [False, True])
def test_mls_p2p_encrypts_and_delivers(reliable: bool) -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(reliable=reliable, mls=True), 0)
    net.settle()
    [est] = net.of("bob", SessionEstablished)
    assert est.config.mls
    kinds = {m.publish.session.session_message_type: m for m in net.sent}
    assert kinds[7].publish.msg.command_payload.join_request.HasField("mls_settings")
    assert kinds[8].publish.msg.command_payload.join_reply.key_package
    assert kinds[12].publish.msg.command_payload.group_welcome.mls.commit_id == 1
    alice.publish(sid, b"secret words", payload_type="text/plain", now=net.now)
    bob.publish(sid, b"secret reply", now=net.now)
    net.settle()
    data = [m for m in net.sent if m.publish.session.session_message_type == 1]
    assert all(b"secret" not in m.publish.msg.app_payload.blob for m in data)
    assert all(m.publish.msg.app_payload.blob[:4] == b"\x00\x01\x00\x02" for m in data)
    assert data[0].publish.msg.app_payload.payload_type == "text/plain"  # stays in clear
    assert [e.message.payload for e in net.of("bob", MessageReceived)] == [b"secret words"]
    assert [e.message.payload for e in net.of("alice", MessageReceived)] == [b"secret reply"]


def test_mls_tampered_header_is_dropped() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(mls=True), 0)
    net.settle()
    alice.publish(sid, b"x", payload_type="a", now=net.now)
    net.collect()
    target, data = net.in_flight.pop()
    from slimwire._proto import data_plane_pb2 as pb

    msg = pb.Message.FromString(data)
    msg.publish.msg.app_payload.payload_type = "b"  # covered by the AAD
    target.receive(msg, net.now)
    net.collect()
    assert not net.of("bob", MessageReceived)


def test_silent_peer_goes_offline_and_comes_back() -> None:
    net, alice, bob = _pair()
    sid = alice.open(bob.local, SessionConfig.p2p(), net.now)
    net.settle()
    net.layers.remove(bob)  # bob hears nothing and says nothing
    for _ in range(4):
        net.advance(10.0)
        net.settle()
    assert net.of("alice", ParticipantStatus) == [ParticipantStatus(sid, bob.local, False)]
    net.layers.append(bob)
    bob.publish(sid, b"back", now=net.now)
    net.settle()
    assert net.of("alice", ParticipantStatus)[-1] == ParticipantStatus(sid, bob.local, True)
