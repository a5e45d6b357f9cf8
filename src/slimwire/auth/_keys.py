"""Signature keys: the key an app signs its session-control headers (and MLS leaves) with.

The reference generates one key pair per identity provider, for the MLS ciphersuite in use: P-256
by default (ciphersuite 0x0002), Ed25519 with its ``curve25519`` feature. The public key travels
inside every identity token (claim ``pubkey``), so the verifier picks the algorithm from the key
length alone, as the reference does: 32 bytes is Ed25519, 33 or 65 bytes is a SEC1 P-256 point.
P-256 signatures are ECDSA-SHA256 in DER; Ed25519 signatures are the raw 64 bytes.
"""

from __future__ import annotations

import enum
import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from slimwire.errors import AuthError

__all__ = ["KeyAlgorithm", "SigningKey", "verify_signature"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256_SCALAR_LEN = 32


class KeyAlgorithm(enum.Enum):
    """Signature algorithms the reference accepts for header signatures."""

    P256 = "p256"
    ED25519 = "ed25519"


class SigningKey:
    """A private signature key with its public half in the reference's byte encoding."""

    __slots__ = ("_key", "_public", "algorithm")

    def __init__(self, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"only P-256 EC keys are supported, got {key.curve.name}")
            self.algorithm = KeyAlgorithm.P256
            self._public = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            self.algorithm = KeyAlgorithm.ED25519
            self._public = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        else:  # pragma: no cover - guarded by the type annotation
            raise TypeError(f"unsupported key type {type(key).__name__}")
        self._key = key

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm = KeyAlgorithm.P256) -> SigningKey:
        """A fresh key; P-256 unless asked otherwise (the reference's default ciphersuite)."""
        if algorithm is KeyAlgorithm.P256:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes, algorithm: KeyAlgorithm) -> SigningKey:
        """Load the raw form :attr:`private_bytes` gives (P-256 scalar or Ed25519 seed)."""
        if algorithm is KeyAlgorithm.P256:
            if not 0 < len(data) <= _P256_SCALAR_LEN:
                raise ValueError("a P-256 private key is a scalar of at most 32 bytes")
            try:
                return cls(ec.derive_private_key(int.from_bytes(data, "big"), ec.SECP256R1()))
            except ValueError as exc:
                raise ValueError(f"invalid P-256 private scalar: {exc}") from None
        if len(data) != 32:
            raise ValueError("an Ed25519 private key is a 32-byte seed")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(data))

    @property
    def public_bytes(self) -> bytes:
        """SEC1 uncompressed point (65 bytes) for P-256, the raw 32 bytes for Ed25519."""
        return self._public

    @property
    def private_bytes(self) -> bytes:
        """The raw private key: a big-endian 32-byte scalar, or the 32-byte Ed25519 seed."""
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.private_numbers().private_value.to_bytes(_P256_SCALAR_LEN, "big")
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> bytes:
        """ECDSA-P256-SHA256 (DER) or Ed25519 over ``data``."""
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, _ECDSA_SHA256)
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm.value}, public={self._public[:6].hex()}…)"


@functools.lru_cache(maxsize=1024)
def _load_public(
    public_key: bytes,
) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    # Keys repeat on every message from a peer; parsing a point costs more than the cache.
    if len(public_key) == 32:
        return ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    if len(public_key) in (33, 65):
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    raise ValueError(f"public key length {len(public_key)} is neither Ed25519 nor P-256")


def verify_signature(public_key: bytes, signature: bytes, data: bytes) -> None:
    """Verify a header signature; the algorithm follows from the key length.

    Raises :class:`AuthError` when the key is malformed or the signature does not verify.
    """
    try:
        key = _load_public(bytes(public_key))
    except ValueError as exc:
        raise AuthError(f"invalid signature public key: {exc}") from None
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, _ECDSA_SHA256)
    except (InvalidSignature, ValueError):
        raise AuthError("header signature does not verify") from None
