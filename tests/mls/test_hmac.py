"""The one HMAC implementation of slimwire.mls (``_hmac``) against the standard library's,
and the suite operations built on it against their definitions."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.mls._codec import Writer
from slimwire.mls._hmac import HmacKey, hmac_digest, hmac_digests, hmac_triple
from slimwire.mls._hpke import hkdf_expand
from slimwire.mls._suites import cipher_suite, supported_suites

HASHES = ["sha256", "sha384", "sha512"]
# key lengths around both block sizes (64, 128): padded, exact, hashed first
KEYS = st.one_of(st.binary(max_size=200), st.integers(0, 200).map(lambda n: b"k" * n))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(HASHES), KEYS, st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_hmac_matches_the_standard_library(name: str, key: bytes, messages: list[bytes]) -> None:
    expected = [hmac.digest(key, m, name) for m in messages]
    assert [hmac_digest(name, key, m) for m in messages] == expected
    assert hmac_digests(name, key, *messages) == expected
    three = (messages * 3)[:3]
    assert hmac_triple(name, key, *three) == tuple(hmac.digest(key, m, name) for m in three)
    mac = HmacKey(name, key)
    assert [mac.digest(m) for m in messages] == expected
    assert [mac.digest(m) for m in messages] == expected  # the pads are reusable
    prefixed = mac.with_prefix(messages[0])
    assert [prefixed.digest(m) for m in messages] == [
        hmac.digest(key, messages[0] + m, name) for m in messages
    ]
    assert mac.digest(messages[0]) == expected[0]  # the original is untouched


@pytest.mark.parametrize(
    ("name", "algorithm"), [("sha256", hashes.SHA256()), ("sha512", hashes.SHA512())]
)
@pytest.mark.parametrize("length", [1, 32, 64, 65, 200])
def test_hkdf_expand_matches_cryptography(
    name: str, algorithm: hashes.HashAlgorithm, length: int
) -> None:
    prk, info = b"p" * algorithm.digest_size, b"some info"
    assert hkdf_expand(name, algorithm.digest_size, prk, info, length) == HKDFExpand(
        algorithm, length, info
    ).derive(prk)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(supported_suites()),
    st.binary(min_size=1, max_size=80),
    st.binary(max_size=20),
    st.binary(max_size=100),
    st.integers(1, 100),
)
def test_keyed_secret_is_expand_with_label(
    suite_id: int, secret: bytes, label: bytes, context: bytes, length: int
) -> None:
    """KeyedSecret (pads hashed once) and the one-shot ExpandWithLabel agree with the RFC's
    definition, HKDF-Expand(secret, KDFLabel, length), for one and several HKDF blocks."""
    suite = cipher_suite(suite_id)
    kdf_label = bytes(Writer().u16(length).opaque(b"MLS 1.0 " + label).opaque(context))
    expected = suite.kdf.expand(secret, kdf_label, length)
    assert suite.expand_with_label(secret, label, context, length) == expected
    keyed = suite.keyed(secret)
    assert keyed.expand_with_label(label, context, length) == expected
    assert keyed.derive_secret(label) == suite.derive_secret(secret, label)
