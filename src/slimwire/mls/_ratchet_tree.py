"""The public ratchet tree (RFC 9420 §4, §7): resolutions, tree hashes, parent hashes, leaf
validation, and the Add/Update/Remove edits of §12.1.

:class:`RatchetTree` is immutable: every edit returns a new tree, so a commit can be applied
provisionally and thrown away if anything fails (the group state is unchanged on error). Tree
hashes are memoised per tree, and an edit carries over the memo of every subtree it did not
touch, so the hash after a commit costs only the changed paths, not the whole tree.

The tree is kept at full width (a power of two leaves, §7.8). On the wire it is truncated after
its last non-blank node; :meth:`RatchetTree.from_bytes` checks that and pads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from slimwire.errors import MlsError
from slimwire.mls import _tree_math as tm
from slimwire.mls._codec import DecodeError, Writer
from slimwire.mls._structs import (
    LeafNode,
    LeafNodeSource,
    Node,
    NodeType,
    ParentNode,
    RequiredCapabilities,
    ratchet_tree_from_bytes,
    ratchet_tree_to_bytes,
)
from slimwire.mls._suites import CipherSuite

__all__ = [
    "InvalidLeafNodeError",
    "InvalidTreeError",
    "RatchetTree",
    "validate_leaf_node",
    "verify_leaf_node_signature",
]

# Extension types every client supports; RFC 9420 §7.2 forbids listing them in capabilities.
_DEFAULT_EXTENSIONS = frozenset(range(1, 6))


class InvalidTreeError(MlsError):
    """A ratchet tree (received, or produced by applying a message) breaks an invariant."""


class InvalidLeafNodeError(InvalidTreeError):
    """A LeafNode fails §7.3 validation (signature, source, capabilities, lifetime, keys)."""


def verify_leaf_node_signature(
    suite: CipherSuite, leaf: LeafNode, group_id: bytes, leaf_index: int
) -> bool:
    """The LeafNode's signature over LeafNodeTBS (which binds group id and leaf index for the
    update and commit sources, §7.2)."""
    return suite.verify_with_label(
        leaf.signature_key, b"LeafNodeTBS", leaf.tbs(group_id, leaf_index), leaf.signature
    )


@dataclass(frozen=True, slots=True, eq=False)
class RatchetTree:
    """A full-width array of optional nodes (leaves at even indices) for one cipher suite."""

    suite: CipherSuite
    nodes: tuple[Node | None, ...]
    _hashes: dict[int, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        width = len(self.nodes)
        n_leaves = (width + 1) // 2
        if width == 0 or width % 2 == 0 or n_leaves & (n_leaves - 1):
            raise InvalidTreeError(f"a full tree has 2^(d+1)-1 nodes, not {width}")
        for x, node in enumerate(self.nodes):
            if node is None:
                continue
            if isinstance(node, LeafNode) != (x % 2 == 0):
                kind = NodeType.LEAF if x % 2 == 0 else NodeType.PARENT
                raise InvalidTreeError(f"node {x} must be a {kind.name.lower()} node")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RatchetTree):
            return NotImplemented
        return self.suite.id == other.suite.id and self.nodes == other.nodes

    def __hash__(self) -> int:
        return hash((self.suite.id, self.nodes))

    def __repr__(self) -> str:
        members = sum(1 for i in range(self.n_leaves) if self.nodes[2 * i] is not None)
        return (
            f"RatchetTree(suite=0x{self.suite.id:04x}, leaves={self.n_leaves}, members={members})"
        )

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_nodes(cls, suite: CipherSuite, nodes: Sequence[Node | None]) -> RatchetTree:
        """From a truncated node list (as in the ratchet_tree extension): the last node must
        be non-blank; the list is padded with blanks to full width."""
        if not nodes or nodes[-1] is None:
            raise InvalidTreeError("a ratchet tree must end with a non-blank node")
        if len(nodes) % 2 == 0:
            raise InvalidTreeError("a ratchet tree has an odd number of nodes")
        n_leaves = 1
        while tm.node_width(n_leaves) < len(nodes):
            n_leaves *= 2
        padded = tuple(nodes) + (None,) * (tm.node_width(n_leaves) - len(nodes))
        return cls(suite, padded)

    @classmethod
    def from_bytes(cls, suite: CipherSuite, data: bytes) -> RatchetTree:
        """Decode the ``ratchet_tree`` extension body."""
        try:
            return cls.from_nodes(suite, ratchet_tree_from_bytes(data))
        except (DecodeError, ValueError) as exc:
            if isinstance(exc, MlsError):
                raise
            raise InvalidTreeError(f"malformed ratchet tree: {exc}") from None

    @classmethod
    def one_member(cls, suite: CipherSuite, leaf: LeafNode) -> RatchetTree:
        return cls(suite, (leaf,))

    def truncated_nodes(self) -> tuple[Node | None, ...]:
        end = len(self.nodes)
        while end > 1 and self.nodes[end - 1] is None:
            end -= 1
        return self.nodes[:end]

    def to_bytes(self) -> bytes:
        """The ``ratchet_tree`` extension body (trailing blanks omitted)."""
        return ratchet_tree_to_bytes(self.truncated_nodes())

    # -- access -----------------------------------------------------------------------------

    @property
    def n_leaves(self) -> int:
        return (len(self.nodes) + 1) // 2

    @property
    def root(self) -> int:
        return tm.root(self.n_leaves)

    def leaf(self, leaf_index: int) -> LeafNode | None:
        node = self.nodes[2 * leaf_index]
        assert node is None or isinstance(node, LeafNode)
        return node

    def parent_node(self, x: int) -> ParentNode | None:
        node = self.nodes[x]
        assert node is None or isinstance(node, ParentNode)
        return node

    def leaves(self) -> Iterable[tuple[int, LeafNode]]:
        """(leaf index, leaf) for every non-blank leaf."""
        for i in range(self.n_leaves):
            node = self.nodes[2 * i]
            if node is not None:
                assert isinstance(node, LeafNode)
                yield i, node

    def resolution(self, x: int, exclude_leaves: frozenset[int] = frozenset()) -> list[int]:
        """§4.1.1: the non-blank nodes covering ``x``'s subtree, left first, each followed by
        its unmerged leaves. ``exclude_leaves`` drops leaves added in the same commit."""
        node = self.nodes[x]
        if node is not None:
            if isinstance(node, LeafNode):
                return [] if (x >> 1) in exclude_leaves else [x]
            return [x] + [2 * u for u in node.unmerged_leaves if u not in exclude_leaves]
        if tm.is_leaf(x):
            return []
        return self.resolution(tm.left(x), exclude_leaves) + self.resolution(
            tm.right(x), exclude_leaves
        )

    def filtered_direct_path(
        self, leaf_index: int, exclude_leaves: frozenset[int] = frozenset()
    ) -> list[tuple[int, int]]:
        """(parent, copath child) pairs of the leaf's direct path whose copath child has a
        non-empty resolution (§4.1.2), from the leaf upwards."""
        pairs = tm.filtered_direct_path_pairs(2 * leaf_index, self.n_leaves)
        return [(p, c) for p, c in pairs if self.resolution(c, exclude_leaves)]

    # -- hashes -----------------------------------------------------------------------------

    def tree_hash(self, x: int | None = None) -> bytes:
        """§7.8 tree hash of node ``x`` (the root by default)."""
        if x is None:
            x = self.root
        cached = self._hashes.get(x)
        if cached is not None:
            return cached
        value = self._hash_node(x, frozenset())
        self._hashes[x] = value
        return value

    def _hash_node(self, x: int, removed: frozenset[int]) -> bytes:
        """TreeHashInput for ``x``, with the leaves in ``removed`` blanked and dropped from
        unmerged lists (for original sibling tree hashes, §7.9)."""
        node = self.nodes[x]
        w = Writer()
        if tm.is_leaf(x):
            leaf_index = x >> 1
            w.u8(NodeType.LEAF).u32(leaf_index)
            if node is None or leaf_index in removed:
                w.u8(0)
            else:
                w.u8(1)
                node.encode(w)
            return self.suite.hash(bytes(w))
        w.u8(NodeType.PARENT)
        if node is None:
            w.u8(0)
        else:
            assert isinstance(node, ParentNode)
            if removed and any(u in removed for u in node.unmerged_leaves):
                node = replace(
                    node, unmerged_leaves=tuple(u for u in node.unmerged_leaves if u not in removed)
                )
            w.u8(1)
            node.encode(w)
        w.opaque(self._subtree_hash(tm.left(x), removed))
        w.opaque(self._subtree_hash(tm.right(x), removed))
        return self.suite.hash(bytes(w))

    def _subtree_hash(self, x: int, removed: frozenset[int]) -> bytes:
        if removed:
            first, last = tm.leaf_span(x)
            if any(first <= u <= last for u in removed):
                return self._hash_node(x, removed)
        return self.tree_hash(x)

    def parent_hash(self, p: int, sibling: int) -> bytes:
        """Parent hash of parent ``p`` with copath child ``sibling`` (§7.9)."""
        node = self.parent_node(p)
        if node is None:
            raise InvalidTreeError(f"parent hash of blank node {p}")
        original = self._subtree_hash(sibling, frozenset(node.unmerged_leaves))
        w = Writer().opaque(node.encryption_key).opaque(node.parent_hash).opaque(original)
        return self.suite.hash(bytes(w))

    def _node_parent_hash(self, x: int) -> bytes | None:
        node = self.nodes[x]
        if node is None:
            return None
        if isinstance(node, LeafNode):
            return node.parent_hash if node.leaf_node_source == LeafNodeSource.COMMIT else None
        return node.parent_hash

    def _parent_hash_valid(self, p: int) -> bool:
        """Top-down check (§7.9.2): exactly one descendant D of ``p`` carries p's parent hash,
        with the nodes between them accounted for by p's unmerged leaves."""
        node = self.parent_node(p)
        assert node is not None
        unmerged = {2 * u for u in node.unmerged_leaves}
        matches = 0
        for child, sibling in ((tm.left(p), tm.right(p)), (tm.right(p), tm.left(p))):
            expected = self.parent_hash(p, sibling)
            first, last = tm.leaf_span(child)
            under_child = {u for u in unmerged if first <= (u >> 1) <= last}
            res = self.resolution(child)
            for d in res:
                if self._node_parent_hash(d) != expected:
                    continue
                if set(res) - {d} == under_child:
                    matches += 1
        return matches == 1

    # -- validation -------------------------------------------------------------------------

    def verify_parent_hashes(self) -> bool:
        """Every non-blank parent node is parent-hash valid."""
        return all(
            self._parent_hash_valid(x)
            for x in range(1, len(self.nodes), 2)
            if self.nodes[x] is not None
        )

    def verify_leaf_signatures(self, group_id: bytes) -> bool:
        return all(
            verify_leaf_node_signature(self.suite, leaf, group_id, i) for i, leaf in self.leaves()
        )

    def check_unmerged_leaves(self) -> None:
        """Each unmerged leaf of a parent is a non-blank leaf below it, and is also unmerged
        at every non-blank parent between them."""
        for p in range(1, len(self.nodes), 2):
            node = self.parent_node(p)
            if node is None:
                continue
            first, last = tm.leaf_span(p)
            for u in node.unmerged_leaves:
                if not first <= u <= last or self.nodes[2 * u] is None:
                    raise InvalidTreeError(f"node {p} lists leaf {u} as unmerged")
                for q in tm.direct_path(2 * u, self.n_leaves):
                    if q == p:
                        break
                    between = self.parent_node(q)
                    if between is not None and u not in between.unmerged_leaves:
                        raise InvalidTreeError(f"leaf {u} unmerged at {p} but merged at {q}")

    def check_unique_keys(self) -> None:
        """Signature and HPKE keys are distinct across leaves (§7.3), and encryption keys
        across all nodes (§16.8)."""
        sig_keys: set[bytes] = set()
        enc_keys: set[bytes] = set()
        for x, node in enumerate(self.nodes):
            if node is None:
                continue
            if node.encryption_key in enc_keys:
                raise InvalidTreeError(f"node {x} repeats an encryption key")
            enc_keys.add(node.encryption_key)
            if isinstance(node, LeafNode):
                if node.signature_key in sig_keys:
                    raise InvalidTreeError(f"node {x} repeats a signature key")
                sig_keys.add(node.signature_key)

    def validate(self, group_id: bytes) -> None:
        """The checks a joiner runs on a received tree (§12.4.3.1), except credential and
        capability policy: raises :class:`InvalidTreeError`."""
        if not any(True for _ in self.leaves()):
            raise InvalidTreeError("tree has no members")
        self.check_unmerged_leaves()
        self.check_unique_keys()
        if not self.verify_parent_hashes():
            raise InvalidTreeError("parent hashes do not verify")
        for i, leaf in self.leaves():
            if not verify_leaf_node_signature(self.suite, leaf, group_id, i):
                raise InvalidTreeError(f"leaf {i} signature does not verify")

    # -- edits ------------------------------------------------------------------------------

    def with_nodes(self, changes: Mapping[int, Node | None]) -> RatchetTree:
        """A copy with some nodes replaced; memoised hashes of untouched subtrees carry over."""
        nodes = list(self.nodes)
        stale: set[int] = set()
        for x, node in changes.items():
            nodes[x] = node
            stale.add(x)
            stale.update(tm.direct_path(x, self.n_leaves))
        hashes = {k: v for k, v in self._hashes.items() if k not in stale}
        return RatchetTree(self.suite, tuple(nodes), hashes)

    def _blank_direct_path(self, leaf_index: int) -> dict[int, Node | None]:
        return dict.fromkeys(tm.direct_path(2 * leaf_index, self.n_leaves))

    def extended(self) -> RatchetTree:
        """The tree doubled to the right with blanks (§7.7); hashes of the old left subtree
        keep their node indices and so carry over."""
        n = self.n_leaves
        nodes = self.nodes + (None,) * (tm.node_width(2 * n) - len(self.nodes))
        hashes = dict(self._hashes)
        return RatchetTree(self.suite, nodes, hashes)

    def truncated(self) -> RatchetTree:
        """Halve while the right half is all blank (§12.1.3)."""
        nodes = self.nodes
        n = self.n_leaves
        while n > 1 and all(node is None for node in nodes[n:]):
            n //= 2
            nodes = nodes[: tm.node_width(n)]
        if len(nodes) == len(self.nodes):
            return self
        # the kept left subtree is unchanged, so its memoised hashes stay valid
        keep = {k: v for k, v in self._hashes.items() if k < len(nodes)}
        return RatchetTree(self.suite, nodes, keep)

    def add_leaf(self, leaf: LeafNode) -> tuple[RatchetTree, int]:
        """§12.1.1: into the leftmost blank leaf (extending if full); the new leaf becomes
        unmerged at every non-blank parent above it. Returns (tree, leaf index)."""
        tree = self
        index = next((i for i in range(self.n_leaves) if self.nodes[2 * i] is None), None)
        if index is None:
            index = self.n_leaves
            tree = self.extended()
        changes: dict[int, Node | None] = {2 * index: leaf}
        for p in tm.direct_path(2 * index, tree.n_leaves):
            parent = tree.parent_node(p)
            if parent is not None:
                changes[p] = replace(parent, unmerged_leaves=(*parent.unmerged_leaves, index))
        return tree.with_nodes(changes), index

    def update_leaf(self, leaf_index: int, leaf: LeafNode) -> RatchetTree:
        """§12.1.2: replace the sender's leaf and blank its direct path."""
        if self.leaf(leaf_index) is None:
            raise InvalidTreeError(f"update of blank leaf {leaf_index}")
        changes = self._blank_direct_path(leaf_index)
        changes[2 * leaf_index] = leaf
        return self.with_nodes(changes)

    def remove_leaf(self, leaf_index: int) -> RatchetTree:
        """§12.1.3: blank the leaf and its direct path, then truncate."""
        if not 0 <= leaf_index < self.n_leaves or self.leaf(leaf_index) is None:
            raise InvalidTreeError(f"remove of blank or missing leaf {leaf_index}")
        changes = self._blank_direct_path(leaf_index)
        changes[2 * leaf_index] = None
        return self.with_nodes(changes).truncated()


def validate_leaf_node(
    tree: RatchetTree | None,
    leaf: LeafNode,
    *,
    source: LeafNodeSource,
    group_id: bytes = b"",
    leaf_index: int = 0,
    required: RequiredCapabilities | None = None,
    now: int | None = None,
    suite: CipherSuite | None = None,
) -> None:
    """LeafNode validation (§7.3) for a leaf about to enter ``tree`` at ``leaf_index`` (from a
    KeyPackage in an Add, an Update, or a Commit's path); ``tree`` None checks the leaf alone
    (a KeyPackage, with ``suite``). Credential *content* is the identity layer's job; this
    checks everything MLS itself defines. Raises :class:`InvalidLeafNodeError`."""
    cs = tree.suite if tree is not None else suite
    if cs is None:
        raise ValueError("validate_leaf_node needs a tree or a suite")
    if leaf.leaf_node_source != source:
        raise InvalidLeafNodeError(
            f"leaf_node_source is {leaf.leaf_node_source.name}, expected {source.name}"
        )
    if not verify_leaf_node_signature(cs, leaf, group_id, leaf_index):
        raise InvalidLeafNodeError("LeafNode signature does not verify")
    caps = leaf.capabilities
    if leaf.credential.credential_type not in caps.credentials:
        raise InvalidLeafNodeError("credential type not listed in the leaf's capabilities")
    for ext in leaf.extensions:
        if ext.extension_type not in _DEFAULT_EXTENSIONS and (
            ext.extension_type not in caps.extensions
        ):
            raise InvalidLeafNodeError(f"extension {ext.extension_type} not in capabilities")
    if required is not None and not (
        set(required.extension_types) <= set(caps.extensions)
        and set(required.proposal_types) <= set(caps.proposals)
        and set(required.credential_types) <= set(caps.credentials)
    ):
        raise InvalidLeafNodeError("leaf lacks the group's required capabilities")
    lifetime = leaf.lifetime
    if (
        now is not None
        and lifetime is not None
        and not lifetime.not_before <= now <= lifetime.not_after
    ):
        raise InvalidLeafNodeError("leaf lifetime does not cover the current time")
    if tree is None:
        return
    replaced = tree.leaf(leaf_index) if source != LeafNodeSource.KEY_PACKAGE else None
    if replaced is not None and replaced.encryption_key == leaf.encryption_key:
        raise InvalidLeafNodeError("an updated leaf must carry a new encryption key")
    for i, other in tree.leaves():
        if i == leaf_index and replaced is not None:
            continue
        if other.signature_key == leaf.signature_key:
            raise InvalidLeafNodeError(f"signature key already used by leaf {i}")
        if other.encryption_key == leaf.encryption_key:
            raise InvalidLeafNodeError(f"encryption key already used by leaf {i}")
        if other.credential.credential_type not in caps.credentials:
            raise InvalidLeafNodeError(f"leaf does not support leaf {i}'s credential type")
        if leaf.credential.credential_type not in other.capabilities.credentials:
            raise InvalidLeafNodeError(f"leaf {i} does not support this credential type")
