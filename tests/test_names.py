from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import (
    MAX_ID,
    NULL_ID,
    Name,
    app_id_from_token_id,
    channel_ids,
    component_hash,
    format_id,
    parse_id,
    proto_key,
)

# From the spec (§1.2): verified against the reference's own hasher.
HASH_VECTORS = {
    "org": 9745323415579563579,
    "ns": 17219925055306830033,
    "app": 9712949549825652437,
    "agntcy": 1629362083701025730,
    "default": 2419281581437851240,
    "alice": 8903823788458029442,
    "Org": 9441523132405651636,
    "Default": 1956555601697904475,
    "App": 3839139583884133599,
    "": 10764519495013463364,
}


@pytest.mark.parametrize(("text", "expected"), sorted(HASH_VECTORS.items()))
def test_component_hash_vectors(text: str, expected: int) -> None:
    assert component_hash(text) == expected


def test_id_text_forms() -> None:
    assert format_id(42) == "00000000-0000-0000-0000-00000000002a"
    assert format_id(NULL_ID) == "NULL_COMPONENT"
    assert parse_id("NULL_COMPONENT") == NULL_ID
    assert parse_id("00000000-0000-0000-0000-00000000002a") == 42
    with pytest.raises(ValueError, match="not a name id"):
        parse_id("nope")


def test_app_and_channel_ids_match_reference() -> None:
    alice = app_id_from_token_id("alice_AbCd1234")
    assert format_id(alice) == "74ecd689-241f-30cd-1dc5-3fd5de63a485"
    assert format_id(app_id_from_token_id("slim-test")) == "3a85d908-f99d-738d-653a-07dd24b59621"
    data, ctrl = channel_ids("alice_AbCd1234", Name.parse("org/ns/chat"))
    assert format_id(data) == "9e8de2ff-04e2-775e-21b5-8ed88b7dbc96"
    assert format_id(ctrl) == "d4ffb9a0-8024-b22e-2ad9-201d89ade2b4"


def test_parse_and_format() -> None:
    n = Name.parse(" org / ns / svc ")
    assert n.components == ("org", "ns", "svc")
    assert not n.has_id
    assert str(n) == "org/ns/svc/NULL_COMPONENT"
    assert n.short() == "org/ns/svc"
    m = Name.parse("org/ns/svc/00000000-0000-0000-0000-00000000002a")
    assert m.id == 42
    assert m.without_id() == n
    for bad in ("org/ns", "org//svc", "a/b/c/d/e", ""):
        with pytest.raises(ValueError, match="org/namespace/service"):
            Name.parse(bad)


def test_proto_round_trip_sends_null_id_explicitly() -> None:
    n = Name.parse("org/ns/svc")
    p = n.to_proto()
    assert p.name.HasField("name_id")
    assert p.name.name_id.id_0 == p.name.name_id.id_1 == (1 << 64) - 1
    assert Name.from_proto(p) == n
    assert proto_key(p) == n.key
    # An absent name_id reads as the null id.
    bare = pb.Name()
    bare.CopyFrom(p)
    bare.name.ClearField("name_id")
    assert proto_key(bare)[3] == NULL_ID


component = st.text(min_size=1, max_size=20).filter(lambda s: s == s.strip() and "/" not in s)


@given(component, component, component, st.integers(0, MAX_ID))
def test_name_round_trips(org: str, ns: str, svc: str, name_id: int) -> None:
    n = Name(org, ns, svc, name_id)
    assert Name.from_proto(pb.Name.FromString(n.to_proto().SerializeToString())) == n
    if "\n" not in str(n):
        assert Name.parse(str(n)) == n
