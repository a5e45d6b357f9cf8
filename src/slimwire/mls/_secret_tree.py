"""The secret tree and its per-sender hash ratchets (RFC 9420 §9), and the sender-data keys.

The tree hands out one key and nonce per (sender leaf, content kind, generation) and forgets
each secret as soon as everything it can derive has been derived: parents once both children
exist, a leaf secret once its two ratchets exist, a ratchet step once its key has been used.
That is what gives MLS forward secrecy inside an epoch, so a key is returned once, never twice.

Receivers may get messages out of order: keys for skipped generations are kept in a bounded
cache (``max_skipped``), and a jump forward is bounded (``max_forward``) so a forged generation
cannot make us hash a billion times. This object is mutable by nature (it consumes secrets);
it is sans-IO and owned by one group state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from slimwire.errors import MlsError
from slimwire.mls import _tree_math as tm
from slimwire.mls._suites import CipherSuite

__all__ = [
    "MessageKey",
    "RatchetType",
    "SecretTree",
    "SecretTreeError",
    "sender_data_key_nonce",
]


class SecretTreeError(MlsError):
    """No key can be given for this sender and generation: the leaf is outside the tree, the
    generation was already used (or evicted), or it lies too far ahead."""


class RatchetType(Enum):
    HANDSHAKE = b"handshake"
    APPLICATION = b"application"


@dataclass(frozen=True, slots=True)
class MessageKey:
    generation: int
    key: bytes = field(repr=False)
    nonce: bytes = field(repr=False)


def sender_data_key_nonce(
    suite: CipherSuite, sender_data_secret: bytes, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """Key and nonce for a PrivateMessage's sender data (§6.3.2), from the first ``Nh`` bytes
    of its ciphertext (all of it when shorter)."""
    sample = ciphertext[: suite.hash_len]
    return (
        suite.expand_with_label(sender_data_secret, b"key", sample, suite.aead_key_len),
        suite.expand_with_label(sender_data_secret, b"nonce", sample, suite.aead_nonce_len),
    )


class _HashRatchet:
    __slots__ = ("generation", "secret", "skipped")

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.generation = 0
        self.skipped: OrderedDict[int, MessageKey] = OrderedDict()


class SecretTree:
    """Per-epoch message keys for every member, derived from the epoch's encryption secret."""

    __slots__ = ("_max_forward", "_max_skipped", "_nodes", "_ratchets", "n_leaves", "suite")

    def __init__(
        self,
        suite: CipherSuite,
        encryption_secret: bytes,
        n_leaves: int,
        *,
        max_forward: int = 1024,
        max_skipped: int = 256,
    ) -> None:
        if n_leaves < 1 or n_leaves & (n_leaves - 1):
            raise ValueError(f"an MLS tree has a power-of-two number of leaves, not {n_leaves}")
        self.suite = suite
        self.n_leaves = n_leaves
        self._max_forward = max_forward
        self._max_skipped = max_skipped
        self._nodes: dict[int, bytes] = {tm.root(n_leaves): encryption_secret}
        self._ratchets: dict[tuple[int, RatchetType], _HashRatchet] = {}

    def __repr__(self) -> str:
        return f"SecretTree(suite=0x{self.suite.id:04x}, n_leaves={self.n_leaves})"

    # -- tree -------------------------------------------------------------------------------

    def _leaf_secret(self, leaf: int) -> bytes:
        """Derive the leaf's secret, deleting every consumed ancestor secret on the way."""
        target = tm.leaf_to_node(leaf)
        path = [target, *tm.direct_path(target, self.n_leaves)]
        start = next((i for i, node in enumerate(path) if node in self._nodes), None)
        if start is None:
            raise SecretTreeError(f"secret for leaf {leaf} already consumed")
        suite, nh = self.suite, self.suite.hash_len
        for node in reversed(path[1 : start + 1]):
            secret = self._nodes.pop(node)
            self._nodes[tm.left(node)] = suite.expand_with_label(secret, b"tree", b"left", nh)
            self._nodes[tm.right(node)] = suite.expand_with_label(secret, b"tree", b"right", nh)
        return self._nodes.pop(target)

    def _ratchet(self, leaf: int, kind: RatchetType) -> _HashRatchet:
        ratchet = self._ratchets.get((leaf, kind))
        if ratchet is not None:
            return ratchet
        if not 0 <= leaf < self.n_leaves:
            raise SecretTreeError(f"leaf {leaf} outside a tree of {self.n_leaves} leaves")
        secret = self._leaf_secret(leaf)
        nh = self.suite.hash_len
        for k in RatchetType:
            self._ratchets[(leaf, k)] = _HashRatchet(
                self.suite.expand_with_label(secret, k.value, b"", nh)
            )
        return self._ratchets[(leaf, kind)]

    # -- ratchets ---------------------------------------------------------------------------

    def _step(self, ratchet: _HashRatchet) -> MessageKey:
        """The key of the ratchet's current generation; then advance (the old secret is gone)."""
        suite, g, secret = self.suite, ratchet.generation, ratchet.secret
        out = MessageKey(
            g,
            suite.derive_tree_secret(secret, b"key", g, suite.aead_key_len),
            suite.derive_tree_secret(secret, b"nonce", g, suite.aead_nonce_len),
        )
        ratchet.secret = suite.derive_tree_secret(secret, b"secret", g, suite.hash_len)
        ratchet.generation = g + 1
        return out

    def next_key(self, leaf: int, kind: RatchetType) -> MessageKey:
        """The next key for sending from ``leaf`` (our own leaf)."""
        ratchet = self._ratchet(leaf, kind)
        if ratchet.generation >= 1 << 32:
            raise SecretTreeError("generation counter exhausted")
        return self._step(ratchet)

    def key_for(self, leaf: int, kind: RatchetType, generation: int) -> MessageKey:
        """The key a message from ``leaf`` at ``generation`` was sent with; each is handed out
        once (:class:`SecretTreeError` for a reused, evicted or too-distant generation)."""
        ratchet = self._ratchet(leaf, kind)
        if generation < ratchet.generation:
            skipped = ratchet.skipped.pop(generation, None)
            if skipped is None:
                raise SecretTreeError(f"generation {generation} of leaf {leaf} already used")
            return skipped
        if generation - ratchet.generation > self._max_forward:
            raise SecretTreeError(f"generation {generation} of leaf {leaf} is too far ahead")
        while ratchet.generation < generation:
            key = self._step(ratchet)
            ratchet.skipped[key.generation] = key
            if len(ratchet.skipped) > self._max_skipped:
                ratchet.skipped.popitem(last=False)
        return self._step(ratchet)
