"""The secret tree and its per-sender hash ratchets (RFC 9420 §9), and the sender-data keys.

The tree hands out one key and nonce per (sender leaf, content kind, generation) and forgets
each secret as soon as everything it can derive has been derived: parents once both children
exist, a leaf secret once its two ratchets exist, a ratchet step once its key has been used.
That is what gives MLS forward secrecy inside an epoch, so a key is handed out once, never
twice.

A receiver must not lose a key to a message that later fails (a forged signature, a wrong
AAD, a commit that does not verify): the genuine message with that generation would then be
undecryptable. So taking a key is two steps. :meth:`SecretTree.prepare` computes the key and
the tree's next state without changing anything and returns them as a :class:`PendingKey`;
:meth:`SecretTree.consume` installs that state once the message has been accepted, deleting
the secrets it used. A pending key that is dropped leaves no trace, so there is nothing to roll
back. The ratchet states are immutable values, which is what lets ``prepare`` share everything
it does not change and ``consume`` check cheaply that the tree has not moved on meanwhile.

Receivers may get messages out of order: keys for skipped generations are kept in a bounded
cache (``max_skipped``, oldest evicted first), and a jump forward is bounded (``max_forward``)
so a forged generation cannot make us hash a billion times. The tree is sans-IO and owned by
one group state; :meth:`SecretTree.encode` stores its position so that a restored sender never
reuses a generation (which would reuse an AEAD nonce).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import NamedTuple

from slimwire.errors import MlsError
from slimwire.mls import _tree_math as tm
from slimwire.mls._codec import DecodeError, Reader, Writer, decode_all
from slimwire.mls._hmac import hmac_triple
from slimwire.mls._suites import CipherSuite, expand_info_prefix

__all__ = [
    "MessageKey",
    "PendingKey",
    "RatchetType",
    "SecretTree",
    "SecretTreeError",
    "sender_data_key_nonce",
]

_MAX_GENERATION = (1 << 32) - 1


class SecretTreeError(MlsError):
    """No key can be given for this sender and generation: the leaf is outside the tree, the
    generation was already used (or evicted), or it lies too far ahead."""


class RatchetType(Enum):
    HANDSHAKE = b"handshake"
    APPLICATION = b"application"


class MessageKey(NamedTuple):
    """The AEAD key and nonce of one generation of one sender's ratchet."""

    generation: int
    key: bytes
    nonce: bytes

    def __repr__(self) -> str:
        return f"MessageKey(generation={self.generation})"


def sender_data_key_nonce(
    suite: CipherSuite, sender_data_secret: bytes, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """Key and nonce for a PrivateMessage's sender data (§6.3.2), from the first ``Nh`` bytes
    of its ciphertext (all of it when shorter)."""
    sample = ciphertext[: suite.hash_len]
    keyed = suite.keyed(sender_data_secret)
    return (
        keyed.expand_with_label(b"key", sample, suite.aead_key_len),
        keyed.expand_with_label(b"nonce", sample, suite.aead_nonce_len),
    )


class _Ratchet(NamedTuple):
    """One sender's hash ratchet: the secret of ``generation`` and the keys it skipped. A
    value: a step makes a new one (``skipped`` is never changed in place, only replaced)."""

    generation: int
    secret: bytes
    skipped: Mapping[int, MessageKey]


_NOTHING_SKIPPED: Mapping[int, MessageKey] = {}
_NOTHING_ADDED: tuple[tuple[int, bytes], ...] = ()


class PendingKey(NamedTuple):
    """A message key taken from a :class:`SecretTree` but not yet used up: ``key`` is what the
    caller decrypts with; the other fields are the tree's state once it is consumed (for the
    tree alone). Dropping it changes nothing."""

    leaf: int
    kind: RatchetType
    key: MessageKey
    before: _Ratchet | None  # the ratchet this was computed from; None: not derived yet
    after: _Ratchet
    other: _Ratchet | None  # the leaf's other ratchet, when this derives the leaf's secret
    start: int  # the tree node the leaf's secret was derived from (-1: not derived here)
    added: tuple[tuple[int, bytes], ...]  # the co-path node secrets that derivation leaves

    def __repr__(self) -> str:
        return f"PendingKey(leaf={self.leaf}, kind={self.kind.name}, {self.key!r})"


def _index(leaf: int, kind: RatchetType) -> int:
    return leaf << 1 | (kind is RatchetType.APPLICATION)


class SecretTree:
    """Per-epoch message keys for every member, derived from the epoch's encryption secret."""

    __slots__ = (
        "_max_forward",
        "_max_skipped",
        "_nodes",
        "_ratchets",
        "_sizes",
        "_step_prefixes",
        "n_leaves",
        "suite",
    )

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
        self._ratchets: dict[int, _Ratchet] = {}  # by _index(leaf, kind)
        # plain fields for the per-message step (the suite's sizes are property chains)
        self._sizes = (suite.kdf.hash_name, suite.aead_key_len, suite.aead_nonce_len)
        # DeriveTreeSecret's KDFLabel up to the generation (a 4-byte context), per label
        self._step_prefixes = tuple(
            expand_info_prefix(label, length) + b"\x04"
            for label, length in (
                (b"key", suite.aead_key_len),
                (b"nonce", suite.aead_nonce_len),
                (b"secret", suite.hash_len),
            )
        )

    def __repr__(self) -> str:
        return f"SecretTree(suite=0x{self.suite.id:04x}, n_leaves={self.n_leaves})"

    # -- taking keys ------------------------------------------------------------------------

    def prepare(self, leaf: int, kind: RatchetType, generation: int) -> PendingKey:
        """The key of ``leaf``'s ``kind`` ratchet at ``generation``, and the tree's state once
        it is used; nothing changes until :meth:`consume`. :class:`SecretTreeError` for a
        leaf outside the tree, a used or evicted generation, or one too far ahead."""
        before = self._ratchets.get(leaf << 1 | (kind is RatchetType.APPLICATION))
        if before is not None and before.generation == generation <= _MAX_GENERATION:
            # in order, the common case: one step (as _step, inline), shared skipped keys
            hash_name, nk, nn = self._sizes
            tail = generation.to_bytes(4, "big") + b"\x01"
            key_prefix, nonce_prefix, secret_prefix = self._step_prefixes
            aead_key, nonce, secret = hmac_triple(
                hash_name,
                before.secret,
                key_prefix + tail,
                nonce_prefix + tail,
                secret_prefix + tail,
            )
            # tuple.__new__: these NamedTuples without their generated __new__'s extra frame
            return tuple.__new__(
                PendingKey,
                (
                    leaf,
                    kind,
                    tuple.__new__(MessageKey, (generation, aead_key[:nk], nonce[:nn])),
                    before,
                    tuple.__new__(_Ratchet, (generation + 1, secret, before.skipped)),
                    None,
                    -1,
                    _NOTHING_ADDED,
                ),
            )
        other: _Ratchet | None = None
        start, added = -1, _NOTHING_ADDED
        if before is None:
            if not 0 <= leaf < self.n_leaves:
                raise SecretTreeError(f"leaf {leaf} outside a tree of {self.n_leaves} leaves")
            start, added, leaf_secret = self._derive_leaf(leaf)
            keyed, nh = self.suite.keyed(leaf_secret), self.suite.hash_len
            app, hs = (
                _Ratchet(0, keyed.expand_with_label(k.value, b"", nh), _NOTHING_SKIPPED)
                for k in (RatchetType.APPLICATION, RatchetType.HANDSHAKE)
            )
            current, other = (app, hs) if kind is RatchetType.APPLICATION else (hs, app)
        else:
            current = before
        g = current.generation
        if generation == g:  # in order, from a ratchet derived just now (or an exhausted one)
            if g > _MAX_GENERATION:
                raise SecretTreeError("generation counter exhausted")
            key, secret = self._step(current.secret, g)
            after = _Ratchet(g + 1, secret, current.skipped)
        elif generation < g:
            key_or_none = current.skipped.get(generation)
            if key_or_none is None:
                raise SecretTreeError(f"generation {generation} of leaf {leaf} already used")
            key = key_or_none
            skipped = dict(current.skipped)
            del skipped[generation]
            after = _Ratchet(g, current.secret, skipped)
        else:
            if generation - g > self._max_forward or generation > _MAX_GENERATION:
                raise SecretTreeError(f"generation {generation} of leaf {leaf} is too far ahead")
            skipped = dict(current.skipped)
            secret = current.secret
            while g < generation:
                skipped[g], secret = self._step(secret, g)
                g += 1
                if len(skipped) > self._max_skipped:
                    del skipped[next(iter(skipped))]
            key, secret = self._step(secret, g)
            after = _Ratchet(g + 1, secret, skipped)
        return PendingKey(leaf, kind, key, before, after, other, start, added)

    def consume(self, pending: PendingKey) -> None:
        """Use up a key from :meth:`prepare` of this tree: the secrets it was derived from are
        deleted. :class:`SecretTreeError` if the tree has moved on since (the key was consumed
        already, or another one changed the same ratchet or tree nodes)."""
        index = pending.leaf << 1 | (pending.kind is RatchetType.APPLICATION)  # _index
        if self._ratchets.get(index) is not pending.before:
            raise SecretTreeError("this key was prepared from a state the tree has left")
        if pending.before is None:
            if pending.start not in self._nodes or pending.other is None:
                raise SecretTreeError("this key was prepared from a state the tree has left")
            del self._nodes[pending.start]
            self._nodes.update(pending.added)
            self._ratchets[index ^ 1] = pending.other
        self._ratchets[index] = pending.after

    def key_for(self, leaf: int, kind: RatchetType, generation: int) -> MessageKey:
        """The key a message from ``leaf`` at ``generation`` was sent with, used up at once
        (for a caller with nothing left to check)."""
        pending = self.prepare(leaf, kind, generation)
        self.consume(pending)
        return pending.key

    def next_key(self, leaf: int, kind: RatchetType) -> MessageKey:
        """The next key for sending from ``leaf`` (our own leaf), used up at once: the sender
        has nothing to check before using it, so it is never taken in two steps."""
        index = leaf << 1 | (kind is RatchetType.APPLICATION)  # _index
        ratchet = self._ratchets.get(index)
        if ratchet is None or ratchet.generation > _MAX_GENERATION:
            return self.key_for(leaf, kind, 0 if ratchet is None else ratchet.generation)
        # every message after the first: one step of our ratchet, as in prepare + consume
        hash_name, nk, nn = self._sizes
        generation = ratchet.generation
        tail = generation.to_bytes(4, "big") + b"\x01"
        key_prefix, nonce_prefix, secret_prefix = self._step_prefixes
        aead_key, nonce, secret = hmac_triple(
            hash_name, ratchet.secret, key_prefix + tail, nonce_prefix + tail, secret_prefix + tail
        )
        self._ratchets[index] = tuple.__new__(_Ratchet, (generation + 1, secret, ratchet.skipped))
        return tuple.__new__(MessageKey, (generation, aead_key[:nk], nonce[:nn]))

    # -- derivations ------------------------------------------------------------------------

    def _derive_leaf(self, leaf: int) -> tuple[int, tuple[tuple[int, bytes], ...], bytes]:
        """(the lowest stored node above the leaf, the co-path secrets derived on the way
        down, the leaf's secret), changing nothing."""
        target = tm.leaf_to_node(leaf)
        path = [target, *tm.direct_path(target, self.n_leaves)]
        level = next((i for i, node in enumerate(path) if node in self._nodes), None)
        if level is None:
            raise SecretTreeError(f"secret for leaf {leaf} already consumed")
        suite, nh = self.suite, self.suite.hash_len
        secret = self._nodes[path[level]]
        added = []
        for i in range(level, 0, -1):
            node, child = path[i], path[i - 1]
            keyed = suite.keyed(secret)
            left = keyed.expand_with_label(b"tree", b"left", nh)
            right = keyed.expand_with_label(b"tree", b"right", nh)
            if child == tm.left(node):
                secret = left
                added.append((tm.right(node), right))
            else:
                secret = right
                added.append((tm.left(node), left))
        return path[level], tuple(added), secret

    def _step(self, secret: bytes, generation: int) -> tuple[MessageKey, bytes]:
        """DeriveTreeSecret (§9.1) for the key, nonce and next secret of one ratchet step."""
        hash_name, nk, nn = self._sizes
        tail = generation.to_bytes(4, "big") + b"\x01"
        key_prefix, nonce_prefix, secret_prefix = self._step_prefixes
        key, nonce, next_secret = hmac_triple(
            hash_name, secret, key_prefix + tail, nonce_prefix + tail, secret_prefix + tail
        )
        return MessageKey(generation, key[:nk], nonce[:nn]), next_secret  # Nh: a whole HMAC

    # -- persistence ------------------------------------------------------------------------

    def encode(self, w: Writer) -> None:
        """The remaining node secrets and ratchets (generation, secret, skipped keys)."""
        w.u32(self.n_leaves)
        w.vector(sorted(self._nodes.items()), lambda ww, kv: ww.u32(kv[0]).opaque(kv[1]))
        # leaf by leaf, application before handshake (the order of their labels)
        ratchets = sorted(self._ratchets.items(), key=lambda kv: (kv[0] >> 1, not kv[0] & 1))
        w.vector(ratchets, _write_ratchet)

    @classmethod
    def decode(cls, r: Reader, suite: CipherSuite, **limits: int) -> SecretTree:
        """Inverse of :meth:`encode`; ``limits`` are the constructor's (not stored)."""
        n_leaves = r.u32()
        nodes = r.vector(lambda rr: (rr.u32(), rr.opaque()))
        ratchets = r.vector(_read_ratchet)
        try:
            tree = cls(suite, b"", n_leaves, **limits)
        except ValueError as exc:
            raise DecodeError(str(exc)) from None
        width = 2 * n_leaves - 1
        if any(node >= width for node, _ in nodes):
            raise DecodeError("secret tree node outside the tree")
        if any(index >> 1 >= n_leaves for index, _ in ratchets):
            raise DecodeError("secret tree ratchet outside the tree")
        tree._nodes = dict(nodes)
        tree._ratchets = dict(ratchets)
        return tree

    def to_bytes(self) -> bytes:
        """The tree's position (its secrets included: store it like a private key)."""
        w = Writer()
        self.encode(w)
        return bytes(w)

    @classmethod
    def from_bytes(cls, suite: CipherSuite, data: bytes, **limits: int) -> SecretTree:
        return decode_all(data, lambda r: cls.decode(r, suite, **limits))


def _write_ratchet(w: Writer, item: tuple[int, _Ratchet]) -> None:
    index, ratchet = item
    kind = RatchetType.APPLICATION if index & 1 else RatchetType.HANDSHAKE
    w.u32(index >> 1).opaque(kind.value).u32(ratchet.generation).opaque(ratchet.secret)
    w.vector(
        ratchet.skipped.values(),
        lambda ww, k: ww.u32(k.generation).opaque(k.key).opaque(k.nonce),
    )


def _read_ratchet(r: Reader) -> tuple[int, _Ratchet]:
    leaf = r.u32()
    try:
        kind = RatchetType(r.opaque())
    except ValueError:
        raise DecodeError("unknown ratchet type") from None
    generation = r.u32()
    secret = r.opaque()
    keys = r.vector(lambda rr: MessageKey(rr.u32(), rr.opaque(), rr.opaque()))
    return _index(leaf, kind), _Ratchet(generation, secret, {k.generation: k for k in keys})
