"""The seven cipher suites of RFC 9420 §17.1 and the labeled operations built on them (§5).

One frozen :class:`CipherSuite` per suite id, from :func:`cipher_suite`. Everything a group
computes goes through it: hashes, HKDF, AEAD, signatures, HPKE. The hot paths (ExpandWithLabel
for every message key, one signature verification per received message) avoid per-call object
construction: HKDF is one-shot OpenSSL HMAC, and loaded signature keys are cached per key
bytes in a small LRU, because loading an ECDSA private key costs a scalar multiplication.

Encodings are the ones RFC 9420 and its test vectors use: ECDSA public keys are SEC1
uncompressed points, private keys big-endian scalars, signatures DER; EdDSA keys and signatures
are raw.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from slimwire.errors import MlsError
from slimwire.mls._codec import Writer, encode_varint
from slimwire.mls._hmac import HmacKey, hmac_digest
from slimwire.mls._hpke import (
    AEAD_ALGORITHMS,
    KDFS,
    KEMS,
    Aead,
    AeadId,
    HpkeError,
    HpkeSuite,
    Kdf,
    KdfId,
    Kem,
    KemId,
    public_key_bytes,
)

__all__ = [
    "CipherSuite",
    "CryptoError",
    "KeyedSecret",
    "SignatureScheme",
    "Signer",
    "UnsupportedCipherSuite",
    "Verifier",
    "cipher_suite",
    "encoded_label",
    "expand_info_prefix",
    "labeled_content",
    "supported_suites",
]

_LABEL_PREFIX = b"MLS 1.0 "
_CACHE_SIZE = 256

CryptoError = HpkeError
"""Failure of a cryptographic operation (bad key encoding, AEAD or HPKE open failed)."""


class SignatureScheme(Enum):
    """TLS SignatureScheme code points used by the MLS suites."""

    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    ED25519 = 0x0807
    ED448 = 0x0808


# (curve, ECDSA algorithm object built once, scalar length)
_EC_CURVES: dict[SignatureScheme, tuple[ec.EllipticCurve, ec.ECDSA, int]] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: (ec.SECP256R1(), ec.ECDSA(hashes.SHA256()), 32),
    SignatureScheme.ECDSA_SECP384R1_SHA384: (ec.SECP384R1(), ec.ECDSA(hashes.SHA384()), 48),
    SignatureScheme.ECDSA_SECP521R1_SHA512: (ec.SECP521R1(), ec.ECDSA(hashes.SHA512()), 66),
}

_SigPrivate = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
_SigPublic = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _sig_private(scheme: SignatureScheme, data: bytes) -> _SigPrivate:
    try:
        if scheme is SignatureScheme.ED25519:
            return ed25519.Ed25519PrivateKey.from_private_bytes(data)
        if scheme is SignatureScheme.ED448:
            return ed448.Ed448PrivateKey.from_private_bytes(data)
        curve, _, size = _EC_CURVES[scheme]
        if not 0 < len(data) <= size:  # leading zero bytes may be dropped (P-521: 65 bytes)
            raise ValueError("bad scalar length")
        return ec.derive_private_key(int.from_bytes(data, "big"), curve)
    except ValueError:
        raise CryptoError(f"invalid {scheme.name} private key") from None


def _sig_public(scheme: SignatureScheme, data: bytes) -> _SigPublic:
    """Decode a public key (cached as part of its :func:`_verifier`)."""
    try:
        if scheme is SignatureScheme.ED25519:
            return ed25519.Ed25519PublicKey.from_public_bytes(data)
        if scheme is SignatureScheme.ED448:
            return ed448.Ed448PublicKey.from_public_bytes(data)
        if not data or data[0] != 0x04:
            raise ValueError("not an uncompressed point")
        return ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[scheme][0], data)
    except ValueError:
        raise CryptoError(f"invalid {scheme.name} public key") from None


def _sign(scheme: SignatureScheme, private_key: bytes, message: bytes) -> bytes:
    key = _sig_private(scheme, bytes(private_key))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, _EC_CURVES[scheme][1])
    return key.sign(message)


Verifier = Callable[[bytes, bytes], bool]
"""``verify(message, signature) -> bool`` under one loaded public key."""

Signer = Callable[[bytes], bytes]
"""``sign(message) -> signature`` under one loaded private key."""


def _signer(scheme: SignatureScheme, private_key: bytes) -> Signer:
    key = _sig_private(scheme, bytes(private_key))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa_key, algorithm = key, _EC_CURVES[scheme][1]

        def sign_ecdsa(message: bytes) -> bytes:
            return ecdsa_key.sign(message, algorithm)

        return sign_ecdsa
    return key.sign


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _verifier(scheme: SignatureScheme, public_key: bytes) -> Verifier:
    key = _sig_public(scheme, public_key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_CURVES[scheme][1]

        def verify_ecdsa(message: bytes, signature: bytes) -> bool:
            try:
                key.verify(signature, message, algorithm)
            except InvalidSignature:
                return False
            return True

        return verify_ecdsa
    eddsa = key

    def verify_eddsa(message: bytes, signature: bytes) -> bool:
        try:
            eddsa.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return verify_eddsa


def _generate(scheme: SignatureScheme) -> tuple[bytes, bytes]:
    private: _SigPrivate
    if scheme is SignatureScheme.ED25519:
        private = ed25519.Ed25519PrivateKey.generate()
        raw = private.private_bytes_raw()
    elif scheme is SignatureScheme.ED448:
        private = ed448.Ed448PrivateKey.generate()
        raw = private.private_bytes_raw()
    else:
        curve, _, size = _EC_CURVES[scheme]
        private = ec.generate_private_key(curve)
        raw = private.private_numbers().private_value.to_bytes(size, "big")
    return raw, public_key_bytes(private.public_key())


_LABELS: dict[bytes, bytes] = {}
_MAX_LABELS = 1024


def encoded_label(label: bytes) -> bytes:
    """``opaque label<V> = "MLS 1.0 " + Label``, memoised: labels are a handful of constants
    (plus exporter labels, hence the bound), and this sits on every key derivation."""
    encoded = _LABELS.get(label)
    if encoded is None:
        full = _LABEL_PREFIX + label
        encoded = encode_varint(len(full)) + full
        if len(_LABELS) < _MAX_LABELS:
            _LABELS[label] = encoded
    return encoded


def _opaque_len(n: int) -> bytes:
    """The varint in front of an ``opaque<V>`` of ``n`` bytes (one byte below 64)."""
    return bytes((n,)) if n < 0x40 else encode_varint(n)


def labeled_content(label: bytes, content: bytes) -> bytes:
    """``struct { opaque label<V> = "MLS 1.0 " + Label; opaque content<V>; }``: SignContent
    and EncryptContext (for a hot path that verifies with a :meth:`CipherSuite.verifier`)."""
    return encoded_label(label) + _opaque_len(len(content)) + content


def expand_info_prefix(label: bytes, length: int) -> bytes:
    """ExpandWithLabel's KDFLabel up to its context: ``uint16 length; opaque label<V>``. Hot
    paths that derive the same label again and again (the secret tree's ratchet steps, the
    sender-data key) keep it and append the context and HKDF's block counter."""
    return length.to_bytes(2, "big") + encoded_label(label)


class KeyedSecret:
    """One secret that derives several values (an epoch secret derives nine, a secret-tree
    node two, a ratchet secret three): ExpandWithLabel with the HMAC pads hashed once."""

    __slots__ = ("_mac", "_secret", "_suite")

    def __init__(self, suite: CipherSuite, secret: bytes) -> None:
        self._suite = suite
        self._secret = secret
        self._mac = HmacKey(suite.kdf.hash_name, secret)

    def __repr__(self) -> str:
        return f"KeyedSecret(suite=0x{self._suite.id:04x})"

    def expand_with_label(self, label: bytes, context: bytes, length: int) -> bytes:
        if length > self._suite.hash_len:  # more than one HKDF block: rare, the general way
            return self._suite.expand_with_label(self._secret, label, context, length)
        info = expand_info_prefix(label, length) + _opaque_len(len(context)) + context
        return self._mac.digest(info + b"\x01")[:length]

    def derive_secret(self, label: bytes) -> bytes:
        return self.expand_with_label(label, b"", self._suite.hash_len)


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One MLS cipher suite. Stateless and immutable; obtain it from :func:`cipher_suite`."""

    id: int
    name: str
    hpke: HpkeSuite = field(repr=False)
    signature_scheme: SignatureScheme = field(repr=False)
    _hash_fn: Callable[[bytes], hashlib._Hash] = field(repr=False)

    @property
    def kem(self) -> Kem:
        return self.hpke.kem

    @property
    def kdf(self) -> Kdf:
        return self.hpke.kdf

    @property
    def aead(self) -> Aead:
        return self.hpke.aead

    @property
    def hash_len(self) -> int:
        """Nh: hash and KDF output length."""
        return self.kdf.hash_len

    @property
    def aead_key_len(self) -> int:
        """Nk."""
        return self.aead.key_len

    @property
    def aead_nonce_len(self) -> int:
        """Nn."""
        return self.aead.nonce_len

    # -- hash and KDF -----------------------------------------------------------------------

    def hash(self, data: bytes) -> bytes:
        return self._hash_fn(data).digest()

    def mac(self, key: bytes, data: bytes) -> bytes:
        """MAC = HMAC with the suite's hash (RFC 9420 §5.1)."""
        return hmac_digest(self.kdf.hash_name, key, data)

    def kdf_extract(self, salt: bytes, ikm: bytes) -> bytes:
        return self.kdf.extract(salt, ikm)

    def kdf_expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        return self.kdf.expand(prk, info, length)

    def expand_with_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """ExpandWithLabel (§8): ``label`` without the "MLS 1.0 " prefix."""
        info = expand_info_prefix(label, length) + _opaque_len(len(context)) + context
        return self.kdf.expand(secret, info, length)

    def keyed(self, secret: bytes) -> KeyedSecret:
        """``secret`` ready for several ExpandWithLabel / DeriveSecret calls."""
        return KeyedSecret(self, secret)

    def derive_secret(self, secret: bytes, label: bytes) -> bytes:
        return self.expand_with_label(secret, label, b"", self.kdf.hash_len)

    def derive_tree_secret(
        self, secret: bytes, label: bytes, generation: int, length: int
    ) -> bytes:
        """DeriveTreeSecret (§9.1): the secret tree's per-generation step."""
        return self.expand_with_label(secret, label, generation.to_bytes(4, "big"), length)

    def ref_hash(self, label: bytes, value: bytes) -> bytes:
        """RefHash (§5.2): Hash of ``struct { opaque label<V>; opaque value<V>; }``."""
        return self.hash(bytes(Writer().opaque(label).opaque(value)))

    # -- AEAD -------------------------------------------------------------------------------

    def seal(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        return self.aead.seal(key, nonce, aad, plaintext)

    def open(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        """AEAD open; raises :class:`CryptoError` (an ``MlsError``) if it does not verify."""
        return self.aead.open(key, nonce, aad, ciphertext)

    # -- signatures -------------------------------------------------------------------------

    def sign(self, private_key: bytes, message: bytes) -> bytes:
        return _sign(self.signature_scheme, private_key, message)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """False for a signature that does not verify; :class:`CryptoError` for a public key
        that is not a valid encoding."""
        return _verifier(self.signature_scheme, bytes(public_key))(message, signature)

    def verifier(self, public_key: bytes) -> Verifier:
        """:meth:`verify` bound to one public key, for a caller that verifies many messages
        of one sender (the key is decoded once; :class:`CryptoError` if it is malformed)."""
        return _verifier(self.signature_scheme, bytes(public_key))

    def signer(self, private_key: bytes) -> Signer:
        """:meth:`sign` bound to one private key, for a sender that signs every message it
        sends (no cache lookup per message; :class:`CryptoError` if the key is malformed)."""
        return _signer(self.signature_scheme, private_key)

    def sign_with_label(self, private_key: bytes, label: bytes, content: bytes) -> bytes:
        return _sign(self.signature_scheme, private_key, labeled_content(label, content))

    def verify_with_label(
        self, public_key: bytes, label: bytes, content: bytes, signature: bytes
    ) -> bool:
        return self.verify(public_key, labeled_content(label, content), signature)

    def generate_signature_key_pair(self) -> tuple[bytes, bytes]:
        """A fresh (private, public) signature key pair."""
        return _generate(self.signature_scheme)

    def signature_public_key(self, private_key: bytes) -> bytes:
        """The public key belonging to a signature private key."""
        return public_key_bytes(
            _sig_private(self.signature_scheme, bytes(private_key)).public_key()
        )

    # -- HPKE -------------------------------------------------------------------------------

    def encrypt_with_label(
        self, public_key: bytes, label: bytes, context: bytes, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        """EncryptWithLabel (§5.1.3): SealBase with EncryptContext as info; returns
        ``(kem_output, ciphertext)``."""
        enc, ctx = self.hpke.setup_base_s(public_key, labeled_content(label, context))
        return enc, ctx.seal(b"", plaintext)

    def decrypt_with_label(
        self,
        private_key: bytes,
        label: bytes,
        context: bytes,
        kem_output: bytes,
        ciphertext: bytes,
    ) -> bytes:
        ctx = self.hpke.setup_base_r(kem_output, private_key, labeled_content(label, context))
        return ctx.open(b"", ciphertext)

    def hpke_export_sender(
        self, public_key: bytes, info: bytes, exporter_context: bytes, length: int
    ) -> tuple[bytes, bytes]:
        """SetupBaseS + Export, as an external commit derives its init secret (§8.3):
        returns ``(kem_output, exported_secret)``."""
        enc, ctx = self.hpke.setup_base_s(public_key, info)
        return enc, ctx.export(exporter_context, length)

    def hpke_export_receiver(
        self,
        private_key: bytes,
        kem_output: bytes,
        info: bytes,
        exporter_context: bytes,
        length: int,
    ) -> bytes:
        ctx = self.hpke.setup_base_r(kem_output, private_key, info)
        return ctx.export(exporter_context, length)

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """HPKE DeriveKeyPair (RFC 9180 §7.1.3): (private, public), serialized."""
        return self.kem.derive_key_pair(ikm)

    def generate_kem_key_pair(self) -> tuple[bytes, bytes]:
        return self.kem.generate_key_pair()

    def kem_public_key(self, private_key: bytes) -> bytes:
        """The HPKE public key belonging to a serialized HPKE private key."""
        return self.kem.public_key_of(private_key)


def _suite(suite_id: int, name: str, algorithms: tuple[KemId, KdfId, AeadId]) -> CipherSuite:
    kem, kdf, aead = algorithms
    sig = _SIGNATURES[suite_id]
    k = KDFS[kdf]
    return CipherSuite(
        suite_id,
        name,
        HpkeSuite(KEMS[kem], k, AEAD_ALGORITHMS[aead]),
        sig,
        getattr(hashlib, k.hash_name),
    )


_SIGNATURES = {
    0x0001: SignatureScheme.ED25519,
    0x0002: SignatureScheme.ECDSA_SECP256R1_SHA256,
    0x0003: SignatureScheme.ED25519,
    0x0004: SignatureScheme.ED448,
    0x0005: SignatureScheme.ECDSA_SECP521R1_SHA512,
    0x0006: SignatureScheme.ED448,
    0x0007: SignatureScheme.ECDSA_SECP384R1_SHA384,
}

_SUITES: dict[int, CipherSuite] = {
    s.id: s
    for s in (
        _suite(
            0x0001,
            "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
            (KemId.DHKEM_X25519, KdfId.HKDF_SHA256, AeadId.AES_128_GCM),
        ),
        _suite(
            0x0002,
            "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
            (KemId.DHKEM_P256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM),
        ),
        _suite(
            0x0003,
            "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
            (KemId.DHKEM_X25519, KdfId.HKDF_SHA256, AeadId.CHACHA20_POLY1305),
        ),
        _suite(
            0x0004,
            "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
            (KemId.DHKEM_X448, KdfId.HKDF_SHA512, AeadId.AES_256_GCM),
        ),
        _suite(
            0x0005,
            "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
            (KemId.DHKEM_P521, KdfId.HKDF_SHA512, AeadId.AES_256_GCM),
        ),
        _suite(
            0x0006,
            "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
            (KemId.DHKEM_X448, KdfId.HKDF_SHA512, AeadId.CHACHA20_POLY1305),
        ),
        _suite(
            0x0007,
            "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
            (KemId.DHKEM_P384, KdfId.HKDF_SHA384, AeadId.AES_256_GCM),
        ),
    )
}


class UnsupportedCipherSuite(MlsError):
    """A cipher suite id that is not one of RFC 9420's seven."""

    def __init__(self, suite_id: int) -> None:
        super().__init__(f"unsupported MLS cipher suite 0x{suite_id:04x}")
        self.suite_id = suite_id


def cipher_suite(suite_id: int) -> CipherSuite:
    """The suite for an id from the wire; :class:`UnsupportedCipherSuite` if unknown."""
    try:
        return _SUITES[suite_id]
    except KeyError:
        raise UnsupportedCipherSuite(suite_id) from None


def supported_suites() -> tuple[int, ...]:
    return tuple(_SUITES)
