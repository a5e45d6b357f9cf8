from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire.mls._codec import DecodeError, Reader, Writer, decode_all, encode_varint


@given(st.integers(0, (1 << 30) - 1))
def test_varint_round_trip(n: int) -> None:
    enc = encode_varint(n)
    assert len(enc) == (1 if n < 0x40 else 2 if n < 0x4000 else 4)
    assert decode_all(enc, Reader.varint) == n


def test_varint_rejects_non_minimal_and_bad_prefix() -> None:
    with pytest.raises(DecodeError, match="non-minimal"):
        decode_all(b"\x40\x25", Reader.varint)
    with pytest.raises(DecodeError, match="prefix"):
        decode_all(b"\xc0\x00\x00\x00\x00\x00\x00\x01", Reader.varint)


@given(
    st.lists(st.binary(max_size=80), max_size=10), st.one_of(st.none(), st.integers(0, 2**64 - 1))
)
def test_vectors_and_optionals(items: list[bytes], opt: int | None) -> None:
    w = Writer().vector(items, Writer.opaque).optional(opt, Writer.u64).u16(7)
    r = Reader(bytes(w))
    assert r.vector(Reader.opaque) == items
    assert r.optional(Reader.u64) == opt
    assert r.u16() == 7
    r.finish()


@given(st.binary(max_size=64))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        r = Reader(data)
        r.vector(Reader.opaque)
        r.optional(Reader.u32)
    except DecodeError:
        pass


def test_truncated_and_trailing() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        decode_all(b"\x05ab", Reader.opaque)
    with pytest.raises(DecodeError, match="trailing"):
        decode_all(b"\x01a!", Reader.opaque)
