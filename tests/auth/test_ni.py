"""RFC 6920 names of keys and the self-certifying SLIM name id."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.auth import KeyAlgorithm, SigningKey
from slimwire.auth._ni import (
    check_self_certifying_name,
    name_id_from_ni,
    name_id_from_public_key,
    ni_for_public_key,
    ni_uri,
    nih_uri,
    parse_ni,
    spki_der,
)
from slimwire.errors import AuthError
from slimwire.names import MAX_ID, RESERVED_IDS

# RFC 6920 §8: the example public key (RSA, SubjectPublicKeyInfo DER, given there in base64).
RFC6920_SPKI = bytes.fromhex(
    "30820122300d06092a864886f70d01010105000382010f003082010a0282010100a25f83da9bd9f17a3a3667"
    "bafd5a940ecf16d55a553a5ed403b1658e6dcfa3b7dba4e7cc0f52c67d351dc468c2bd7b9ddbe40ad710cdf9"
    "5320ee0dd7566e5b7aae2c5f830a193c725896d686e80ee694eb5cf2903ef3a88a8856b6cd3638762297b16b"
    "3c9c07f34f9708a1bc29389b81062b7460387a932f39be1234096e0b5710b7a37bf2c6eed6c1e5ecaec59c83"
    "14f46b58e2def2ffc97707e3f34c97cf1a289e38a1b3934175a1a4763f4d78d744d61ae3cee25dc5784cb531"
    "222ec74b8c6f56785ca1c4c01dcae5b944d7e9909cbceeb0a2b1dcda6da00ff6ad1e2c12a2a766603e36d491"
    "41c2f2e769392c9dd2dfb5a34495487c876489ddbf0501eedd0203010001"
)


def test_rfc6920_section8_key_example() -> None:
    # RFC 6920 §8 "Examples": the ni URI, nih forms and the 32-bit truncation of that key.
    assert ni_uri(RFC6920_SPKI) == "ni:///sha-256;UyaQV-Ev4rdLoHyJJWCi11OHfrYv9E1aGQAlMO2X_-Q"
    assert ni_for_public_key(RFC6920_SPKI) == ni_uri(RFC6920_SPKI)  # DER in, DER out
    assert nih_uri(RFC6920_SPKI) == "nih:sha-256-120;5326-9057-e12f-e2b7-4ba0-7c89-2560-a2;f"
    assert nih_uri(RFC6920_SPKI, algorithm="sha-256-32") == "nih:sha-256-32;5326-9057;b"


def test_rfc6920_hello_world_examples() -> None:
    # RFC 6920 §3 and §8: the name of the string "Hello World!".
    assert ni_uri(b"Hello World!") == "ni:///sha-256;f4OxZX_x_FO5LcGBSKHWXfwtSx-j1ncoSt3SABJtkGk"
    assert (
        ni_uri(b"Hello World!", authority="example.com")
        == "ni://example.com/sha-256;f4OxZX_x_FO5LcGBSKHWXfwtSx-j1ncoSt3SABJtkGk"
    )
    assert ni_uri(b"Hello World!", algorithm="sha-256-32") == "ni:///sha-256-32;f4OxZQ"
    assert (
        nih_uri(b"Hello World!", dashes=False) == "nih:sha-256-120;7f83b1657ff1fc53b92dc18148a1d6;8"
    )
    parsed = parse_ni("ni:///sha-256-32;f4OxZQ?ct=text/plain")
    assert parsed.algorithm == "sha-256-32"
    assert parsed.query == "ct=text/plain"
    assert parsed.matches(b"Hello World!")
    assert not parsed.matches(b"Hello World?")


@pytest.mark.parametrize(
    "bad",
    [
        "ni:///sha-1;abc",
        "ni:///sha-256;f4OxZQ",  # wrong length for the algorithm
        "ni:/sha-256;f4OxZQ",
        "http://example.com/x",
        "ni:///sha-256;f4Ox=ZQ",
    ],
)
def test_parse_ni_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"ni|digest|bits|base64"):
        parse_ni(bad)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_name_id_is_first_16_bytes_of_spki_hash(algorithm: KeyAlgorithm) -> None:
    key = SigningKey.generate(algorithm)
    digest = hashlib.sha256(spki_der(key.public_bytes)).digest()
    expected = int.from_bytes(digest[:16], "big")
    assert name_id_from_public_key(key.public_bytes) == expected % (MAX_ID - RESERVED_IDS)
    assert name_id_from_ni(ni_for_public_key(key.public_bytes)) == name_id_from_public_key(
        key.public_bytes
    )
    check_self_certifying_name(name_id_from_public_key(key.public_bytes), key.public_bytes)
    other = SigningKey.generate(algorithm)
    with pytest.raises(AuthError, match="self-certifying"):
        check_self_certifying_name(name_id_from_public_key(key.public_bytes), other.public_bytes)


def test_compressed_and_uncompressed_p256_name_the_same_key() -> None:
    from cryptography.hazmat.primitives import serialization as ser

    key = SigningKey.generate(KeyAlgorithm.P256)
    pub = key._key.public_key()  # type: ignore[union-attr]
    compressed = pub.public_bytes(ser.Encoding.X962, ser.PublicFormat.CompressedPoint)
    assert name_id_from_public_key(compressed) == name_id_from_public_key(key.public_bytes)


def test_reserved_ids_are_avoided() -> None:
    from slimwire.auth._ni import _id_from_digest

    top = (MAX_ID).to_bytes(16, "big")
    assert _id_from_digest(top) < MAX_ID - RESERVED_IDS


def test_bad_key_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="invalid public key"):
        check_self_certifying_name(1, b"\x05" * 17)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_parse_ni_only_value_error(text: str) -> None:
    try:
        name = parse_ni(text)
    except ValueError:
        return
    assert str(name) == text or text.startswith("ni://")


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(["sha-256", "sha-256-128", "sha-256-32"]))
def test_ni_roundtrip(data: bytes, algorithm: str) -> None:
    uri = ni_uri(data, algorithm=algorithm)
    assert parse_ni(uri).matches(data)
    assert str(parse_ni(uri)) == uri
