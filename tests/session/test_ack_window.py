"""Reliable sending keeps one retransmission timer for the whole window, and every message still
gets its own schedule: resent one interval after it was (re)sent, failed after its retries."""

from __future__ import annotations

from slimwire._proto import data_plane_pb2 as pb
from slimwire.session import DeliveryFailed, MessageDelivered, SessionConfig
from tests.session._net import Net, make_layer

MSG = pb.SESSION_MESSAGE_TYPE_MSG


def _msg_ids(net: Net) -> list[int]:
    """The MSGs in flight (alice -> bob), dropped: this peer never answers data."""
    ids = []
    for _target, data in net.in_flight:
        pub = pb.Message.FromString(data).publish
        if pub.session.session_message_type == MSG:
            ids.append(pub.session.message_id)
    net.in_flight.clear()
    return sorted(ids)


def test_each_message_keeps_its_own_deadline_under_one_timer() -> None:
    alice, bob = make_layer("alice"), make_layer("bob")
    net = Net([alice, bob])
    config = SessionConfig.p2p(reliable=True, interval=1.0, max_retries=1)
    sid = alice.open(bob.local, config, net.now)
    net.settle()
    timers_before = len(alice.timers)
    start = net.now
    for i in range(3):  # ids 1, 2, 3 sent at +0.0, +0.3, +0.6
        net.now = start + 0.3 * i
        alice.publish(sid, b"x", now=net.now)
        net.collect()
    assert _msg_ids(net) == [1, 2, 3]
    assert len(alice.timers) == timers_before + 1  # one window timer, not one per message
    resent = {}
    for step in (1.0, 1.3, 1.6, 2.0, 2.3, 2.6):
        net.now = start + step
        alice.handle_timeout(net.now)
        net.collect()
        resent[step] = _msg_ids(net)
    assert resent == {1.0: [1], 1.3: [2], 1.6: [3], 2.0: [], 2.3: [], 2.6: []}
    failed = net.of("alice", DeliveryFailed)
    assert [f.message_id for f in failed] == [1, 2, 3]
    assert all(f.session_id == sid and f.missing == (bob.local,) for f in failed)
    assert len(alice.timers) == timers_before  # nothing left to wait for


def test_acked_messages_leave_the_window_and_the_rest_still_retry() -> None:
    alice, bob = make_layer("alice"), make_layer("bob")
    net = Net([alice, bob])
    config = SessionConfig.p2p(reliable=True, interval=1.0, max_retries=3)
    sid = alice.open(bob.local, config, net.now)
    net.settle()
    start = net.now
    for _ in range(4):
        alice.publish(sid, b"x", now=net.now)
    net.collect()
    # only message 1 reaches bob (its ack comes back); 2-4 are lost
    first = net.in_flight.pop(0)
    assert pb.Message.FromString(first[1]).publish.session.message_id == 1
    net.in_flight.clear()
    net.in_flight.append(first)
    net.settle()
    assert [e.message_id for e in net.of("alice", MessageDelivered)] == [1]
    net.now = start + 1.0
    alice.handle_timeout(net.now)
    net.collect()
    assert _msg_ids(net) == [2, 3, 4]
