"""The fused unicast path (:class:`Relay`): same bytes as the frame path and the spec, or none."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.link import HeaderMac, Relay, parse_frame
from slimwire.names import Name, proto_key

from ._spec import spec_tag
from ._strategies import routed_messages
from .test_frame import KEY_IN, KEY_OUT, LINK_IN, LINK_OUT, _expected_forward, sample_publish

IN_CONN = 5
MAC_IN = HeaderMac(KEY_IN, LINK_IN)
MAC_OUT = HeaderMac(KEY_OUT, LINK_OUT)


@dataclass
class FakeSink:
    sign_mac: HeaderMac | None = MAC_OUT
    out: list[bytes] = field(default_factory=list)


def _publish(message_id: int = 1, dst: int = 9, ttl: int = 8) -> bytes:
    m = sample_publish()
    h = m.publish.header
    Name("org", "ns", "cons", dst).fill_proto(h.destination)
    h.ttl = ttl
    m.publish.session.message_id = message_id
    h.ClearField("header_mac")
    MAC_IN.sign(h)
    return m.SerializeToString()


def _key(dst: int = 9) -> tuple[int, int, int, int]:
    return Name("org", "ns", "cons", dst).key


def _frame_path(raw: bytes, ttl_dec: int = 1) -> bytes:
    frame = parse_frame(raw)
    assert frame is not None
    return frame.forward_signed(frame.ttl - ttl_dec, IN_CONN, MAC_OUT)


def test_a_run_of_plain_publishes_matches_the_frame_path() -> None:
    batch = [_publish(i) for i in range(10)]
    sink = FakeSink()
    dirty: list[FakeSink] = []
    assert Relay(MAC_IN, IN_CONN).run(batch, 0, {_key(): sink}, dirty) == 10
    assert dirty == [sink]
    assert sink.out == [_frame_path(r) for r in batch]
    for raw, out in zip(batch, sink.out, strict=True):
        expected = _expected_forward(pb.Message.FromString(raw), 7, IN_CONN, sign=True)
        assert out == expected.SerializeToString()


def test_stops_at_the_first_message_it_does_not_take() -> None:
    sub = pb.Message()
    sub.subscribe.header.CopyFrom(pb.Message.FromString(_publish()).publish.header)
    batch = [_publish(1), _publish(2), sub.SerializeToString(), _publish(3)]
    sink = FakeSink()
    dirty: list[FakeSink] = []
    relay = Relay(MAC_IN, IN_CONN)
    assert relay.run(batch, 0, {_key(): sink}, dirty) == 2
    assert relay.run(batch, 3, {_key(): sink}, dirty) == 4
    assert dirty == [sink]  # queued once, although two runs fed it
    assert sink.out == [_frame_path(batch[0]), _frame_path(batch[1]), _frame_path(batch[3])]


def test_declines_without_side_effects() -> None:
    relay = Relay(MAC_IN, IN_CONN)
    good = _publish()
    cases = {
        "unrouted destination": ([_publish(dst=10)], {_key(): FakeSink()}),
        "unsigned destination": ([good], {_key(): FakeSink(sign_mac=None)}),
        "ttl runs out": ([_publish(ttl=1)], {_key(): FakeSink()}),
        "bad tag": ([good[:-40] + bytes(40)], {_key(): FakeSink()}),
    }
    m = pb.Message.FromString(good)
    m.publish.header.fanout = 256
    m.publish.header.ClearField("header_mac")
    MAC_IN.sign(m.publish.header)
    cases["multicast"] = ([m.SerializeToString()], {_key(): FakeSink()})
    m.publish.header.fanout = 1
    m.publish.header.forward_to = 3
    MAC_IN.sign(m.publish.header)
    cases["forward_to"] = ([m.SerializeToString()], {_key(): FakeSink()})
    for what, (batch, routes) in cases.items():
        dirty: list[FakeSink] = []
        assert relay.run(batch, 0, routes, dirty) == 0, what
        assert dirty == [], what
        assert all(not s.out for s in routes.values()), what
    sink = FakeSink()
    assert relay.run([good], 0, {_key(): sink}, [], max_size=len(good) - 1) == 0
    assert relay.run([good], 0, {_key(): sink}, [], max_size=len(good)) == 1


def test_a_payload_that_does_not_decode_takes_the_whole_run_back() -> None:
    good = _publish(1)
    raw = bytearray(_publish(2))
    at = raw.index(b"msg")  # payload_type, a proto3 string: invalid UTF-8 fails the decode
    raw[at] = 0xFF
    bad = bytes(raw)
    assert parse_frame(bad) is not None  # the header is fine: only the payload is damaged
    sink = FakeSink(out=[b"earlier"])
    relay = Relay(MAC_IN, IN_CONN)
    assert relay.run([good, bad, good], 0, {_key(): sink}, []) == -1
    assert sink.out == [b"earlier"]
    # without validation the bytes are relayed as they are
    assert relay.run([good, bad, good], 0, {_key(): sink}, [], validate=False) == 3
    assert len(sink.out) == 4


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_messages(), st.booleans())
def test_relays_exactly_like_the_frame_path(msg: pb.Message, tagged: bool) -> None:
    kind = msg.WhichOneof("message_type")
    assert kind is not None
    h = getattr(msg, kind).header
    h.ClearField("header_mac")
    if tagged:
        h.header_mac = spec_tag(KEY_IN, h, LINK_IN)
    raw = msg.SerializeToString()
    sink = FakeSink()
    dirty: list[FakeSink] = []
    took = Relay(MAC_IN, IN_CONN).run([raw], 0, {proto_key(h.destination): sink}, dirty)
    plain = (
        tagged
        and kind == "publish"
        and h.fanout == 1
        and not h.HasField("forward_to")
        and h.ttl > 1
        and not h.HasField("e2e_header_sig")
        and h.source.ByteSize() < 128
        and h.destination.ByteSize() < 128
    )
    assert took == (1 if plain else 0)
    if took:
        assert sink.out == [_frame_path(raw)]
        expected = _expected_forward(msg, h.ttl - 1, IN_CONN, sign=True)
        assert pb.Message.FromString(sink.out[0]) == expected
    else:
        assert sink.out == []
        assert dirty == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 2)), max_size=4)
)
def test_fuzz_mutated_publishes(edits: list[tuple[int, int, int]]) -> None:
    raw = bytearray(_publish())
    for where, byte, op in edits:
        if not raw:
            break
        at = where % len(raw)
        if op == 0:
            raw[at] = byte
        elif op == 1:
            raw.insert(at, byte)
        else:
            del raw[at]
    data = bytes(raw)
    sink = FakeSink()
    took = Relay(MAC_IN, IN_CONN).run([data], 0, {_key(): sink}, [])  # never raises
    if took != 1:
        assert sink.out == []
        return
    # taken: the MAC verified, protobuf accepts the whole message, and the copy is the frame
    # path's, which protobuf accepts too
    try:
        pb.Message.FromString(data)
    except DecodeError as exc:  # pragma: no cover - the assertion below reports it
        raise AssertionError("relayed a message protobuf rejects") from exc
    assert sink.out == [_frame_path(data)]
    pb.Message.FromString(sink.out[0])


def test_multicast_copies_match_the_frame_path() -> None:
    m = pb.Message.FromString(_publish())
    m.publish.header.fanout = 256
    batch = []
    for i in range(5):
        m.publish.session.message_id = i
        m.publish.header.ClearField("header_mac")
        MAC_IN.sign(m.publish.header)
        batch.append(m.SerializeToString())
    macs = [HeaderMac(bytes([i]) * 32, f"out-{i}") for i in range(3)]
    group = [FakeSink(sign_mac=mac) for mac in macs]
    dirty: list[FakeSink] = []
    relay = Relay(MAC_IN, IN_CONN)
    assert relay.run(batch, 0, {}, dirty, {_key(): group}) == 5
    assert dirty == group
    for sink, mac in zip(group, macs, strict=True):
        expected = []
        for raw in batch:
            frame = parse_frame(raw)
            assert frame is not None
            expected.append(frame.forward(7, IN_CONN).signed(mac))
        assert sink.out == expected
    # a unicast route does not serve a multicast message, and one unsigned member declines
    assert relay.run(batch, 0, {_key(): FakeSink()}, [], {}) == 0
    mixed = [FakeSink(), FakeSink(sign_mac=None)]
    assert relay.run(batch, 0, {}, [], {_key(): mixed}) == 0
    assert all(not s.out for s in mixed)


def test_framed_copies_carry_their_grpc_prefix() -> None:
    batch = [_publish(i) for i in range(3)]
    sink = FakeSink()
    assert Relay(MAC_IN, IN_CONN, framed=True).run(batch, 0, {_key(): sink}, []) == 3
    for raw, out in zip(batch, sink.out, strict=True):
        plain = _frame_path(raw)
        assert out == b"\x00" + len(plain).to_bytes(4, "big") + plain
