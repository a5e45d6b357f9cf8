"""deserialization.json: variable-length vector headers (RFC 9420 §2.1.2), both directions."""

from __future__ import annotations

import pytest

from slimwire.mls._codec import DecodeError, Reader, encode_varint
from tests.mls._vectors import cases


@pytest.mark.parametrize("case", cases("deserialization"))
def test_vlbytes_header(case: dict[str, object]) -> None:
    header = bytes.fromhex(str(case["vlbytes_header"]))
    length = case["length"]
    assert isinstance(length, int)
    r = Reader(header)
    assert r.varint() == length
    assert r.at_end()
    assert encode_varint(length) == header
    # As a vector header: the decoder must insist on exactly that many bytes following.
    if length <= 4096:
        body = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
        assert Reader(header + body).opaque() == body
        if length:
            r = Reader(header + body[:-1])
            with pytest.raises(DecodeError, match="truncated"):
                r.opaque()
