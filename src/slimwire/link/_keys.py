"""Link key agreement: X25519 (optionally hybrid with ML-KEM-768) and HKDF-SHA256.

Each link gets its own header-MAC key, agreed during link negotiation from ephemeral keys, so a
tag made for one link never verifies on another. The derivation is the reference's exactly:
``HKDF-SHA256(salt=link_id UTF-8, ikm=shared, info=..., L=32)``; the hybrid mode concatenates the
X25519 and ML-KEM-768 shared secrets and uses a distinct ``info`` so the two modes can never
yield the same key.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from slimwire.errors import LinkNegotiationError

X25519_PUBLIC_KEY_LEN = 32
MLKEM768_PUBLIC_KEY_LEN = 1184
MLKEM768_CIPHERTEXT_LEN = 1088
LINK_KEY_LEN = 32
HKDF_INFO = b"SLIM-DP-inter-node-hmac-v1"
HKDF_INFO_PQ = b"SLIM-DP-inter-node-hmac-v1-pq"


def derive_link_key(shared: bytes, link_id: str, *, hybrid: bool = False) -> bytes:
    """The 32-byte header-MAC key of a link from its key-agreement output ``shared``.

    ``shared`` is the X25519 secret (classical) or X25519 secret || ML-KEM secret (hybrid).
    """
    info = HKDF_INFO_PQ if hybrid else HKDF_INFO
    return HKDF(algorithm=SHA256(), length=LINK_KEY_LEN, salt=link_id.encode(), info=info).derive(
        shared
    )


def x25519_keypair() -> tuple[X25519PrivateKey, bytes]:
    """A fresh ephemeral X25519 key pair: the private key and the 32 raw public bytes."""
    sk = X25519PrivateKey.generate()
    return sk, sk.public_key().public_bytes_raw()


def x25519_shared(sk: X25519PrivateKey, peer_public: bytes) -> bytes:
    """X25519 with a peer's raw public key; a malformed or low-order key is a negotiation error."""
    if len(peer_public) != X25519_PUBLIC_KEY_LEN:
        raise LinkNegotiationError(
            f"public key length is invalid: {len(peer_public)} bytes, expected "
            f"{X25519_PUBLIC_KEY_LEN}"
        )
    try:
        return sk.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except (ValueError, UnsupportedAlgorithm) as exc:
        # OpenSSL refuses an all-zero result (a low-order peer point): no key can be agreed.
        raise LinkNegotiationError(f"X25519 key agreement failed: {exc}") from None


def mlkem_keypair() -> tuple[MLKEM768PrivateKey, bytes]:
    """A fresh ML-KEM-768 decapsulation key and its 1184-byte encapsulation key."""
    sk = MLKEM768PrivateKey.generate()
    return sk, sk.public_key().public_bytes_raw()


def mlkem_encapsulate(peer_public: bytes) -> tuple[bytes, bytes]:
    """Encapsulate to a peer's ML-KEM-768 key: ``(ciphertext, shared secret)``."""
    if len(peer_public) != MLKEM768_PUBLIC_KEY_LEN:
        raise LinkNegotiationError(
            f"ML-KEM-768 public key length is invalid: {len(peer_public)} bytes"
        )
    try:
        shared, ciphertext = MLKEM768PublicKey.from_public_bytes(peer_public).encapsulate()
    except ValueError as exc:
        raise LinkNegotiationError(f"ML-KEM-768 encapsulation failed: {exc}") from None
    return ciphertext, shared


def mlkem_decapsulate(sk: MLKEM768PrivateKey, ciphertext: bytes) -> bytes:
    """The shared secret from the peer's ML-KEM-768 ciphertext."""
    if len(ciphertext) != MLKEM768_CIPHERTEXT_LEN:
        raise LinkNegotiationError(
            f"ML-KEM-768 ciphertext length is invalid: {len(ciphertext)} bytes"
        )
    try:
        return sk.decapsulate(ciphertext)
    except ValueError as exc:
        raise LinkNegotiationError(f"ML-KEM-768 decapsulation failed: {exc}") from None
