"""HMAC (RFC 2104) for the key schedule, the secret tree and HKDF, built from hashlib.

Why not ``hmac.digest``: on OpenSSL 3 each call fetches and sets up an HMAC context, which
measured about 2 µs here against about 1 µs for the same MAC as two plain hash calls over the
key pads; and a key used several times (an epoch secret derives nine secrets, a ratchet secret
three) can hash its pads once and then pay two hash-state copies per MAC (about 0.7 µs). Every
HMAC in ``slimwire.mls`` goes through this module, so there is one implementation to test
(against ``hmac.digest``, for all three hashes and every key length class).

Keys are not cached here: a secret the secret tree or TreeKEM deletes must not live on in a
cache (forward secrecy). :class:`HmacKey` keeps the pads only as long as its owner keeps it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

__all__ = ["HmacKey", "hmac_digest", "hmac_digests", "hmac_triple"]

_Hash = Callable[[bytes], "hashlib._Hash"]

_TRANS_36 = bytes(x ^ 0x36 for x in range(256))
_TRANS_5C = bytes(x ^ 0x5C for x in range(256))

# hash name -> (constructor, block size)
_HASHES: dict[str, tuple[_Hash, int]] = {
    "sha256": (hashlib.sha256, 64),
    "sha384": (hashlib.sha384, 128),
    "sha512": (hashlib.sha512, 128),
}


def _pads(hash_name: str, key: bytes) -> tuple[_Hash, bytes, bytes]:
    new, block = _HASHES[hash_name]
    if len(key) > block:
        key = new(key).digest()
    key = key.ljust(block, b"\0")
    return new, key.translate(_TRANS_36), key.translate(_TRANS_5C)


def hmac_digest(hash_name: str, key: bytes, message: bytes) -> bytes:
    """HMAC of one message under a key used once (``hmac.digest`` with the same arguments,
    reordered to put the hash first like the rest of this package)."""
    new, ipad, opad = _pads(hash_name, key)
    return new(opad + new(ipad + message).digest()).digest()


def hmac_digests(hash_name: str, key: bytes, *messages: bytes) -> list[bytes]:
    """HMACs of a few messages under one short-lived key (a ratchet step MACs three): the
    pads are made once, each MAC is two one-shot hashes, which for up to three or so messages
    beats hashing the pads into reusable states (:class:`HmacKey`)."""
    new, ipad, opad = _pads(hash_name, key)
    out = []
    for m in messages:  # a loop, not a comprehension: no extra frame on this hot path
        out.append(new(opad + new(ipad + m).digest()).digest())
    return out


def hmac_triple(
    hash_name: str, key: bytes, m1: bytes, m2: bytes, m3: bytes
) -> tuple[bytes, bytes, bytes]:
    """The HMACs of three messages under one key used for nothing else: one secret-tree
    ratchet step (key, nonce, next secret), the per-message derivation of every sender and
    receiver. Unrolled, without the list and loop of :func:`hmac_digests`: about 0.5 µs of
    its 3 µs here, the rest being the six hashes themselves."""
    new, block = _HASHES[hash_name]
    if len(key) > block:
        key = new(key).digest()
    key = key.ljust(block, b"\0")
    ipad, opad = key.translate(_TRANS_36), key.translate(_TRANS_5C)
    return (
        new(opad + new(ipad + m1).digest()).digest(),
        new(opad + new(ipad + m2).digest()).digest(),
        new(opad + new(ipad + m3).digest()).digest(),
    )


class HmacKey:
    """A key whose pads are hashed once, for a secret that MACs several messages."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, hash_name: str, key: bytes) -> None:
        new, ipad, opad = _pads(hash_name, key)
        self._inner = new(ipad)
        self._outer = new(opad)

    def __repr__(self) -> str:
        return f"HmacKey({self._inner.name})"

    def with_prefix(self, prefix: bytes) -> HmacKey:
        """The same key with ``prefix`` already absorbed: ``digest(m)`` is then the HMAC of
        ``prefix + m``, for a hot path whose messages share a fixed start."""
        keyed = object.__new__(HmacKey)
        keyed._inner = self._inner.copy()
        keyed._inner.update(prefix)
        keyed._outer = self._outer
        return keyed

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
