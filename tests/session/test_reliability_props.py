"""Property tests: reliable p2p delivery is exactly-once and in order over a hostile network.

hypothesis drives two session layers through an arbitrary interleaving of publishes, delivery
of any in-flight message (reordering), duplication, loss (bounded, so retries can win) and clock
jumps; afterwards the network turns honest and we require every payload to have arrived exactly
once, in order, with every message acknowledged and nothing reported lost or failed.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.session import (
    DeliveryFailed,
    MessageDelivered,
    MessageLost,
    MessageReceived,
    ReorderBuffer,
    SessionClosed,
    SessionConfig,
    SessionEstablished,
)
from slimwire.session._ids import MAX_PUBLISH_ID, next_data_id
from slimwire.session._reliability import MAX_GAP, Lost
from tests.session._net import Net, make_layer

MAX_DROPS = 8


def _network_step(net: Net, kind: str, arg: object, drops: int) -> int:
    """One hostile-network action of a run: deliver one in-flight message (any, so reordering),
    a burst, duplicate one, drop one (at most MAX_DROPS in a run, so retries can win), or move
    the clock. With nothing in flight only a tick does anything. Returns the drops so far."""
    if not net.in_flight and kind != "tick":
        return drops
    if kind == "deliver":
        net.deliver(int(arg) % len(net.in_flight))  # type: ignore[call-overload]
    elif kind == "burst":
        net.deliver_burst(int(arg))  # type: ignore[call-overload]
    elif kind == "dup":
        net.in_flight.append(net.in_flight[int(arg) % len(net.in_flight)])  # type: ignore[call-overload]
    elif kind == "drop":
        if drops < MAX_DROPS:
            drops += 1
            net.drop(int(arg) % len(net.in_flight))  # type: ignore[call-overload]
    else:
        net.advance(float(arg))  # type: ignore[arg-type]
    return drops


action = st.one_of(
    st.tuples(st.just("pub"), st.sampled_from(["alice", "bob"])),
    st.tuples(st.just("deliver"), st.integers(0, 30)),
    st.tuples(st.just("drop"), st.integers(0, 30)),
    st.tuples(st.just("dup"), st.integers(0, 30)),
    st.tuples(st.just("tick"), st.sampled_from([0.3, 1.0, 2.5])),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, max_size=70), st.booleans())
def test_reliable_exactly_once_in_order(
    actions: list[tuple[str, object]], clean_setup: bool
) -> None:
    alice, bob = make_layer("alice"), make_layer("bob")
    layers = {"alice": alice, "bob": bob}
    net = Net([alice, bob])
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(reliable=True, max_retries=20), 0)
    net.collect()
    if clean_setup:  # half the runs aim their losses at data rather than at the set-up
        net.settle()
    published: dict[str, list[bytes]] = {"alice": [], "bob": []}
    drops = 0
    counter = 0
    for kind, arg in actions:
        if kind == "pub":
            side = str(arg)
            session = layers[side].session(sid)
            if session is None or (side == "bob" and not layers["bob"].established(sid)):
                continue
            counter += 1
            payload = f"{side}-{counter}".encode()
            layers[side].publish(sid, payload, now=net.now)
            published[side].append(payload)
            net.collect()
        else:
            drops = _network_step(net, kind, arg, drops)
    net.run(until=120)

    assert net.of("alice", SessionEstablished)
    assert net.of("bob", SessionEstablished)
    for receiver, sender in (("bob", "alice"), ("alice", "bob")):
        got = [e.message.payload for e in net.of(receiver, MessageReceived)]
        assert got == published[sender]
        assert not net.of(receiver, MessageLost)
        assert not net.of(sender, DeliveryFailed)
        acked = sorted(e.message_id for e in net.of(sender, MessageDelivered))
        assert acked == list(range(1, len(published[sender]) + 1))

    alice.close(sid, net.now)
    net.run(until=30)
    assert net.of("alice", SessionClosed)
    assert net.of("bob", SessionClosed)


burst_action = st.one_of(
    st.tuples(st.just("pub"), st.sampled_from(["alice", "bob"])),
    st.tuples(st.just("pubs"), st.integers(2, 12)),
    st.tuples(st.just("burst"), st.integers(1, 30)),
    st.tuples(st.just("deliver"), st.integers(0, 30)),
    st.tuples(st.just("drop"), st.integers(0, 30)),
    st.tuples(st.just("dup"), st.integers(0, 30)),
    st.tuples(st.just("tick"), st.sampled_from([0.3, 1.0, 2.5])),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(burst_action, max_size=70), st.booleans(), st.booleans())
def test_reliable_with_ranged_acks_exactly_once_in_order(
    actions: list[tuple[str, object]], alice_ranges: bool, bob_ranges: bool
) -> None:
    """The same guarantees when receivers read several messages before their outputs are
    taken (``burst``: held acks leave as ranges), with either side offering ranged acks or
    not; and a ranged ack only ever goes to a side that offered to take them."""
    from slimwire.names import Name
    from slimwire.session._wire import ACK_FROM

    alice = make_layer("alice", ack_ranges=alice_ranges)
    bob = make_layer("bob", ack_ranges=bob_ranges)
    layers = {"alice": alice, "bob": bob}
    net = Net([alice, bob])
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(reliable=True, max_retries=20), 0)
    net.settle()
    published: dict[str, list[bytes]] = {"alice": [], "bob": []}
    drops = 0
    counter = 0
    for kind, arg in actions:
        if kind in ("pub", "pubs"):
            sides = [str(arg)] if kind == "pub" else ["alice"] * int(arg)  # type: ignore[call-overload]
            for side in sides:
                counter += 1
                payload = f"{side}-{counter}".encode()
                layers[side].publish(sid, payload, now=net.now)
                published[side].append(payload)
            net.collect()
        else:
            drops = _network_step(net, kind, arg, drops)
    if not any(kind in ("drop", "tick") for kind, _ in actions):
        # nothing lost and no timer fired: the acks alone, ranged or not, complete everything
        net.settle()
        for sender in ("alice", "bob"):
            acked = sorted(e.message_id for e in net.of(sender, MessageDelivered))
            assert acked == list(range(1, len(published[sender]) + 1))
    net.run(until=120)

    for receiver, sender in (("bob", "alice"), ("alice", "bob")):
        got = [e.message.payload for e in net.of(receiver, MessageReceived)]
        assert got == published[sender]
        assert not net.of(receiver, MessageLost)
        assert not net.of(sender, DeliveryFailed)
        acked = sorted(e.message_id for e in net.of(sender, MessageDelivered))
        assert acked == list(range(1, len(published[sender]) + 1))
    offers = {"alice": alice_ranges, "bob": bob_ranges}
    for msg in net.sent:
        if ACK_FROM in msg.metadata:
            to = Name.from_proto(msg.publish.header.destination)
            assert offers["alice" if to == alice.local else "bob"]
            assert msg.publish.session.session_message_type == pb.SESSION_MESSAGE_TYPE_MSG_ACK

    alice.close(sid, net.now)
    net.run(until=30)
    assert net.of("alice", SessionClosed)
    assert net.of("bob", SessionClosed)


@given(
    st.integers(0, MAX_PUBLISH_ID),
    st.lists(st.integers(0, 40), min_size=1, max_size=40),
    st.sets(st.integers(0, 40), max_size=10),
)
def test_reorder_buffer_any_permutation(start: int, order: list[int], lost: set[int]) -> None:
    """Whatever order (with duplicates) ids arrive in, delivery is the id sequence, in order."""
    ids = []
    cur = start
    for _ in range(41):
        ids.append(cur)
        cur = next_data_id(cur)
    buf: ReorderBuffer[int] = ReorderBuffer(last_delivered=ids[0])
    out: list[int | Lost] = []
    top = max(order)
    for off in order:
        if off == 0 or off in lost:
            continue
        delivered, _ = buf.on_message(ids[off], off)
        out.extend(delivered)
    for off in sorted(lost):
        if off > 0:
            out.extend(buf.on_lost(ids[off]))
    # everything received or declared lost up to the highest contiguous point is in order
    seen: list[int] = []
    for x in out:
        if isinstance(x, Lost):
            seen.extend(ids[ids.index(x.message_id) + k] for k in range(x.span))
        else:
            seen.append(ids[x])
    assert seen == ids[1 : 1 + len(seen)]
    received = {o for o in order if o not in lost and o > 0}
    assert {x for x in out if not isinstance(x, Lost)} <= received
    assert len(seen) == len(set(seen))
    assert top >= 0


@given(st.integers(0, MAX_PUBLISH_ID), st.integers(MAX_GAP + 3, MAX_PUBLISH_ID // 2))
def test_reorder_buffer_huge_jump_is_bounded(start: int, jump: int) -> None:
    """A message far ahead costs O(MAX_GAP), not O(jump): the skipped ids are one lost range,
    held messages inside it are still delivered in order, the rest of the window is requested."""
    buf: ReorderBuffer[str] = ReorderBuffer(last_delivered=start)
    held_id = next_data_id(next_data_id(start))  # start+2 arrives early and waits
    assert buf.on_message(held_id, "held") == ([], [next_data_id(start)])
    far = (start + jump) % (MAX_PUBLISH_ID + 1)
    out, requests = buf.on_message(far, "far")
    assert len(requests) <= MAX_GAP
    assert out[0] == Lost(next_data_id(start), 1)
    assert out[1] == "held"
    assert all(isinstance(x, Lost) for x in out[2:])
    assert sum(x.span for x in out if isinstance(x, Lost)) + 1 + len(requests) == jump - 1


group_action = st.one_of(
    st.tuples(st.just("pub"), st.sampled_from(["moderator", "p0", "p1"])),
    st.tuples(st.just("deliver"), st.integers(0, 60)),
    st.tuples(st.just("drop"), st.integers(0, 60)),
    st.tuples(st.just("dup"), st.integers(0, 60)),
    st.tuples(st.just("tick"), st.sampled_from([0.3, 1.0, 2.5])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(group_action, max_size=80))
def test_group_reliable_exactly_once_in_order(actions: list[tuple[str, object]]) -> None:
    """Three members, all sending, over a lossy, reordering, duplicating network.

    The set-up and each member's first message from each sender travel losslessly: a member's
    first message from a source sets its baseline (it may have joined a running stream, as in
    the reference), so only later losses are recoverable by design."""
    from slimwire.names import Name

    mod, p0, p1 = make_layer("moderator"), make_layer("p0"), make_layer("p1")
    layers = {"moderator": mod, "p0": p0, "p1": p1}
    net = Net([mod, p0, p1])
    cfg = SessionConfig.group(reliable=True, max_retries=25)
    sid = mod.create_group(Name("org", "grp", "chat"), cfg, 0.0)
    mod.invite(sid, p0.local.without_id(), 0.0)
    net.settle()
    mod.invite(sid, p1.local.without_id(), 0.0)
    net.settle()
    published: dict[str, list[bytes]] = {name: [] for name in layers}
    for name, layer in layers.items():  # the lossless first message of every sender
        payload = f"{name}-0".encode()
        layer.publish(sid, payload, now=net.now)
        published[name].append(payload)
    net.settle()
    drops = 0
    counter = 0
    for kind, arg in actions:
        if kind == "pub":
            counter += 1
            payload = f"{arg}-{counter}".encode()
            layers[str(arg)].publish(sid, payload, now=net.now)
            published[str(arg)].append(payload)
            net.collect()
        else:
            drops = _network_step(net, kind, arg, drops)
    net.run(until=200)
    for receiver in layers:
        got = [e.message for e in net.of(receiver, MessageReceived)]
        for sender, sender_layer in layers.items():
            if sender == receiver:
                continue
            from_sender = [m.payload for m in got if m.source == sender_layer.local]
            assert from_sender == published[sender], (receiver, sender)
        assert not net.of(receiver, MessageLost)
        assert not net.of(receiver, DeliveryFailed)
        acked = sorted(e.message_id for e in net.of(receiver, MessageDelivered))
        assert acked == list(range(1, len(published[receiver]) + 1))
