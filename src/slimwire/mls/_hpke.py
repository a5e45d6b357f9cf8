"""HPKE base mode (RFC 9180) for the five DHKEMs MLS uses, written on ``cryptography``.

Why our own instead of ``cryptography.hazmat.primitives.hpke``: that module has no X448 KEM
(suites 0x0004 and 0x0006 need it), no exporter (external commits need it) and no
DeriveKeyPair (TreeKEM derives every node key pair from a path secret, RFC 9180 §7.1.3). All
three are small, so one implementation serves every suite the same way; a test checks that our
sealed boxes open with ``cryptography``'s implementation where it has the KEM.

Keys cross this module as bytes in RFC 9180's serializations: ``SerializePublicKey`` (SEC1
uncompressed points, raw X25519/X448) and ``SerializePrivateKey`` (big-endian scalars of
``Nsk`` bytes, raw X25519/X448). Loaded public keys are cached (small LRU: decoding a NIST
point is not free); private keys and AEAD keys never are, so that keys TreeKEM and the secret
tree delete are really gone (forward secrecy).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from slimwire.errors import MlsError
from slimwire.mls._hmac import HmacKey, hmac_digest

__all__ = [
    "AEAD_ALGORITHMS",
    "KDFS",
    "KEMS",
    "Aead",
    "AeadId",
    "HpkeContext",
    "HpkeError",
    "HpkeSuite",
    "Kdf",
    "KdfId",
    "Kem",
    "KemId",
    "hkdf_expand",
    "hkdf_extract",
    "public_key_bytes",
]

_CACHE_SIZE = 256
_VERSION = b"HPKE-v1"


class HpkeError(MlsError):
    """An HPKE operation failed: a malformed key or encapsulation, or a ciphertext that does
    not authenticate. The message never contains key material."""


class KemId(IntEnum):
    DHKEM_P256 = 0x0010
    DHKEM_P384 = 0x0011
    DHKEM_P521 = 0x0012
    DHKEM_X25519 = 0x0020
    DHKEM_X448 = 0x0021


class KdfId(IntEnum):
    HKDF_SHA256 = 0x0001
    HKDF_SHA384 = 0x0002
    HKDF_SHA512 = 0x0003


class AeadId(IntEnum):
    AES_128_GCM = 0x0001
    AES_256_GCM = 0x0002
    CHACHA20_POLY1305 = 0x0003


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 Extract: one HMAC (:mod:`._hmac`, cheaper than a ``cryptography`` HKDF object
    or OpenSSL's one-shot HMAC). An empty salt equals HashLen zero bytes under HMAC's key
    padding, so it is passed as is."""
    return hmac_digest(hash_name, salt, ikm)


def hkdf_expand(hash_name: str, hash_len: int, prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 Expand; the one-block case (every MLS key, nonce and secret) is one HMAC."""
    if length <= hash_len:
        return hmac_digest(hash_name, prk, info + b"\x01")[:length]
    if length > 255 * hash_len:
        raise ValueError("HKDF-Expand output too long")
    mac = HmacKey(hash_name, prk)
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = mac.digest(block + info + bytes((counter,)))
        out += block
        counter += 1
    return bytes(out[:length])


@dataclass(frozen=True, slots=True)
class Kdf:
    id: KdfId
    hash_name: str
    hash_len: int

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        return hkdf_extract(self.hash_name, salt, ikm)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        return hkdf_expand(self.hash_name, self.hash_len, prk, info, length)

    def labeled_extract(self, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return self.extract(salt, _VERSION + suite_id + label + ikm)

    def labeled_expand(
        self, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
    ) -> bytes:
        labeled_info = length.to_bytes(2, "big") + _VERSION + suite_id + label + info
        return self.expand(prk, labeled_info, length)


KDFS: dict[KdfId, Kdf] = {
    KdfId.HKDF_SHA256: Kdf(KdfId.HKDF_SHA256, "sha256", 32),
    KdfId.HKDF_SHA384: Kdf(KdfId.HKDF_SHA384, "sha384", 48),
    KdfId.HKDF_SHA512: Kdf(KdfId.HKDF_SHA512, "sha512", 64),
}


@dataclass(frozen=True, slots=True)
class Aead:
    id: AeadId
    key_len: int
    nonce_len: int

    def _cipher(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        if len(key) != self.key_len:
            raise HpkeError(f"AEAD key must be {self.key_len} bytes, got {len(key)}")
        # Not cached: MLS message keys are used once and then deleted (forward secrecy); a
        # cache would keep them alive, and building the cipher costs about a microsecond.
        if self.id == AeadId.CHACHA20_POLY1305:
            return ChaCha20Poly1305(key)
        return AESGCM(key)

    def seal(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        if len(nonce) != self.nonce_len:
            raise HpkeError(f"AEAD nonce must be {self.nonce_len} bytes, got {len(nonce)}")
        return self._cipher(key).encrypt(nonce, plaintext, aad)

    def open(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        if len(nonce) != self.nonce_len:
            raise HpkeError(f"AEAD nonce must be {self.nonce_len} bytes, got {len(nonce)}")
        try:
            return self._cipher(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise HpkeError("AEAD authentication failed") from None


AEAD_ALGORITHMS: dict[AeadId, Aead] = {
    AeadId.AES_128_GCM: Aead(AeadId.AES_128_GCM, 16, 12),
    AeadId.AES_256_GCM: Aead(AeadId.AES_256_GCM, 32, 12),
    AeadId.CHACHA20_POLY1305: Aead(AeadId.CHACHA20_POLY1305, 32, 12),
}

_PrivateKey = ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | x448.X448PrivateKey
_PublicKey = ec.EllipticCurvePublicKey | x25519.X25519PublicKey | x448.X448PublicKey

_CURVES: dict[KemId, ec.EllipticCurve] = {
    KemId.DHKEM_P256: ec.SECP256R1(),
    KemId.DHKEM_P384: ec.SECP384R1(),
    KemId.DHKEM_P521: ec.SECP521R1(),
}
_ORDERS: dict[KemId, int] = {
    KemId.DHKEM_P256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    KemId.DHKEM_P384: int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    KemId.DHKEM_P521: int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
        "FFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}


def _load_private(kem_id: KemId, data: bytes) -> _PrivateKey:
    """Not cached, unlike public keys: TreeKEM node keys must be forgotten when replaced."""
    try:
        if kem_id == KemId.DHKEM_X25519:
            return x25519.X25519PrivateKey.from_private_bytes(data)
        if kem_id == KemId.DHKEM_X448:
            return x448.X448PrivateKey.from_private_bytes(data)
        scalar = int.from_bytes(data, "big")
        if not 0 < scalar < _ORDERS[kem_id]:
            raise ValueError("scalar out of range")
        return ec.derive_private_key(scalar, _CURVES[kem_id])
    except ValueError:
        raise HpkeError(f"invalid {kem_id.name} private key") from None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_public(kem_id: KemId, data: bytes) -> _PublicKey:
    try:
        if kem_id == KemId.DHKEM_X25519:
            return x25519.X25519PublicKey.from_public_bytes(data)
        if kem_id == KemId.DHKEM_X448:
            return x448.X448PublicKey.from_public_bytes(data)
        if not data or data[0] != 0x04:
            raise ValueError("not an uncompressed point")
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[kem_id], data)
    except ValueError:
        raise HpkeError(f"invalid {kem_id.name} public key") from None


def public_key_bytes(key: _PublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) -> bytes:
    """The serialization MLS uses for a public key, KEM or signature: SEC1 uncompressed
    points for the NIST curves, raw bytes for the Edwards and Montgomery ones."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class Kem:
    """A DHKEM (RFC 9180 §4.1) with its own KDF; the KEM's KDF need not be the suite's."""

    id: KemId
    kdf: Kdf
    secret_len: int  # Nsecret
    public_len: int  # Npk == Nenc
    private_len: int  # Nsk
    suite_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "suite_id", b"KEM" + int(self.id).to_bytes(2, "big"))

    # -- keys -------------------------------------------------------------------------------

    def _private_key(self, data: bytes) -> _PrivateKey:
        # A NIST scalar is a big-endian integer: some implementations drop leading zero bytes
        # (P-521 keys of 65 bytes appear in the interop vectors), so shorter is accepted.
        nist = self.id not in (KemId.DHKEM_X25519, KemId.DHKEM_X448)
        if len(data) != self.private_len and not (nist and 0 < len(data) < self.private_len):
            raise HpkeError(f"{self.id.name} private key must be {self.private_len} bytes")
        return _load_private(self.id, bytes(data))

    def _public_key(self, data: bytes) -> _PublicKey:
        if len(data) != self.public_len:
            raise HpkeError(f"{self.id.name} public key must be {self.public_len} bytes")
        return _load_public(self.id, bytes(data))

    def public_key_of(self, private_key: bytes) -> bytes:
        return public_key_bytes(self._private_key(private_key).public_key())

    def check_public_key(self, public_key: bytes) -> None:
        """Raise :class:`HpkeError` unless ``public_key`` is a valid encoded point."""
        self._public_key(public_key)

    def generate_key_pair(self) -> tuple[bytes, bytes]:
        """A fresh (private, public) pair, serialized."""
        return self.derive_key_pair(os.urandom(self.private_len))

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """RFC 9180 §7.1.3 DeriveKeyPair: (SerializePrivateKey(sk), SerializePublicKey(pk))."""
        dkp_prk = self.kdf.labeled_extract(self.suite_id, b"", b"dkp_prk", ikm)
        if self.id in (KemId.DHKEM_X25519, KemId.DHKEM_X448):
            sk = self.kdf.labeled_expand(self.suite_id, dkp_prk, b"sk", b"", self.private_len)
            return sk, self.public_key_of(sk)
        order = _ORDERS[self.id]
        bitmask = 0x01 if self.id == KemId.DHKEM_P521 else 0xFF
        for counter in range(256):
            candidate = bytearray(
                self.kdf.labeled_expand(
                    self.suite_id, dkp_prk, b"candidate", bytes((counter,)), self.private_len
                )
            )
            candidate[0] &= bitmask
            scalar = int.from_bytes(candidate, "big")
            if 0 < scalar < order:
                sk = bytes(candidate)
                return sk, self.public_key_of(sk)
        raise HpkeError("DeriveKeyPair: no valid candidate")  # pragma: no cover (p < 2^-256)

    # -- encapsulation ----------------------------------------------------------------------

    def _dh(self, private: _PrivateKey, public: _PublicKey) -> bytes:
        try:
            if isinstance(private, ec.EllipticCurvePrivateKey):
                assert isinstance(public, ec.EllipticCurvePublicKey)
                return private.exchange(ec.ECDH(), public)
            if isinstance(private, x25519.X25519PrivateKey):
                assert isinstance(public, x25519.X25519PublicKey)
                return private.exchange(public)
            assert isinstance(public, x448.X448PublicKey)
            return private.exchange(public)
        except ValueError:
            raise HpkeError(f"{self.id.name}: invalid Diffie-Hellman result") from None

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        eae_prk = self.kdf.labeled_extract(self.suite_id, b"", b"eae_prk", dh)
        return self.kdf.labeled_expand(
            self.suite_id, eae_prk, b"shared_secret", kem_context, self.secret_len
        )

    def encap(self, public_key: bytes, ikm_e: bytes | None = None) -> tuple[bytes, bytes]:
        """(shared_secret, enc). ``ikm_e`` fixes the ephemeral key (tests only)."""
        pk_r = self._public_key(public_key)
        sk_e, enc = self.derive_key_pair(ikm_e) if ikm_e is not None else self.generate_key_pair()
        dh = self._dh(_load_private(self.id, sk_e), pk_r)
        return self._extract_and_expand(dh, enc + public_key), enc

    def decap(self, enc: bytes, private_key: bytes) -> bytes:
        sk_r = self._private_key(private_key)
        pk_e = self._public_key(enc)
        dh = self._dh(sk_r, pk_e)
        return self._extract_and_expand(dh, enc + public_key_bytes(sk_r.public_key()))


KEMS: dict[KemId, Kem] = {
    KemId.DHKEM_P256: Kem(KemId.DHKEM_P256, KDFS[KdfId.HKDF_SHA256], 32, 65, 32),
    KemId.DHKEM_P384: Kem(KemId.DHKEM_P384, KDFS[KdfId.HKDF_SHA384], 48, 97, 48),
    KemId.DHKEM_P521: Kem(KemId.DHKEM_P521, KDFS[KdfId.HKDF_SHA512], 64, 133, 66),
    KemId.DHKEM_X25519: Kem(KemId.DHKEM_X25519, KDFS[KdfId.HKDF_SHA256], 32, 32, 32),
    KemId.DHKEM_X448: Kem(KemId.DHKEM_X448, KDFS[KdfId.HKDF_SHA512], 64, 56, 56),
}


@dataclass(frozen=True, slots=True)
class HpkeContext:
    """The output of RFC 9180 §5.1 KeySchedule in base mode, for a single-shot seal/open
    (sequence number 0, so the nonce is ``base_nonce``) or an export. MLS never sends more
    than one message per context."""

    suite: HpkeSuite
    key: bytes = field(repr=False)
    base_nonce: bytes = field(repr=False)
    exporter_secret: bytes = field(repr=False)

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        return self.suite.aead.seal(self.key, self.base_nonce, aad, plaintext)

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        return self.suite.aead.open(self.key, self.base_nonce, aad, ciphertext)

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """RFC 9180 §5.3 Context.Export."""
        return self.suite.kdf.labeled_expand(
            self.suite.suite_id, self.exporter_secret, b"sec", exporter_context, length
        )


@dataclass(frozen=True, slots=True)
class HpkeSuite:
    """A (KEM, KDF, AEAD) triple; sets up base-mode contexts."""

    kem: Kem
    kdf: Kdf
    aead: Aead
    suite_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "suite_id",
            b"HPKE"
            + int(self.kem.id).to_bytes(2, "big")
            + int(self.kdf.id).to_bytes(2, "big")
            + int(self.aead.id).to_bytes(2, "big"),
        )

    def key_schedule(self, shared_secret: bytes, info: bytes) -> HpkeContext:
        kdf, sid = self.kdf, self.suite_id
        psk_id_hash = kdf.labeled_extract(sid, b"", b"psk_id_hash", b"")
        info_hash = kdf.labeled_extract(sid, b"", b"info_hash", info)
        context = b"\x00" + psk_id_hash + info_hash
        secret = kdf.labeled_extract(sid, shared_secret, b"secret", b"")
        return HpkeContext(
            self,
            kdf.labeled_expand(sid, secret, b"key", context, self.aead.key_len),
            kdf.labeled_expand(sid, secret, b"base_nonce", context, self.aead.nonce_len),
            kdf.labeled_expand(sid, secret, b"exp", context, kdf.hash_len),
        )

    def setup_base_s(
        self, public_key: bytes, info: bytes, ikm_e: bytes | None = None
    ) -> tuple[bytes, HpkeContext]:
        """(enc, sender context). ``ikm_e`` fixes the ephemeral key (tests only)."""
        shared_secret, enc = self.kem.encap(public_key, ikm_e)
        return enc, self.key_schedule(shared_secret, info)

    def setup_base_r(self, enc: bytes, private_key: bytes, info: bytes) -> HpkeContext:
        return self.key_schedule(self.kem.decap(enc, private_key), info)
