"""The header MAC agrees byte for byte with an independent builder written from the spec."""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.link import HeaderMac, _wire, header_fields, link_prefix, name_cache_clear
from slimwire.names import Name

from ._spec import spec_preimage, spec_tag
from ._strategies import headers

KEY = bytes(range(32))
LINK = "599f0372-c75c-46b7-a213-2e3362768ba5"


def sample_header() -> pb.SLIMHeader:
    h = pb.SLIMHeader()
    Name("org", "ns", "alice", 42).fill_proto(h.source)
    Name("org", "ns", "bob").fill_proto(h.destination)
    h.identity = "token"
    h.fanout = 1
    h.version = "3.4.6"
    h.ttl = 8
    return h


@settings(max_examples=300, deadline=None)
@given(headers(), st.text(min_size=1, max_size=40))
def test_preimage_matches_spec(header: pb.SLIMHeader, link_id: str) -> None:
    f = header_fields(header)
    assert link_prefix(link_id) + f.body + f.tail == spec_preimage(header, link_id)


@settings(max_examples=300, deadline=None)
@given(headers(), st.binary(min_size=32, max_size=100), st.text(min_size=1, max_size=40))
def test_sign_matches_spec_and_verifies(header: pb.SLIMHeader, key: bytes, link_id: str) -> None:
    mac = HeaderMac(key, link_id)
    mac.sign(header)
    assert header.header_mac == spec_tag(key, header, link_id)
    assert mac.verify(header)
    assert not HeaderMac(key, link_id + "x").verify(header)
    assert not HeaderMac(bytes(b ^ 1 for b in key), link_id).verify(header)


def test_known_answer_from_spec_builder() -> None:
    # One fixed header: a regression anchor that needs no hypothesis run to reproduce.
    h = sample_header()
    h.recv_from = 0
    h.error = False
    HeaderMac(KEY, LINK).sign(h)
    expected = hmac.new(KEY, spec_preimage(h, LINK), hashlib.sha256).digest()
    assert h.header_mac == expected
    assert spec_preimage(h, LINK).startswith(b"SLIM-DP-HDR-v1\x00\x24\x00\x00\x00" + LINK.encode())


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: setattr(h, "fanout", 2),
        lambda h: setattr(h, "ttl", 7),
        lambda h: setattr(h, "identity", "other"),
        lambda h: setattr(h, "recv_from", 0),
        lambda h: setattr(h, "forward_to", 3),
        lambda h: setattr(h, "error", False),
        lambda h: setattr(h.source.name.name_id, "id_1", 43),
        lambda h: h.source.name.ClearField("name_id"),
        lambda h: h.destination.ClearField("str_name"),
        lambda h: setattr(h.destination.str_name, "str_component_2", "bob2"),
        lambda h: setattr(h.destination.name, "component_0", 1),
        lambda h: h.ClearField("source"),
        lambda h: setattr(h, "header_mac", bytes(32)),
    ],
)
def test_covered_fields_break_the_tag(tamper: object) -> None:
    mac = HeaderMac(KEY, LINK)
    h = sample_header()
    mac.sign(h)
    assert mac.verify(h)
    assert callable(tamper)
    tamper(h)
    assert not mac.verify(h)


@pytest.mark.parametrize(
    "change",
    [
        lambda h: setattr(h, "incoming_conn", 12345),
        lambda h: setattr(h, "version", "9.9.9"),
        lambda h: setattr(h, "e2e_header_sig", b"sig"),
    ],
)
def test_uncovered_fields_do_not_break_the_tag(change: object) -> None:
    mac = HeaderMac(KEY, LINK)
    h = sample_header()
    mac.sign(h)
    assert callable(change)
    change(h)
    assert mac.verify(h)


def test_missing_or_short_tag_does_not_verify() -> None:
    mac = HeaderMac(KEY, LINK)
    h = sample_header()
    assert not mac.verify(h)
    mac.sign(h)
    h.header_mac = h.header_mac[:31]
    assert not mac.verify(h)


def test_sign_replaces_an_existing_tag() -> None:
    mac = HeaderMac(KEY, LINK)
    h = sample_header()
    h.header_mac = b"\xff" * 32
    mac.sign(h)
    assert h.header_mac == spec_tag(KEY, h, LINK)


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        HeaderMac(bytes(31), LINK)
    with pytest.raises(ValueError, match="link_id"):
        HeaderMac(KEY, "")
    assert "0001" not in repr(HeaderMac(KEY, LINK))  # the key never shows


def test_long_key_is_hashed_like_rfc2104() -> None:
    key = os.urandom(100)
    h = sample_header()
    HeaderMac(key, LINK).sign(h)
    assert h.header_mac == spec_tag(key, h, LINK)


def test_header_with_clashing_unknown_field_uses_attribute_path() -> None:
    # Field 4 (fanout) sent length-delimited: upb keeps it as an unknown field and re-emits it,
    # which the wire walker declines; the MAC must still match the spec.
    good = sample_header().SerializeToString()
    h = pb.SLIMHeader.FromString(good + b"\x22\x02ab")
    mac = HeaderMac(KEY, LINK)
    mac.sign(h)
    assert h.header_mac == spec_tag(KEY, h, LINK)
    assert mac.verify(h)


def test_name_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_wire, "NAME_CACHE_MAX", 8)
    name_cache_clear()
    mac = HeaderMac(KEY, LINK)
    for i in range(50):
        h = sample_header()
        Name("org", "ns", f"svc{i}", i).fill_proto(h.source)
        mac.sign(h)
        assert h.header_mac == spec_tag(KEY, h, LINK)
        assert len(_wire._name_cache) <= 8
    name_cache_clear()


def test_each_link_has_its_own_tag() -> None:
    h1, h2 = sample_header(), sample_header()
    HeaderMac(KEY, str(uuid.uuid4())).sign(h1)
    HeaderMac(KEY, str(uuid.uuid4())).sign(h2)
    assert h1.header_mac != h2.header_mac
