"""Ranged acks: one MSG_ACK per run of consecutive ids, only to a peer that offered to take them.

A reliable point-to-point session between two slimwire layers offers ``ACK_RANGES`` on the
JOIN_REPLY and the GROUP_WELCOME; a receiver whose peer offered acks every run of consecutive
ids it received before its outputs were taken with one MSG_ACK (``ACK_FROM`` = the run's first
id, ``message_id`` = its last). A peer that did not offer (the reference, or a layer built with
``ack_ranges=False``) gets one plain MSG_ACK per message, as before.
"""

from __future__ import annotations

import pytest

from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name
from slimwire.session import (
    DeliveryFailed,
    MessageDelivered,
    MessageReceived,
    SessionConfig,
    SessionLayer,
)
from slimwire.session._data import MAX_ACK_RUN
from slimwire.session._ids import MAX_PUBLISH_ID
from slimwire.session._wire import ACK_FROM, ACK_RANGES, build_publish
from tests.session._net import Net, make_layer

MSG = pb.SESSION_MESSAGE_TYPE_MSG
MSG_ACK = pb.SESSION_MESSAGE_TYPE_MSG_ACK
RTX_REQUEST = pb.SESSION_MESSAGE_TYPE_RTX_REQUEST
LEAVE_REQUEST = pb.SESSION_MESSAGE_TYPE_LEAVE_REQUEST


def _session(
    alice_ranges: bool = True, bob_ranges: bool = True, *, interval: float = 1.0
) -> tuple[Net, SessionLayer, SessionLayer, int]:
    alice = make_layer("alice", ack_ranges=alice_ranges)
    bob = make_layer("bob", ack_ranges=bob_ranges)
    net = Net([alice, bob])
    config = SessionConfig.p2p(reliable=True, interval=interval, max_retries=3)
    sid = alice.open(bob.local.without_id(), config, net.now)
    net.settle()
    return net, alice, bob, sid


def _acks(messages: list[pb.Message]) -> list[tuple[str | None, int]]:
    """(ACK_FROM or None, message_id) of every MSG_ACK, in order."""
    return [
        (m.metadata.get(ACK_FROM), m.publish.session.message_id)
        for m in messages
        if m.publish.session.session_message_type == MSG_ACK
    ]


def _publish(net: Net, layer: SessionLayer, sid: int, count: int) -> list[bytes]:
    """``count`` MSGs from ``layer``, taken from the network as raw bytes (nothing delivered)."""
    for i in range(count):
        layer.publish(sid, b"m%d" % i, now=net.now)
    out = layer.take()
    return [m.SerializeToString() for m in out.messages]


def test_a_burst_is_acked_by_one_ranged_ack() -> None:
    net, alice, bob, sid = _session()
    for raw in _publish(net, alice, sid, 40):
        bob.receive(pb.Message.FromString(raw), net.now)
    out = bob.take()
    assert _acks(out.messages) == [("1", 40)]
    assert [e.message.message_id for e in out.events if isinstance(e, MessageReceived)] == list(
        range(1, 41)
    )
    for ack in out.messages:
        alice.receive(pb.Message.FromString(ack.SerializeToString()), net.now)
    delivered = [e.message_id for e in alice.take().events if isinstance(e, MessageDelivered)]
    assert delivered == list(range(1, 41))
    session = alice.session(sid)
    assert session is not None
    assert session.data.unacked == 0


def test_the_offer_travels_on_join_reply_and_welcome_only() -> None:
    alice = make_layer("alice")
    bob = make_layer("bob")
    net = Net([alice, bob])
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(reliable=True), net.now)
    net.settle()
    offered = sorted(
        m.publish.session.session_message_type for m in net.sent if ACK_RANGES in m.metadata
    )
    assert offered == sorted(
        [pb.SESSION_MESSAGE_TYPE_JOIN_REPLY, pb.SESSION_MESSAGE_TYPE_GROUP_WELCOME]
    )
    for layer in (alice, bob):
        session = layer.session(sid)
        assert session is not None
        assert session.data.batch_acks
        assert ACK_RANGES not in session.config.metadata  # never shown to the user


def test_best_effort_sessions_offer_nothing() -> None:
    alice, bob = make_layer("alice"), make_layer("bob")
    net = Net([alice, bob])
    alice.open(bob.local.without_id(), SessionConfig.p2p(), net.now)
    net.settle()
    assert not [m for m in net.sent if ACK_RANGES in m.metadata]


@pytest.mark.parametrize(("alice_ranges", "bob_ranges"), [(False, True), (True, False)])
def test_a_peer_without_the_offer_gets_one_ack_per_message(
    alice_ranges: bool, bob_ranges: bool
) -> None:
    """Either side off (a reference peer never offers): plain acks in both directions."""
    net, alice, bob, sid = _session(alice_ranges, bob_ranges)
    for raw in _publish(net, alice, sid, 10):
        bob.receive(pb.Message.FromString(raw), net.now)
    assert _acks(bob.take().messages) == [(None, i) for i in range(1, 11)]
    for raw in _publish(net, bob, sid, 10):
        alice.receive(pb.Message.FromString(raw), net.now)
    assert _acks(alice.take().messages) == [(None, i) for i in range(1, 11)]
    off = alice if not alice_ranges else bob
    offered_by = {
        Name.from_proto(m.publish.header.source) for m in net.sent if ACK_RANGES in m.metadata
    }
    assert off.local not in offered_by
    assert len(offered_by) == 1  # the other side still offers; it is just never taken up


def test_gaps_split_runs_and_acks_precede_the_rtx_request() -> None:
    """Ids 1 2 4 5 (3 lost) in one read: every received id acked once, none that was not,
    and each ack leaves before anything the session sends after it."""
    net, alice, bob, sid = _session()
    raws = _publish(net, alice, sid, 5)
    for raw in raws[:2] + raws[3:]:
        bob.receive(pb.Message.FromString(raw), net.now)
    out = bob.take().messages
    kinds = [m.publish.session.session_message_type for m in out]
    acked: list[int] = []
    for first, last in _acks(out):
        acked.extend(range(int(first) if first else last, last + 1))
    assert sorted(acked) == [1, 2, 4, 5]
    rtx = kinds.index(RTX_REQUEST)
    assert out[rtx].publish.session.message_id == 3
    assert MSG_ACK in kinds[:rtx]  # the run 1-2 went out before the request
    bob.receive(pb.Message.FromString(raws[2]), net.now)  # the retransmission arrives
    assert _acks(bob.take().messages) == [(None, 3)]


def test_held_acks_leave_before_a_close() -> None:
    """The responder reads a burst and closes before its outputs are taken: the acks still go
    first, so the sender completes every message before it sees the session end."""
    net, alice, bob, sid = _session()
    for raw in _publish(net, alice, sid, 5):
        bob.receive(pb.Message.FromString(raw), net.now)
    bob.close(sid, net.now)
    out = bob.take().messages
    kinds = [m.publish.session.session_message_type for m in out]
    assert kinds == [MSG_ACK, LEAVE_REQUEST]
    assert _acks(out) == [("1", 5)]


def test_runs_are_bounded() -> None:
    net, alice, bob, sid = _session(interval=100.0)
    count = MAX_ACK_RUN + 10
    for raw in _publish(net, alice, sid, count):
        bob.receive(pb.Message.FromString(raw), net.now)
    assert _acks(bob.take().messages) == [("1", MAX_ACK_RUN), (str(MAX_ACK_RUN + 1), count)]


def _ack_from_bob(bob: SessionLayer, alice: SessionLayer, sid: int, first: str, last: int) -> bytes:
    ack = build_publish(
        bob.local,
        alice.local,
        pb.SESSION_TYPE_POINT_TO_POINT,
        MSG_ACK,
        session_id=sid,
        message_id=last,
        metadata={ACK_FROM: first},
    )
    ack.publish.header.identity = "token"
    return ack.SerializeToString()


@pytest.mark.parametrize(
    ("first", "acked"),
    [
        ("2", [2, 3, 4]),  # a well-formed range
        ("4", [4]),  # a range of one
        ("abc", [4]),  # malformed: the reference's reading, an ack of message_id
        ("-1", [4]),
        ("99999999999", [4]),
        ("5", [4]),  # "from" after "to": a range wrapping the whole id space, refused
    ],
)
def test_a_sender_reads_ranges_strictly(first: str, acked: list[int]) -> None:
    net, alice, bob, sid = _session(interval=100.0)
    _publish(net, alice, sid, 6)  # ids 1-6 wait for their acks; the MSGs are dropped
    alice.receive(pb.Message.FromString(_ack_from_bob(bob, alice, sid, first, 4)), net.now)
    delivered = [e.message_id for e in alice.take().events if isinstance(e, MessageDelivered)]
    assert delivered == acked


def test_a_range_wraps_with_the_id_space() -> None:
    net, alice, bob, sid = _session(interval=100.0)
    session = alice.session(sid)
    assert session is not None
    session.data._next_id = MAX_PUBLISH_ID - 2  # the next ids: MAX-1, MAX, 0, 1
    _publish(net, alice, sid, 4)
    raw = _ack_from_bob(bob, alice, sid, str(MAX_PUBLISH_ID - 1), 1)
    alice.receive(pb.Message.FromString(raw), net.now)
    delivered = [e.message_id for e in alice.take().events if isinstance(e, MessageDelivered)]
    assert delivered == [MAX_PUBLISH_ID - 1, MAX_PUBLISH_ID, 0, 1]


def test_a_lost_ranged_ack_is_repaired_by_retransmission() -> None:
    net, alice, bob, sid = _session(interval=1.0)
    for raw in _publish(net, alice, sid, 8):
        bob.receive(pb.Message.FromString(raw), net.now)
    bob.take()  # the ranged ack is lost
    net.advance(1.0)  # alice resends all eight; bob acks the duplicates again
    net.run(until=10)
    delivered = sorted(e.message_id for e in net.of("alice", MessageDelivered))
    assert delivered == list(range(1, 9))
    assert not net.of("alice", DeliveryFailed)
    assert not net.of("bob", MessageReceived)  # the resent copies are not delivered twice


def test_ranged_acks_in_an_mls_session() -> None:
    """MLS seals data blobs only; the offer rides on signed control messages (the signature
    covers the header, not the metadata) and the ranged ack is a plain, unsealed MSG_ACK."""
    alice, bob = make_layer("alice"), make_layer("bob")
    net = Net([alice, bob])
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(reliable=True, mls=True), 0)
    net.settle()
    for raw in _publish(net, alice, sid, 12):
        bob.receive(pb.Message.FromString(raw), net.now)
    out = bob.take()
    assert _acks(out.messages) == [("1", 12)]
    got = [e.message.payload for e in out.events if isinstance(e, MessageReceived)]
    assert got == [b"m%d" % i for i in range(12)]
    for ack in out.messages:
        alice.receive(pb.Message.FromString(ack.SerializeToString()), net.now)
    delivered = [e.message_id for e in alice.take().events if isinstance(e, MessageDelivered)]
    assert delivered == list(range(1, 13))
