"""TreeKEM (RFC 9420 §7.4-7.6): creating an UpdatePath as a committer, and merging and
decrypting one as a receiver, which yields the epoch's commit secret.

Both directions are pure functions: a tree and a private-key view go in, a new tree, a new
private view and the commit secret come out. Nothing is changed in place, so a commit that
fails halfway (a bad parent hash, a ciphertext that does not open) leaves the group as it was.

The provisional GroupContext that HPKE binds to depends on the tree hash *after* the merge, so
callers pass a function from that tree hash to the serialized GroupContext.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from slimwire.errors import MlsError
from slimwire.mls import _tree_math as tm
from slimwire.mls._codec import Writer
from slimwire.mls._ratchet_tree import RatchetTree, verify_leaf_node_signature
from slimwire.mls._structs import (
    HPKECiphertext,
    LeafNode,
    LeafNodeSource,
    Node,
    ParentNode,
    UpdatePath,
    UpdatePathNode,
)
from slimwire.mls._suites import CipherSuite

__all__ = [
    "AppliedPath",
    "CreatedPath",
    "GroupContextFor",
    "TreeKemError",
    "TreePrivateKeys",
    "apply_update_path",
    "create_update_path",
    "joiner_path_secret",
    "node_key_pair",
]

GroupContextFor = Callable[[bytes], bytes]
"""Maps the provisional tree hash to the serialized provisional GroupContext."""


class TreeKemError(MlsError):
    """An UpdatePath is malformed, does not match the tree, or cannot be decrypted."""


def node_key_pair(suite: CipherSuite, path_secret: bytes) -> tuple[bytes, bytes]:
    """``DeriveKeyPair(DeriveSecret(path_secret, "node"))`` (§7.4): (private, public)."""
    return suite.derive_key_pair(suite.derive_secret(path_secret, b"node"))


@dataclass(frozen=True, slots=True)
class TreePrivateKeys:
    """The HPKE private keys one member holds: its leaf's and those of the parents above it
    whose path secrets it learnt. Never printed."""

    leaf_index: int
    keys: Mapping[int, bytes] = field(repr=False)

    @classmethod
    def for_leaf(cls, leaf_index: int, leaf_private_key: bytes) -> TreePrivateKeys:
        return cls(leaf_index, {2 * leaf_index: leaf_private_key})

    def with_path_secret(
        self, suite: CipherSuite, node: int, path_secret: bytes
    ) -> TreePrivateKeys:
        """Add the key a path secret gives for ``node``."""
        keys = dict(self.keys)
        keys[node] = node_key_pair(suite, path_secret)[0]
        return TreePrivateKeys(self.leaf_index, keys)

    @classmethod
    def joined(
        cls,
        tree: RatchetTree,
        leaf_index: int,
        leaf_private_key: bytes,
        *,
        committer: int,
        path_secret: bytes,
    ) -> TreePrivateKeys:
        """A new member's keys from the Welcome's path secret (§12.4.3.1): the secret belongs
        to the lowest common ancestor with the committer, and the chain continues through the
        non-blank nodes above it (after the merge exactly the committer's filtered path)."""
        suite = tree.suite
        leaf = tree.leaf(leaf_index)
        if leaf is None or suite.kem_public_key(leaf_private_key) != leaf.encryption_key:
            raise TreeKemError(f"leaf {leaf_index} does not hold our encryption key")
        keys = {2 * leaf_index: leaf_private_key}
        start = tm.common_ancestor(2 * leaf_index, 2 * committer)
        if tree.nodes[start] is None:
            raise TreeKemError(f"common ancestor {start} with the committer is blank")
        for x in [start, *tm.direct_path(start, tree.n_leaves)]:
            node = tree.nodes[x]
            if node is None:
                continue
            priv, pub = node_key_pair(suite, path_secret)
            if pub != node.encryption_key:
                raise TreeKemError(f"path secret does not give node {x}'s public key")
            keys[x] = priv
            path_secret = suite.derive_secret(path_secret, b"path")
        return cls(leaf_index, keys)

    def pruned(self, tree: RatchetTree) -> TreePrivateKeys:
        """Drop keys of nodes that are now blank or outside the tree."""
        keys = {
            x: k for x, k in self.keys.items() if x < len(tree.nodes) and tree.nodes[x] is not None
        }
        return TreePrivateKeys(self.leaf_index, keys)

    def check_consistent(self, suite: CipherSuite, tree: RatchetTree) -> None:
        """Every key held belongs to a non-blank node with the matching public key."""
        for x, private_key in self.keys.items():
            node = tree.nodes[x] if x < len(tree.nodes) else None
            if node is None or suite.kem_public_key(private_key) != node.encryption_key:
                raise TreeKemError(f"private key for node {x} does not match the tree")


@dataclass(frozen=True, slots=True)
class CreatedPath:
    """A committer's UpdatePath and what it leads to."""

    tree: RatchetTree
    update_path: UpdatePath
    commit_secret: bytes = field(repr=False)
    private_keys: TreePrivateKeys = field(repr=False)
    path_secrets: Mapping[int, bytes] = field(repr=False)  # node index -> path secret


@dataclass(frozen=True, slots=True)
class AppliedPath:
    """A receiver's view after merging an UpdatePath."""

    tree: RatchetTree
    commit_secret: bytes = field(repr=False)
    private_keys: TreePrivateKeys = field(repr=False)
    path_secret: bytes = field(repr=False)  # the one decrypted (at the common ancestor)
    path_secret_node: int


def _merge(
    tree: RatchetTree, sender: int, filtered: list[tuple[int, int]], public_keys: list[bytes]
) -> tuple[dict[int, Node | None], bytes]:
    """Node changes for §7.5's merge (blank the direct path; set the filtered path's keys with
    empty unmerged lists and parent hashes computed top-down) and the parent hash the sender's
    leaf must carry."""
    suite = tree.suite
    changes: dict[int, Node | None] = dict.fromkeys(tm.direct_path(2 * sender, tree.n_leaves))
    above = b""
    for (p, s), key in zip(reversed(filtered), reversed(public_keys), strict=True):
        changes[p] = ParentNode(key, above, ())
        # the copath subtree does not meet the sender's direct path: its hash is unchanged
        w = Writer().opaque(key).opaque(above).opaque(tree.tree_hash(s))
        above = suite.hash(bytes(w))
    return changes, above


def create_update_path(
    tree: RatchetTree,
    private_keys: TreePrivateKeys,
    leaf_template: LeafNode,
    signature_private_key: bytes,
    *,
    group_id: bytes,
    group_context: GroupContextFor,
    exclude_leaves: frozenset[int] = frozenset(),
    external: bool = False,
) -> CreatedPath:
    """Refresh the committer's leaf and direct path (§7.4-7.5) and encrypt the path secrets to
    the copath resolutions (without the leaves added in this commit). ``leaf_template`` gives
    the new leaf's credential, capabilities, extensions and signature key; its encryption key,
    source, parent hash and signature are replaced. An ``external`` committer takes the blank
    leaf ``private_keys.leaf_index`` (its private keys may then be empty)."""
    suite = tree.suite
    sender = private_keys.leaf_index
    if not 0 <= sender < tree.n_leaves or (tree.leaf(sender) is None) != external:
        raise TreeKemError(f"committer leaf {sender} is {'taken' if external else 'blank'}")
    filtered = tree.filtered_direct_path(sender)
    path_secret = os.urandom(suite.hash_len)
    secrets: dict[int, bytes] = {}
    node_keys: dict[int, bytes] = {}
    public_keys: list[bytes] = []
    for p, _ in filtered:
        secrets[p] = path_secret
        priv, pub = node_key_pair(suite, path_secret)
        node_keys[p] = priv
        public_keys.append(pub)
        path_secret = suite.derive_secret(path_secret, b"path")
    commit_secret = path_secret

    changes, leaf_parent_hash = _merge(tree, sender, filtered, public_keys)
    leaf_priv, leaf_pub = suite.generate_kem_key_pair()
    unsigned = LeafNode(
        leaf_pub,
        leaf_template.signature_key,
        leaf_template.credential,
        leaf_template.capabilities,
        LeafNodeSource.COMMIT,
        None,
        leaf_parent_hash,
        leaf_template.extensions,
    )
    signature = suite.sign_with_label(
        signature_private_key, b"LeafNodeTBS", unsigned.tbs(group_id, sender)
    )
    new_leaf = LeafNode(
        unsigned.encryption_key,
        unsigned.signature_key,
        unsigned.credential,
        unsigned.capabilities,
        unsigned.leaf_node_source,
        None,
        unsigned.parent_hash,
        unsigned.extensions,
        signature,
    )
    changes[2 * sender] = new_leaf
    new_tree = tree.with_nodes(changes)
    context = group_context(new_tree.tree_hash())

    path_nodes = []
    for (p, s), pub in zip(filtered, public_keys, strict=True):
        ciphertexts = []
        for r in tree.resolution(s, exclude_leaves):
            target = tree.nodes[r]
            assert target is not None
            kem_output, ct = suite.encrypt_with_label(
                target.encryption_key, b"UpdatePathNode", context, secrets[p]
            )
            ciphertexts.append(HPKECiphertext(kem_output, ct))
        path_nodes.append(UpdatePathNode(pub, tuple(ciphertexts)))

    keys = {x: k for x, k in private_keys.keys.items() if x not in changes}
    keys.update(node_keys)
    keys[2 * sender] = leaf_priv
    return CreatedPath(
        new_tree,
        UpdatePath(new_leaf, tuple(path_nodes)),
        commit_secret,
        TreePrivateKeys(sender, keys),
        secrets,
    )


def apply_update_path(
    tree: RatchetTree,
    sender: int,
    update_path: UpdatePath,
    private_keys: TreePrivateKeys,
    *,
    group_id: bytes,
    group_context: GroupContextFor,
    exclude_leaves: frozenset[int] = frozenset(),
    external: bool = False,
) -> AppliedPath:
    """Validate and merge a committer's UpdatePath (§7.5, §12.4.2), decrypt our path secret,
    and derive the commit secret. ``tree`` already has the commit's proposals applied. For an
    ``external`` commit, ``sender`` is the blank leaf the joiner takes (the leftmost blank
    leaf, the tree extended first if there is none)."""
    suite = tree.suite
    me = private_keys.leaf_index
    if sender == me:
        raise TreeKemError("cannot apply our own UpdatePath")
    if not 0 <= sender < tree.n_leaves:
        raise TreeKemError(f"committer leaf {sender} is outside the tree")
    old_leaf = tree.leaf(sender)
    if (old_leaf is None) != external:
        state = "taken" if external else "blank"
        raise TreeKemError(f"committer leaf {sender} is {state}")
    leaf = update_path.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.COMMIT:
        raise TreeKemError("UpdatePath leaf must have leaf_node_source=commit")
    if old_leaf is not None and leaf.encryption_key == old_leaf.encryption_key:
        raise TreeKemError("UpdatePath leaf must carry a fresh encryption key")
    if not verify_leaf_node_signature(suite, leaf, group_id, sender):
        raise TreeKemError("UpdatePath leaf signature does not verify")
    filtered = tree.filtered_direct_path(sender)
    if len(filtered) != len(update_path.nodes):
        raise TreeKemError(
            f"UpdatePath has {len(update_path.nodes)} nodes, filtered path {len(filtered)}"
        )
    public_keys = [n.encryption_key for n in update_path.nodes]
    in_tree = {node.encryption_key for node in tree.nodes if node is not None}
    fresh = [*public_keys, leaf.encryption_key]
    if len(set(fresh)) != len(fresh) or in_tree.intersection(fresh):
        raise TreeKemError("UpdatePath repeats a public key already in use")
    for key in public_keys:
        suite.kem.check_public_key(key)

    changes, leaf_parent_hash = _merge(tree, sender, filtered, public_keys)
    if leaf.parent_hash != leaf_parent_hash:
        raise TreeKemError("UpdatePath leaf parent hash does not match the tree")
    changes[2 * sender] = leaf
    new_tree = tree.with_nodes(changes)
    context = group_context(new_tree.tree_hash())

    # The lowest filtered-path node whose copath child covers us gets the secret to us.
    my_node = 2 * me
    start = None
    for i, (_, s) in enumerate(filtered):
        first, last = tm.leaf_span(s)
        if first <= me <= last:
            start = i
            break
    if start is None:
        raise TreeKemError(f"leaf {me} is not covered by the UpdatePath")
    p, s = filtered[start]
    resolution = tree.resolution(s, exclude_leaves)
    ciphertexts = update_path.nodes[start].encrypted_path_secret
    if len(ciphertexts) != len(resolution):
        raise TreeKemError("UpdatePath node has the wrong number of ciphertexts")
    position = next((j for j, r in enumerate(resolution) if r in private_keys.keys), None)
    if position is None:
        raise TreeKemError(f"no private key for the resolution of node {s}")
    ct = ciphertexts[position]
    try:
        path_secret = suite.decrypt_with_label(
            private_keys.keys[resolution[position]],
            b"UpdatePathNode",
            context,
            ct.kem_output,
            ct.ciphertext,
        )
    except MlsError:
        raise TreeKemError("cannot decrypt the path secret") from None
    decrypted = path_secret
    new_keys: dict[int, bytes] = {}
    for (q, _), expected in zip(filtered[start:], public_keys[start:], strict=True):
        priv, pub = node_key_pair(suite, path_secret)
        if pub != expected:
            raise TreeKemError(f"path secret does not give node {q}'s public key")
        new_keys[q] = priv
        path_secret = suite.derive_secret(path_secret, b"path")

    keys = {x: k for x, k in private_keys.keys.items() if x not in changes or x == my_node}
    keys.update(new_keys)
    return AppliedPath(new_tree, path_secret, TreePrivateKeys(me, keys), decrypted, p)


def joiner_path_secret(created: CreatedPath, joiner: int) -> bytes | None:
    """The path secret a Welcome carries for a member added by this commit: the one at the
    lowest common ancestor of committer and joiner (None when the commit has no path)."""
    committer = created.private_keys.leaf_index
    return created.path_secrets.get(tm.common_ancestor(2 * committer, 2 * joiner))
