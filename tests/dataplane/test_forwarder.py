"""The forwarding rules of slim-wire.md §2.5-§2.6, on the sans-IO core."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.dataplane import ConnState, ConnType, DropReason, Forwarder, RouteKey
from slimwire.link import HeaderMac
from slimwire.names import NULL_ID, Name

from ._helpers import TestMac, decode, publish, subscription

ALICE = Name("org", "ns", "alice", 5)
SVC = Name("org", "ns", "svc")


def outputs(fwd: Forwarder) -> dict[int, list[pb.Message]]:
    return {cid: [decode(d) for d in batch] for cid, batch in fwd.take_outputs()}


def edge(fwd: Forwarder, key: bytes = b"k") -> tuple[int, HeaderMac]:
    mac = TestMac(key)
    return fwd.add_connection(ConnType.EDGE, mac=mac, remote=f"edge-{key!r}"), mac


def subscribe(fwd: Forwarder, conn: int, mac: HeaderMac, name: Name, sid: int) -> None:
    fwd.receive(conn, subscription(name, sid, mac=mac))
    out = outputs(fwd)
    assert out[conn][0].subscription_ack.subscription_id == sid
    assert out[conn][0].subscription_ack.success


def test_unicast_publish_is_resigned_ttl_decremented_and_flags_cleared() -> None:
    fwd = Forwarder("n1")
    a, amac = edge(fwd, b"a")
    b, bmac = edge(fwd, b"b")
    subscribe(fwd, b, bmac, ALICE, 77)
    fwd.receive(a, publish(ALICE, mac=amac, recv_from=b))
    out = outputs(fwd)
    assert list(out) == [b]
    (msg,) = out[b]
    h = msg.publish.header
    assert h.ttl == 7
    assert h.incoming_conn == a
    assert not h.HasField("recv_from")
    assert not h.HasField("forward_to")
    assert bmac.verify(h)
    assert not amac.verify(h)
    assert msg.publish.msg.app_payload.blob == b"hi"


def test_subscription_ack_goes_to_arrival_conn_and_only_for_nonzero_id() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd)
    fwd.receive(a, subscription(ALICE, 0, mac=amac))
    assert outputs(fwd) == {}
    assert len(fwd.table) == 1


def test_bad_and_missing_mac_are_dropped_and_counted() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd, b"a")
    b, bmac = edge(fwd, b"b")
    subscribe(fwd, b, bmac, ALICE, 1)
    fwd.receive(a, publish(ALICE, mac=TestMac(b"wrong")))
    fwd.receive(a, publish(ALICE))
    fwd.receive(a, subscription(ALICE, 9))  # strict: a subscribe needs a tag too
    assert outputs(fwd) == {}
    drops = {c.conn_id: c.drops for c in fwd.connections()}[a]
    assert drops == {DropReason.BAD_MAC: 1, DropReason.MISSING_MAC: 2}
    fwd.receive(a, publish(ALICE, mac=amac))
    assert list(outputs(fwd)) == [b]


def test_non_strict_link_accepts_untagged_subscribe() -> None:
    fwd = Forwarder()
    a = fwd.add_connection(ConnType.EDGE, mac=None, require_mac=False)
    fwd.receive(a, subscription(ALICE, 3))
    assert outputs(fwd)[a][0].subscription_ack.success
    # a tagged publish before a key exists is refused
    fwd.receive(a, publish(ALICE, mac=TestMac(b"x")))
    assert fwd.connections()[0].drops == {DropReason.BAD_MAC: 1}


def test_repeated_bad_macs_close_the_link() -> None:
    fwd = Forwarder(bad_mac_limit=3)
    a, _ = edge(fwd)
    fwd.receive_batch(a, [publish(ALICE, mac=TestMac(b"x"))] * 5)
    assert fwd.take_closes() == [(a, "3 messages in a row failed the header MAC check")]
    assert fwd.connections()[0].drops == {DropReason.BAD_MAC: 3}


def test_ttl_expiry_and_local_exemption() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd, b"a")
    b, bmac = edge(fwd, b"b")
    loc = fwd.add_connection(ConnType.LOCAL)
    subscribe(fwd, b, bmac, ALICE, 1)
    fwd.receive(a, publish(ALICE, mac=amac, ttl=1))
    fwd.receive(a, publish(ALICE, mac=amac, ttl=0))
    assert outputs(fwd) == {}
    assert {c.conn_id: c.drops for c in fwd.connections()}[a] == {DropReason.TTL_EXPIRED: 2}
    fwd.receive(loc, publish(ALICE, ttl=1))  # local apps are not decremented
    (msg,) = outputs(fwd)[b]
    assert msg.publish.header.ttl == 1


def test_never_back_to_incoming_and_no_match_is_counted() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd)
    subscribe(fwd, a, amac, ALICE, 1)
    fwd.receive(a, publish(ALICE, mac=amac))
    assert outputs(fwd) == {}
    assert fwd.connections()[0].drops == {DropReason.NO_ROUTE: 1}


def test_anycast_round_robin_and_multicast() -> None:
    fwd = Forwarder()
    p, pmac = edge(fwd, b"p")
    subs = []
    for i in range(3):
        c, m = edge(fwd, bytes([i]))
        subscribe(fwd, c, m, Name("org", "ns", "svc", 100 + i), 10 + i)
        subs.append(c)
    for _ in range(6):
        fwd.receive(p, publish(SVC, mac=pmac))
    counts = {c: len(v) for c, v in outputs(fwd).items()}
    assert counts == dict.fromkeys(subs, 2)
    fwd.receive(p, publish(SVC, mac=pmac, fanout=256))
    out = outputs(fwd)
    assert sorted(out) == sorted(subs)
    fwd.receive(p, publish(SVC, mac=pmac, fanout=0))  # 0 is also "all"
    assert sorted(outputs(fwd)) == sorted(subs)
    # a specific id reaches only its own subscriber, even with fanout 256
    fwd.receive(p, publish(Name("org", "ns", "svc", 101), mac=pmac, fanout=256))
    assert list(outputs(fwd)) == [subs[1]]


def test_forward_to_bypasses_the_table() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd, b"a")
    b, bmac = edge(fwd, b"b")
    fwd.receive(a, publish(Name("x", "y", "z"), mac=amac, forward_to=b))
    (msg,) = outputs(fwd)[b]
    assert not msg.publish.header.HasField("forward_to")
    assert bmac.verify(msg.publish.header)
    fwd.receive(a, publish(ALICE, mac=amac, forward_to=999))
    assert {c.conn_id: c.drops for c in fwd.connections()}[a] == {DropReason.UNKNOWN_CONN: 1}


def test_peer_one_hop_rule() -> None:
    fwd = Forwarder()
    p1 = fwd.add_connection(ConnType.PEER)
    p2 = fwd.add_connection(ConnType.PEER)
    e, emac = edge(fwd)
    fwd.receive(p2, subscription(ALICE, 1))
    fwd.take_outputs()
    fwd.receive(p1, publish(ALICE))
    assert outputs(fwd) == {}  # peer traffic never goes back to peers
    fwd.receive(e, publish(ALICE, mac=emac))
    (msg,) = outputs(fwd)[p2]
    assert msg.publish.header.ttl == 7  # peers are not signed
    relay = Forwarder(relay_peer_publishes=True)
    q1 = relay.add_connection(ConnType.PEER)
    q2 = relay.add_connection(ConnType.PEER)
    relay.receive(q2, subscription(ALICE, 1))
    relay.take_outputs()
    relay.receive(q1, publish(ALICE))
    assert list(outputs(relay)) == [q2]


def test_subscribe_for_unknown_recv_from_gets_failed_ack() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd)
    fwd.receive(a, subscription(ALICE, 5, mac=amac, recv_from=42))
    (ack,) = outputs(fwd)[a]
    assert not ack.subscription_ack.success
    assert ack.subscription_ack.error == "connection not found: 42"
    assert len(fwd.table) == 0


def test_recv_from_installs_route_for_other_conn() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd, b"a")
    b, _bmac = edge(fwd, b"b")
    fwd.receive(a, subscription(ALICE, 5, mac=amac, recv_from=b))
    assert outputs(fwd)[a][0].subscription_ack.success  # ack on the arrival conn
    fwd.receive(a, publish(ALICE, mac=amac))
    assert list(outputs(fwd)) == [b]


def test_unsubscribe_errors_are_acked_with_reason() -> None:
    fwd = Forwarder()
    a, amac = edge(fwd)
    subscribe(fwd, a, amac, ALICE, 5)
    fwd.receive(a, subscription(ALICE.without_id(), 5, mac=amac, add=False))
    (ack,) = outputs(fwd)[a]
    assert ack.subscription_ack.error == "id not found: NULL_COMPONENT"
    fwd.receive(a, subscription(ALICE, 5, mac=amac, add=False))
    assert outputs(fwd)[a][0].subscription_ack.success
    assert len(fwd.table) == 0


def test_malformed_and_oversized_close_only_that_link() -> None:
    fwd = Forwarder(max_message_size=200)
    a, _ = edge(fwd, b"a")
    b, bmac = edge(fwd, b"b")
    fwd.receive(a, b"\xff\xff\xff")
    fwd.receive(b, publish(ALICE, mac=bmac, payload=b"x" * 300))
    closes = dict(fwd.take_closes())
    assert closes == {
        a: "malformed protobuf message",
        b: f"message of {len(publish(ALICE, mac=bmac, payload=b'x' * 300))} bytes exceeds the"
        " limit of 200",
    }
    c, cmac = edge(fwd, b"c")
    subscribe(fwd, c, cmac, ALICE, 1)


def test_remote_links_get_announcements_without_echo_and_replay() -> None:
    fwd = Forwarder("n1", rng=random.Random(1))
    rmac = TestMac(b"r")
    r = fwd.add_connection(ConnType.REMOTE, mac=rmac, outbound=True)
    e, emac = edge(fwd)
    fwd.receive(e, subscription(ALICE, 5, mac=emac))
    out = outputs(fwd)
    (ann,) = out[r]
    assert ann.HasField("subscribe")
    h = ann.subscribe.header
    assert h.source == h.destination == ALICE.to_proto()
    assert h.ttl == 8
    assert rmac.verify(h)
    sid = ann.subscribe.subscription_id
    assert sid != 0
    # a second subscriber to the same name: no new announcement
    e2, e2mac = edge(fwd, b"e2")
    fwd.receive(e2, subscription(ALICE, 6, mac=e2mac))
    assert r not in outputs(fwd)
    # subscriptions arriving over the remote link are not echoed back on it
    fwd.receive(r, subscription(SVC, 50, mac=rmac))
    assert [m.WhichOneof("message_type") for m in outputs(fwd)[r]] == ["subscription_ack"]
    # our own announcement coming back round a loop is acked and dropped
    fwd.receive(r, subscription(ALICE, sid, mac=rmac))
    assert outputs(fwd)[r][0].subscription_ack.success
    # link drops and comes back under the same id: replayed with the same subscription id
    fwd.connection_down(r, reconnecting=True)
    assert fwd.table.conns_for(RouteKey(*SVC.encoded, NULL_ID)) == set()
    fwd.add_connection(ConnType.REMOTE, mac=rmac, outbound=True, conn_id=r)
    (replay,) = outputs(fwd)[r]
    assert replay.subscribe.subscription_id == sid
    # last subscriber leaves: unsubscribe with the same id
    fwd.receive(e, subscription(ALICE, 5, mac=emac, add=False))
    assert r not in outputs(fwd)
    fwd.connection_down(e2)
    (unsub,) = outputs(fwd)[r]
    assert unsub.unsubscribe.subscription_id == sid


def test_chain_of_three_forwarders_delivers() -> None:
    """A-B-C wired by hand: a subscriber on A is reached by a publisher on C."""
    nodes = [Forwarder(f"n{i}", rng=random.Random(i)) for i in range(3)]
    macs = [TestMac(b"ab"), TestMac(b"bc")]
    # links: A.ab <-> B.ba, B.bc <-> C.cb (each end registers a remote conn)
    ab = nodes[0].add_connection(ConnType.REMOTE, mac=macs[0])
    ba = nodes[1].add_connection(ConnType.REMOTE, mac=macs[0])
    bc = nodes[1].add_connection(ConnType.REMOTE, mac=macs[1])
    cb = nodes[2].add_connection(ConnType.REMOTE, mac=macs[1])
    wires = {(0, ab): (1, ba), (1, ba): (0, ab), (1, bc): (2, cb), (2, cb): (1, bc)}
    delivered: list[pb.Message] = []
    sub_a, amac = edge(nodes[0], b"app-a")
    pub_c, cmac = edge(nodes[2], b"app-c")

    def pump() -> None:
        moved = True
        while moved:
            moved = False
            for i, n in enumerate(nodes):
                for cid, batch in n.take_outputs():
                    if (i, cid) in wires:
                        j, dst = wires[(i, cid)]
                        nodes[j].receive_batch(dst, batch)
                        moved = True
                    elif (i, cid) == (0, sub_a):
                        delivered.extend(decode(d) for d in batch)

    nodes[0].receive(sub_a, subscription(ALICE, 1, mac=amac))
    pump()
    delivered.clear()  # the ack
    nodes[2].receive(pub_c, publish(ALICE, mac=cmac))
    pump()
    assert len(delivered) == 1
    assert delivered[0].publish.header.ttl == 5  # C, B, A each took one
    assert amac.verify(delivered[0].publish.header)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_never_raise(batch: list[bytes]) -> None:
    fwd = Forwarder()
    a = fwd.add_connection(ConnType.EDGE, require_mac=False)
    b = fwd.add_connection(ConnType.EDGE, require_mac=False)
    fwd.receive(b, subscription(SVC, 1))
    fwd.receive_batch(a, batch)
    fwd.take_outputs()
    fwd.take_closes()
    assert fwd.conns.get(b) is not None
    assert fwd.conns.get(b).state is ConnState.UP  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        lambda ttl, fanout, blob, sid: (ttl, fanout, blob, sid),
        st.integers(0, 300),
        st.integers(0, 300),
        st.binary(max_size=50),
        st.integers(0, 2**64 - 1),
    )
)
def test_structured_messages_route_or_drop(params: tuple[int, int, bytes, int]) -> None:
    ttl, fanout, blob, sid = params
    fwd = Forwarder()
    a = fwd.add_connection(ConnType.EDGE, require_mac=False)
    b = fwd.add_connection(ConnType.EDGE, require_mac=False)
    fwd.receive(b, subscription(ALICE, sid, ttl=max(ttl, 2)))
    fwd.take_outputs()
    fwd.receive(a, publish(ALICE, ttl=ttl, fanout=fanout, payload=blob))
    out = dict(fwd.take_outputs())
    if ttl >= 2:
        (data,) = out[b]
        assert decode(data).publish.header.ttl == ttl - 1
    else:
        assert out == {}


@settings(max_examples=200, deadline=None)
@given(
    identity=st.text(max_size=40),
    ttl=st.integers(2, 2**32 - 1),
    recv_from=st.none() | st.integers(0, 2**64 - 1),
    error=st.none() | st.booleans(),
    e2e=st.none() | st.binary(max_size=40),
    metadata=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    blob=st.binary(max_size=64),
    dst_id=st.integers(0, 2**128 - 1),
    via_remote=st.booleans(),
)
def test_forwarded_copy_is_the_input_with_only_the_routing_fields_changed(
    identity: str,
    ttl: int,
    recv_from: int | None,
    error: bool | None,
    e2e: bytes | None,
    metadata: dict[str, str],
    blob: bytes,
    dst_id: int,
    via_remote: bool,
) -> None:
    fwd = Forwarder()
    amac, bmac = TestMac(b"in"), TestMac(b"out")
    a = fwd.add_connection(ConnType.EDGE, mac=amac)
    b = fwd.add_connection(ConnType.REMOTE if via_remote else ConnType.EDGE, mac=bmac)
    dst = Name("org", "ns", "dst", dst_id)
    fwd.receive(b, subscription(dst, 1, mac=bmac))
    fwd.take_outputs()
    msg = pb.Message()
    p = msg.publish
    h = p.header
    Name("org", "ns", "src", 3).fill_proto(h.source)
    dst.fill_proto(h.destination)
    h.identity = identity
    h.fanout = 1
    h.ttl = ttl
    h.version = "3.4.6"
    if recv_from is not None:
        h.recv_from = recv_from
    if error is not None:
        h.error = error
    if e2e is not None:
        h.e2e_header_sig = e2e
    p.session.session_id = 9
    p.msg.app_payload.blob = blob
    for k, v in metadata.items():
        msg.metadata[k] = v
    amac.sign(h)
    fwd.receive(a, msg.SerializeToString())
    (data,) = dict(fwd.take_outputs())[b]
    out = decode(data)
    oh = out.publish.header
    assert bmac.verify(oh)
    assert oh.ttl == ttl - 1
    assert oh.incoming_conn == a
    assert not oh.HasField("recv_from")
    assert not oh.HasField("forward_to")
    expected = pb.Message()
    expected.CopyFrom(msg)
    eh = expected.publish.header
    eh.ttl = ttl - 1
    eh.incoming_conn = a
    eh.ClearField("recv_from")
    eh.header_mac = oh.header_mac
    assert out == expected


def test_peer_links_get_full_sync_and_split_horizon() -> None:
    fwd = Forwarder(relay_peer_publishes=True)
    e, emac = edge(fwd)
    subscribe(fwd, e, emac, ALICE, 5)
    p1 = fwd.add_connection(ConnType.PEER)
    (sync,) = outputs(fwd)[p1]  # full sync on connect
    assert sync.subscribe.header.destination == ALICE.to_proto()
    assert sync.subscribe.header.ttl == 8
    assert not sync.subscribe.header.HasField("header_mac")  # peers are not MAC'd
    p2 = fwd.add_connection(ConnType.PEER)
    assert [m.subscribe.header.destination for m in outputs(fwd)[p2]] == [ALICE.to_proto()]
    # a name learned from p1 goes to p2 only, and a publish from p2 is relayed to p1
    fwd.receive(p1, subscription(BOB := Name("org", "ns", "bob", 9), 77))
    out = outputs(fwd)
    assert [m.WhichOneof("message_type") for m in out[p1]] == ["subscription_ack"]
    assert out[p2][0].subscribe.header.destination == BOB.to_proto()
    fwd.receive(p2, publish(BOB))
    assert list(outputs(fwd)) == [p1]
    # the edge subscriber leaves: both peers get the unsubscribe
    fwd.connection_down(e)
    out = outputs(fwd)
    assert {p1, p2} <= set(out)
    assert all(m[0].WhichOneof("message_type") == "unsubscribe" for m in out.values())


NAMES = [Name("org", "ns", "svc", 1), Name("org", "ns", "svc", 2), Name("org", "ns", "other", 1)]
DESTS = [*NAMES, Name("org", "ns", "svc"), Name("org", "ns", "svc", 3)]

forwarder_ops = st.lists(
    st.one_of(
        st.tuples(st.just("sub"), st.integers(0, 3), st.sampled_from(NAMES)),
        st.tuples(st.just("unsub"), st.integers(0, 3), st.sampled_from(NAMES)),
        st.tuples(
            st.just("pub"), st.integers(0, 3), st.sampled_from(DESTS), st.sampled_from([1, 256])
        ),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(forwarder_ops)
def test_forwarder_delivers_like_a_model(ops: list[tuple[Any, ...]]) -> None:
    """Random subscribe/unsubscribe/publish sequences over four edge links (with the unicast
    route cache in play) deliver exactly what a set-based model predicts."""
    fwd = Forwarder()
    links = [edge(fwd, bytes([65 + i])) for i in range(4)]
    model: dict[tuple[int, Name], int] = {}  # (link index, name) -> subscription id
    next_sid = 1
    for op in ops:
        kind, i = op[0], op[1]
        cid, mac = links[i]
        if kind == "sub":
            name = op[2]
            if (i, name) in model:
                continue
            fwd.receive(cid, subscription(name, next_sid, mac=mac))
            model[(i, name)] = next_sid
            next_sid += 1
            assert outputs(fwd)[cid][0].subscription_ack.success
        elif kind == "unsub":
            name = op[2]
            sid = model.pop((i, name), None)
            if sid is None:
                continue
            fwd.receive(cid, subscription(name, sid, mac=mac, add=False))
            assert outputs(fwd)[cid][0].subscription_ack.success
        else:
            dst, fanout = op[2], op[3]
            fwd.receive(cid, publish(dst, mac=mac, fanout=fanout))
            got = {c: len(v) for c, v in outputs(fwd).items()}
            subscribers = {
                links[j][0]
                for (j, name) in model
                if j != i and name.encoded == dst.encoded and (not dst.has_id or name.id == dst.id)
            }
            if fanout == 1:
                if subscribers:
                    assert len(got) == 1
                    (only,) = got
                    assert only in subscribers
                    assert got[only] == 1
                else:
                    assert got == {}
            else:
                assert got == dict.fromkeys(subscribers, 1)


def _publish_with_broken_content(mac: HeaderMac) -> bytes:
    p = pb.Publish()
    ALICE.fill_proto(p.header.destination)
    Name("org", "ns", "src", 1).fill_proto(p.header.source)
    p.header.fanout = 1
    p.header.ttl = 8
    p.session.session_id = 1
    mac.sign(p.header)
    # content (field 3) whose app_payload claims 5 bytes but carries 1: invalid protobuf
    body = p.SerializeToString() + b"\x1a\x03\x0a\x05\xff"
    return b"\x1a" + bytes([len(body) | 0x80, len(body) >> 7]) + body


def test_publish_with_malformed_payload_closes_the_link() -> None:
    for validate in (True, False):
        fwd = Forwarder(validate_payloads=validate)
        a, amac = edge(fwd, b"a")
        b, bmac = edge(fwd, b"b")
        subscribe(fwd, b, bmac, ALICE, 1)
        fwd.receive(a, _publish_with_broken_content(amac))
        if validate:
            assert outputs(fwd) == {}
            assert fwd.take_closes() == [(a, "malformed protobuf message")]
        else:  # the raw path alone would have passed it on
            assert [cid for cid, _ in fwd.take_outputs()] == [b]
