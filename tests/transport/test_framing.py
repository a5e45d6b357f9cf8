"""gRPC message framing: the 5-byte prefix, bulk splitting, limits, arbitrary chunking."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.errors import MessageTooLarge, RemoteProtocolError
from slimwire.transport import MessageDecoder, encode_message, encode_messages
from slimwire.transport._status import decode_grpc_message, encode_grpc_message


def test_prefix_layout() -> None:
    assert encode_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert encode_message(b"") == b"\x00\x00\x00\x00\x00"
    assert encode_messages([b"a", b"bc"]) == b"\x00\x00\x00\x00\x01a\x00\x00\x00\x00\x02bc"


def test_bulk_split_in_one_chunk() -> None:
    msgs = [bytes([i]) * i for i in range(50)]
    dec = MessageDecoder()
    assert dec.feed(encode_messages(msgs)) == msgs
    assert dec.buffered == 0


def test_byte_by_byte() -> None:
    msgs = [b"hello", b"", b"x" * 300]
    data = encode_messages(msgs)
    dec = MessageDecoder()
    out: list[bytes] = []
    for i in range(len(data)):
        out += dec.feed(data[i : i + 1])
    assert out == msgs
    assert dec.error is None


def test_oversized_fails_at_prefix_before_buffering() -> None:
    dec = MessageDecoder(max_message_size=10)
    # Messages before the bad one are still returned; the bad prefix alone is enough to fail.
    out = dec.feed(encode_message(b"ok") + struct.pack(">BI", 0, 11))
    assert out == [b"ok"]
    assert isinstance(dec.error, MessageTooLarge)
    assert dec.buffered == 0
    assert dec.feed(encode_message(b"later")) == []


def test_limit_is_inclusive() -> None:
    dec = MessageDecoder(max_message_size=10)
    assert dec.feed(encode_message(b"0123456789")) == [b"0123456789"]
    assert dec.error is None


def test_oversized_detected_across_split_prefix() -> None:
    dec = MessageDecoder(max_message_size=10)
    data = struct.pack(">BI", 0, 1000)
    assert dec.feed(data[:3]) == []
    assert dec.error is None
    assert dec.feed(data[3:]) == []
    assert isinstance(dec.error, MessageTooLarge)


@pytest.mark.parametrize(("flag", "text"), [(1, "compressed"), (7, "flag")])
def test_bad_flags(flag: int, text: str) -> None:
    dec = MessageDecoder()
    assert dec.feed(struct.pack(">BI", flag, 1) + b"x") == []
    assert isinstance(dec.error, RemoteProtocolError)
    assert not isinstance(dec.error, MessageTooLarge)
    assert text in str(dec.error)


@settings(max_examples=300, deadline=None)
@given(
    msgs=st.lists(st.binary(max_size=300), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_any_split_points_give_the_same_messages(msgs: list[bytes], cuts: list[int]) -> None:
    data = encode_messages(msgs)
    points = sorted({c % (len(data) + 1) for c in cuts})
    dec = MessageDecoder()
    out: list[bytes] = []
    prev = 0
    for p in [*points, len(data)]:
        out += dec.feed(data[prev:p])
        prev = p
    assert out == msgs
    assert dec.error is None
    assert dec.buffered == 0


@settings(max_examples=400, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=64), max_size=20),
    limit=st.integers(min_value=0, max_value=100),
)
def test_arbitrary_bytes_never_crash(chunks: list[bytes], limit: int) -> None:
    dec = MessageDecoder(max_message_size=limit)
    total = 0
    for c in chunks:
        out = dec.feed(c)
        assert all(len(m) <= limit for m in out)
        total += sum(len(m) + 5 for m in out)
    # Bytes are conserved: delivered + held never exceed what was fed.
    assert total + dec.buffered <= sum(map(len, chunks))
    if dec.error is not None:
        assert isinstance(dec.error, RemoteProtocolError)
        assert dec.buffered == 0


@pytest.mark.parametrize(
    "text", ["", "plain ascii", "100% done", "naïve ☃ \n tab\t", "%41 literal percent-escape"]
)
def test_grpc_message_round_trip(text: str) -> None:
    enc = encode_grpc_message(text)
    assert all(0x20 <= ord(c) < 0x7F for c in enc)
    assert decode_grpc_message(enc) == text


@given(st.text())
def test_grpc_message_round_trip_any(text: str) -> None:
    assert decode_grpc_message(encode_grpc_message(text)) == text


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_grpc_message_decode_is_lenient(value: str) -> None:
    decode_grpc_message(value)  # malformed escapes must not raise


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.lists(st.binary(max_size=40), max_size=4)),
            st.tuples(st.just("framed"), st.lists(st.binary(max_size=40), max_size=4)),
            st.tuples(st.just("take"), st.integers(min_value=1, max_value=120)),
        ),
        max_size=40,
    )
)
def test_out_queue_take_hands_out_the_framing_in_order(ops: list[tuple[str, object]]) -> None:
    """Whatever mix of pushes and window-sized takes, the taken bytes are the gRPC framing of
    every message in order, each take is at most its limit (exactly it while enough is queued),
    and ``size`` is what stays queued."""
    from slimwire.transport._framing import OutQueue

    q = OutQueue()
    taken, queued = bytearray(), bytearray()
    for kind, arg in ops:
        if kind == "take":
            assert isinstance(arg, int)
            data = q.take(arg)
            assert len(data) == min(arg, len(queued))
            taken += data
            del queued[: len(data)]
        else:
            assert isinstance(arg, list)
            if kind == "push":
                if len(arg) == 1:
                    q.push(arg[0])
                else:
                    q.push_many(arg)
            else:
                q.push_framed([encode_message(m) for m in arg])
            queued += encode_messages(arg) if arg else b""
        assert q.size == len(queued) == sum(map(len, q.chunks))
    taken += q.take(len(queued) + 1)
    assert q.size == 0
    pushed = b"".join(
        encode_messages(arg) for kind, arg in ops if kind != "take" and isinstance(arg, list)
    )
    assert bytes(taken) == pushed
