"""The raw-bytes fast path: parse, verify and re-emit agree with protobuf and with the spec."""

from __future__ import annotations

import random

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.link import FrameKind, HeaderMac, parse_frame
from slimwire.link._frame import _parse_general
from slimwire.names import Name, proto_key

from ._spec import spec_preimage, spec_tag
from ._strategies import routed_messages

KEY_IN = bytes(range(32))
KEY_OUT = bytes(range(100, 132))
LINK_IN = "link-in"
LINK_OUT = "link-out"

_BODY = {FrameKind.PUBLISH: "publish", FrameKind.SUBSCRIBE: "subscribe"}
_BODY[FrameKind.UNSUBSCRIBE] = "unsubscribe"


def _header(msg: pb.Message) -> pb.SLIMHeader:
    kind = msg.WhichOneof("message_type")
    assert kind is not None
    header: pb.SLIMHeader = getattr(msg, kind).header
    return header


def sample_publish() -> pb.Message:
    m = pb.Message()
    h = m.publish.header
    Name("org", "ns", "prod", 7).fill_proto(h.source)
    Name("org", "ns", "cons", 9).fill_proto(h.destination)
    h.identity = "tok" * 70
    h.fanout = 1
    h.version = "3.4.6"
    h.ttl = 8
    h.incoming_conn = 1
    m.publish.session.session_id = 77
    m.publish.session.message_id = 1
    m.publish.msg.app_payload.payload_type = "msg"
    m.publish.msg.app_payload.blob = b"x" * 100
    m.metadata["k"] = "v"
    HeaderMac(KEY_IN, LINK_IN).sign(h)
    return m


def _expected_forward(msg: pb.Message, ttl: int, conn: int | None, sign: bool) -> pb.Message:
    out = pb.Message()
    out.CopyFrom(msg)
    h = _header(out)
    h.ClearField("recv_from")
    h.ClearField("forward_to")
    h.ClearField("header_mac")
    h.ttl = ttl
    if conn is None:
        h.ClearField("incoming_conn")
    else:
        h.incoming_conn = conn
    if sign:
        h.header_mac = spec_tag(KEY_OUT, h, LINK_OUT)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    routed_messages(),
    st.integers(0, 2**32 - 1),
    st.none() | st.integers(0, 2**64 - 1),
    st.booleans(),
)
def test_frame_matches_protobuf_and_spec(
    msg: pb.Message, ttl: int, conn: int | None, tagged: bool
) -> None:
    h = _header(msg)
    h.header_mac = spec_tag(KEY_IN, h, LINK_IN)
    if not tagged:  # messages from peer links and local apps carry no tag
        h.ClearField("header_mac")
    raw = msg.SerializeToString()
    frame = parse_frame(raw)
    assert frame is not None
    assert _BODY[frame.kind] == msg.WhichOneof("message_type")
    assert frame.destination == proto_key(h.destination)
    assert frame.source == proto_key(h.source)
    f = frame
    assert (f.fanout, f.ttl) == (h.fanout, h.ttl)
    for opt in ("recv_from", "forward_to", "incoming_conn", "error"):
        assert getattr(f, opt) == (getattr(h, opt) if h.HasField(opt) else None)
    assert frame.header_mac == (h.header_mac if tagged else None)
    assert HeaderMac(KEY_IN, LINK_IN).verify_frame(frame) == tagged
    assert HeaderMac(KEY_IN, LINK_IN).verify_message(raw) == (frame if tagged else None)
    assert not HeaderMac(KEY_OUT, LINK_IN).verify_frame(frame)

    out = frame.forward(ttl, conn)
    # The straight-line reader (protobuf's layout) and the general field loop agree exactly.
    general = _parse_general(raw)
    assert general is not None
    assert general[:12] == frame[:12]
    g_out = general.forward(ttl, conn)
    assert g_out.signed(HeaderMac(KEY_OUT, LINK_OUT)) == out.signed(HeaderMac(KEY_OUT, LINK_OUT))
    assert g_out.unsigned() == out.unsigned()
    signed = pb.Message.FromString(out.signed(HeaderMac(KEY_OUT, LINK_OUT)))
    assert signed == _expected_forward(msg, ttl, conn, sign=True)
    assert out.tag_for(HeaderMac(KEY_OUT, LINK_OUT)) == _header(signed).header_mac
    assert frame.forward_signed(ttl, conn, HeaderMac(KEY_OUT, LINK_OUT)) == out.signed(
        HeaderMac(KEY_OUT, LINK_OUT)
    )
    assert pb.Message.FromString(out.unsigned()) == _expected_forward(msg, ttl, conn, sign=False)


def test_forwarded_bytes_are_canonical() -> None:
    # The spliced message is byte-identical to what protobuf itself would write.
    msg = sample_publish()
    frame = parse_frame(msg.SerializeToString())
    assert frame is not None
    assert frame.keep_len > 0  # protobuf's own layout takes the straight-line reader
    out = frame.forward(7, 3)
    expected = _expected_forward(msg, 7, 3, sign=True)
    assert out.signed(HeaderMac(KEY_OUT, LINK_OUT)) == expected.SerializeToString()
    assert out.unsigned() == _expected_forward(msg, 7, 3, sign=False).SerializeToString()


def test_multibyte_lengths() -> None:
    # Bodies and headers longer than 127 and 16383 bytes need multi-byte length varints, and a
    # shorter forwarded header can change the width of those varints.
    for size in (100, 127, 128, 200, 16300, 16383, 16384, 20000):
        msg = sample_publish()
        h = msg.publish.header
        h.identity = "i" * size
        h.recv_from = 2**63
        h.ClearField("header_mac")
        HeaderMac(KEY_IN, LINK_IN).sign(h)
        raw = msg.SerializeToString()
        frame = HeaderMac(KEY_IN, LINK_IN).verify_message(raw)
        assert frame is not None
        got = pb.Message.FromString(frame.forward(0, None).signed(HeaderMac(KEY_OUT, LINK_OUT)))
        assert got == _expected_forward(msg, 0, None, sign=True)
        for ttl in (0, 1, 127, 128, 300, 2**32 - 1):
            one_step = frame.forward_signed(ttl, 2**40, HeaderMac(KEY_OUT, LINK_OUT))
            assert one_step == frame.forward(ttl, 2**40).signed(HeaderMac(KEY_OUT, LINK_OUT))
            assert pb.Message.FromString(one_step) == _expected_forward(msg, ttl, 2**40, sign=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_messages(), st.randoms(use_true_random=False))
def test_field_order_does_not_matter(msg: pb.Message, rnd: random.Random) -> None:
    # Other implementations may write fields in any order; protobuf accepts it, so must we.
    h = _header(msg)
    pieces = []
    for fd, _ in h.ListFields():
        one = pb.SLIMHeader()
        one.MergeFrom(h)
        for other, _ in h.ListFields():
            if other.name != fd.name:
                one.ClearField(other.name)
        pieces.append(one.SerializeToString())
    rnd.shuffle(pieces)
    hdr_raw = b"".join(pieces)
    assert pb.SLIMHeader.FromString(hdr_raw) == h
    kind = msg.WhichOneof("message_type")
    assert kind is not None
    body = getattr(msg, kind)
    rest = type(body)()
    rest.CopyFrom(body)
    rest.ClearField("header")
    body_raw = rest.SerializeToString() + b"\x0a" + _varint(len(hdr_raw)) + hdr_raw
    tag = {"subscribe": b"\x0a", "unsubscribe": b"\x12", "publish": b"\x1a"}[kind]
    meta = pb.Message()
    meta.metadata.update(msg.metadata)
    raw = meta.SerializeToString() + tag + _varint(len(body_raw)) + body_raw
    assert pb.Message.FromString(raw) == msg
    frame = parse_frame(raw)
    assert frame is not None
    assert frame.body + frame.tail == spec_preimage(h, "")[19:]
    got = pb.Message.FromString(frame.forward(5, 2).signed(HeaderMac(KEY_OUT, LINK_OUT)))
    assert got == _expected_forward(msg, 5, 2, sign=True)


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def test_non_routed_and_invalid_messages_take_the_slow_path() -> None:
    link = pb.Message()
    link.link.link_negotiation.link_id = "x"
    ack = pb.Message()
    ack.subscription_ack.subscription_id = 5
    no_session = sample_publish()
    no_session.publish.ClearField("session")
    no_header = sample_publish()
    no_header.publish.ClearField("header")
    no_encoded = sample_publish()
    no_encoded.publish.header.destination.ClearField("name")
    no_source = sample_publish()
    no_source.publish.header.ClearField("source")
    for m in (link, ack, no_session, no_header, no_encoded, no_source, pb.Message()):
        assert parse_frame(m.SerializeToString()) is None
    good = sample_publish().SerializeToString()
    assert parse_frame(good) is not None
    assert parse_frame(good + good) is None  # two routed bodies merge in protobuf
    assert parse_frame(good[:-1]) is None
    assert parse_frame(b"") is None


def test_bad_tag_is_rejected_on_the_fast_path() -> None:
    msg = sample_publish()
    raw = msg.SerializeToString()
    assert HeaderMac(KEY_IN, LINK_IN).verify_message(raw) is not None
    assert HeaderMac(KEY_IN, "other").verify_message(raw) is None
    msg.publish.header.ttl = 9
    assert HeaderMac(KEY_IN, LINK_IN).verify_message(msg.SerializeToString()) is None
    msg.publish.header.ClearField("header_mac")
    frame = parse_frame(msg.SerializeToString())
    assert frame is not None
    assert not HeaderMac(KEY_IN, LINK_IN).verify_frame(frame)


def test_invalid_utf8_in_header_is_rejected() -> None:
    raw = bytearray(sample_publish().SerializeToString())
    at = raw.index(b"toktok")
    raw[at] = 0xFF
    assert parse_frame(bytes(raw)) is None
    raw = bytearray(sample_publish().SerializeToString())
    at = raw.index(b"cons")
    raw[at] = 0xC3  # inside a cached-by-bytes name: protobuf must still vet it
    assert parse_frame(bytes(raw)) is None


def _check_agrees_with_protobuf(raw: bytes) -> None:
    frame = parse_frame(raw)  # must never raise
    if frame is None:
        return
    # Whatever header the fast path accepts, protobuf accepts too, and they read it the same.
    hdr = pb.SLIMHeader.FromString(raw[frame.header_start : frame.header_end])
    assert frame.body + frame.tail == spec_preimage(hdr, "")[19:]
    assert frame.destination == proto_key(hdr.destination)
    assert frame.source == proto_key(hdr.source)
    try:
        original = pb.Message.FromString(raw)
    except DecodeError:
        return  # damage inside the payload or metadata, which the fast path does not inspect
    forwarded = pb.Message.FromString(frame.forward(1, None).unsigned())
    assert forwarded == _expected_forward(original, 1, None, sign=False)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _check_agrees_with_protobuf(raw)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    routed_messages(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 2)), max_size=4),
)
def test_fuzz_mutated_messages(msg: pb.Message, edits: list[tuple[int, int, int]]) -> None:
    raw = bytearray(msg.SerializeToString())
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
    _check_agrees_with_protobuf(bytes(raw))


def test_ttl_and_conn_must_fit_the_wire() -> None:
    frame = parse_frame(sample_publish().SerializeToString())
    assert frame is not None
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match="ttl"):
            frame.forward(bad)
        with pytest.raises(ValueError, match="ttl"):
            frame.forward_signed(bad, None, HeaderMac(KEY_OUT, LINK_OUT))
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match="incoming_conn"):
            frame.forward(1, bad)
        with pytest.raises(ValueError, match="incoming_conn"):
            frame.forward_signed(1, bad, HeaderMac(KEY_OUT, LINK_OUT))


def test_minimal_untagged_header_takes_the_fast_reader() -> None:
    # Regression: a header that is just two empty encoded names ends right after them.
    msg = pb.Message()
    msg.subscribe.header.source.name.SetInParent()
    msg.subscribe.header.destination.name.SetInParent()
    frame = parse_frame(msg.SerializeToString())
    assert frame is not None
    assert frame.keep_len > 0
    assert frame.destination == (0, 0, 0, (1 << 128) - 1)
    assert frame.header_mac is None


@pytest.mark.parametrize(
    "order",
    [("header", "msg", "session"), ("msg", "session", "header"), ("session", "header", "msg")],
)
def test_publish_body_fields_in_any_order(order: tuple[str, str, str]) -> None:
    msg = sample_publish()
    p = msg.publish
    parts = []
    for field in order:
        one = pb.Publish()
        getattr(one, field).CopyFrom(getattr(p, field))
        parts.append(one.SerializeToString())
    body = b"".join(parts)
    meta = pb.Message()
    meta.metadata.update(msg.metadata)
    raw = b"\x1a" + _varint(len(body)) + body + meta.SerializeToString()
    assert pb.Message.FromString(raw) == msg
    frame = parse_frame(raw)
    assert frame is not None
    assert HeaderMac(KEY_IN, LINK_IN).verify_frame(frame)
    got = pb.Message.FromString(frame.forward_signed(7, 1, HeaderMac(KEY_OUT, LINK_OUT)))
    assert got == _expected_forward(msg, 7, 1, sign=True)
    # Without a session header the reference drops a Publish: the fast path declines it.
    no_session = b"".join(part for part, f in zip(parts, order, strict=True) if f != "session")
    assert parse_frame(b"\x1a" + _varint(len(no_session)) + no_session) is None
