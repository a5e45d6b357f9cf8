"""Cipher suites and HPKE beyond the vectors: interop of our HPKE with ``cryptography``'s
independent implementation, the exporter, DeriveKeyPair, and hostile key bytes."""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.errors import MlsError
from slimwire.mls._suites import UnsupportedCipherSuite, cipher_suite, supported_suites

ALL = supported_suites()

# (our suite id, cryptography's KEM, KDF, AEAD, curve or None for X25519)
_CRYPTOGRAPHY_SUITES = [
    (0x0001, hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM, None),
    (0x0002, hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM, ec.SECP256R1()),
    (0x0003, hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305, None),
    (0x0005, hpke.KEM.P521, hpke.KDF.HKDF_SHA512, hpke.AEAD.AES_256_GCM, ec.SECP521R1()),
    (0x0007, hpke.KEM.P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM, ec.SECP384R1()),
]


def test_all_seven_suites() -> None:
    assert ALL == (1, 2, 3, 4, 5, 6, 7)
    for sid in ALL:
        cs = cipher_suite(sid)
        assert cs.id == sid
        assert len(cs.hash(b"")) == cs.hash_len
    with pytest.raises(UnsupportedCipherSuite):
        cipher_suite(0x0008)
    assert issubclass(UnsupportedCipherSuite, MlsError)


@pytest.mark.parametrize(("sid", "kem", "kdf", "aead", "curve"), _CRYPTOGRAPHY_SUITES)
def test_hpke_interoperates_with_cryptography(
    sid: int,
    kem: hpke.KEM,
    kdf: hpke.KDF,
    aead: hpke.AEAD,
    curve: ec.EllipticCurve | None,
) -> None:
    cs = cipher_suite(sid)
    theirs = hpke.Suite(kem, kdf, aead)
    sk, pk = cs.generate_kem_key_pair()
    pub: ec.EllipticCurvePublicKey | x25519.X25519PublicKey
    priv: ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey
    if curve is None:
        pub = x25519.X25519PublicKey.from_public_bytes(pk)
        priv = x25519.X25519PrivateKey.from_private_bytes(sk)
    else:
        pub = ec.EllipticCurvePublicKey.from_encoded_point(curve, pk)
        priv = ec.derive_private_key(int.from_bytes(sk, "big"), curve)
    n_enc = cs.kem.public_len
    # theirs -> ours
    box = theirs.encrypt(b"to ours", pub, info=b"info")
    assert cs.hpke.setup_base_r(box[:n_enc], sk, b"info").open(b"", box[n_enc:]) == b"to ours"
    # ours -> theirs
    enc, ctx = cs.hpke.setup_base_s(pk, b"info")
    assert theirs.decrypt(enc + ctx.seal(b"", b"to theirs"), priv, info=b"info") == b"to theirs"


@pytest.mark.parametrize("sid", ALL)
def test_exporter_and_round_trips(sid: int) -> None:
    cs = cipher_suite(sid)
    sk, pk = cs.generate_kem_key_pair()
    kem_output, secret = cs.hpke_export_sender(pk, b"", b"MLS 1.0 external init secret", 32)
    assert len(secret) == 32
    assert cs.hpke_export_receiver(sk, kem_output, b"", b"MLS 1.0 external init secret", 32) == (
        secret
    )
    assert cs.hpke_export_receiver(sk, kem_output, b"", b"other", 32) != secret
    ssk, spk = cs.generate_signature_key_pair()
    assert cs.signature_public_key(ssk) == spk
    sig = cs.sign_with_label(ssk, b"LeafNodeTBS", b"content")
    assert cs.verify_with_label(spk, b"LeafNodeTBS", b"content", sig)
    assert not cs.verify_with_label(spk, b"LeafNodeTBS", b"content!", sig)
    key, nonce = bytes(cs.aead_key_len), bytes(cs.aead_nonce_len)
    ct = cs.seal(key, nonce, b"aad", b"pt")
    assert cs.open(key, nonce, b"aad", ct) == b"pt"
    with pytest.raises(MlsError):
        cs.open(key, nonce, b"aaD", ct)


@pytest.mark.parametrize("sid", ALL)
def test_derive_key_pair_is_deterministic_and_valid(sid: int) -> None:
    cs = cipher_suite(sid)
    sk, pk = cs.derive_key_pair(b"path secret")
    assert cs.derive_key_pair(b"path secret") == (sk, pk)
    assert cs.derive_key_pair(b"path secret2")[0] != sk
    assert cs.kem_public_key(sk) == pk
    ct = cs.encrypt_with_label(pk, b"UpdatePathNode", b"ctx", b"secret")
    assert cs.decrypt_with_label(sk, b"UpdatePathNode", b"ctx", *ct) == b"secret"


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(ALL), st.binary(max_size=140), st.binary(max_size=140))
def test_hostile_key_and_ciphertext_bytes_raise_mls_errors(sid: int, a: bytes, b: bytes) -> None:
    """Keys, KEM outputs and signatures come off the network: garbage must give an MlsError
    (or ``False`` for a signature), never another exception."""
    cs = cipher_suite(sid)
    sk, _ = cs.derive_key_pair(b"k")
    with pytest.raises(MlsError):
        cs.decrypt_with_label(sk, b"l", b"", a, b)
    with contextlib.suppress(MlsError):
        cs.encrypt_with_label(a, b"l", b"", b"")
    with contextlib.suppress(MlsError):
        assert not cs.verify_with_label(a, b"l", b"c", b)
    _, spk = _SIG_KEYS[sid]
    assert not cs.verify_with_label(spk, b"l", b"c", a)


_SIG_KEYS = {sid: cipher_suite(sid).generate_signature_key_pair() for sid in ALL}


def test_p521_private_keys_without_leading_zero_bytes() -> None:
    """Some implementations serialize P-521 scalars minimally (65 bytes instead of 66; the
    passive-client interop vectors contain such keys): they load as the same key."""
    cs = cipher_suite(0x0005)
    for _ in range(64):  # a 66-byte scalar has a zero first byte with probability ~1/2
        sk, pk = cs.generate_kem_key_pair()
        if sk[0] == 0:
            break
    assert sk[0] == 0
    assert cs.kem_public_key(sk[1:]) == pk
    kem_output, ct = cs.encrypt_with_label(pk, b"l", b"c", b"secret")
    assert cs.decrypt_with_label(sk[1:], b"l", b"c", kem_output, ct) == b"secret"
    for _ in range(64):
        ssk, spk = cs.generate_signature_key_pair()
        if ssk[0] == 0:
            break
    assert ssk[0] == 0
    assert cs.signature_public_key(ssk[1:]) == spk
    assert cs.verify_with_label(spk, b"l", b"c", cs.sign_with_label(ssk[1:], b"l", b"c"))
