"""``framed_outputs``: the same messages as the plain forwarder, each behind its gRPC prefix,
on every output path (fused unicast, per-message unicast, multicast, acks, peer links)."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.dataplane import ConnType, Forwarder
from slimwire.names import Name

from ._helpers import TestMac, decode, publish, subscription

ALICE = Name("org", "ns", "alice", 5)
GROUP = Name("org", "ns", "group")


def _unframe(data: bytes) -> bytes:
    flag, length = struct.unpack(">BI", data[:5])
    assert flag == 0
    assert length == len(data) - 5
    return data[5:]


def _scenario(fwd: Forwarder, plan: list[int]) -> list[tuple[int, list[bytes]]]:
    macs = [TestMac(bytes([65 + i])) for i in range(4)]
    conns = [fwd.add_connection(ConnType.EDGE, mac=m, remote=f"e{i}") for i, m in enumerate(macs)]
    peer = fwd.add_connection(ConnType.PEER, remote="p")
    fwd.receive(conns[1], subscription(ALICE, 11, mac=macs[1]))
    for c, m in zip(conns[2:], macs[2:], strict=True):
        fwd.receive(c, subscription(GROUP, 20 + c, mac=m))
    fwd.receive(peer, subscription(GROUP, 30))
    outs = fwd.take_outputs()
    batch = []
    for i, kind in enumerate(plan):
        if kind == 0:  # plain unicast: the fused path
            batch.append(publish(ALICE, mac=macs[0], payload=b"u%d" % i))
        elif kind == 1:  # multicast to two edges and a peer
            batch.append(publish(GROUP, fanout=256, mac=macs[0], payload=b"m%d" % i))
        elif kind == 2:  # recv_from set: still unicast, other layout
            batch.append(publish(ALICE, mac=macs[0], recv_from=conns[3], payload=b"r%d" % i))
        else:  # a subscription in the middle of the run
            batch.append(subscription(Name("org", "ns", "x", i), 100 + i, mac=macs[0]))
    fwd.receive_batch(conns[0], batch)
    return outs + fwd.take_outputs()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=40))
def test_framed_outputs_are_the_plain_outputs_with_prefixes(plan: list[int]) -> None:
    plain = Forwarder("n", rng=random.Random(1))
    framed = Forwarder("n", rng=random.Random(1), framed_outputs=True)
    expected = _scenario(plain, plan)
    got = _scenario(framed, plan)
    assert [cid for cid, _ in got] == [cid for cid, _ in expected]
    for (_, msgs), (_, want) in zip(got, expected, strict=True):
        assert [_unframe(m) for m in msgs] == want
    counters = [(c.msgs_out, c.bytes_out) for c in framed.connections()]
    assert counters == [(c.msgs_out, c.bytes_out) for c in plain.connections()]


def test_routes_change_inside_a_batch() -> None:
    """An unsubscribe in the middle of a received batch applies to the publishes after it."""
    fwd = Forwarder("n")
    macs = [TestMac(bytes([65 + i])) for i in range(3)]
    a, b, c = (fwd.add_connection(ConnType.EDGE, mac=m) for m in macs)
    fwd.receive(b, subscription(ALICE, 1, mac=macs[1]))
    fwd.receive(c, subscription(GROUP, 2, mac=macs[2]))
    fwd.receive(b, subscription(GROUP, 3, mac=macs[1]))
    fwd.take_outputs()
    batch = [publish(ALICE, mac=macs[0]), publish(GROUP, fanout=256, mac=macs[0])] * 3
    batch.insert(4, subscription(ALICE, 1, mac=macs[0], add=False, recv_from=b))
    batch.insert(5, subscription(GROUP, 3, mac=macs[0], add=False, recv_from=b))
    fwd.receive_batch(a, batch)
    sent = {cid: [decode(m) for m in msgs] for cid, msgs in fwd.take_outputs()}
    assert [m.subscription_ack.success for m in sent[a]] == [True, True]
    # b: 2 unicast + 2 group copies before its unsubscriptions, none after; c: all 3 group
    assert len(sent[b]) == 4
    assert len(sent[c]) == 3
