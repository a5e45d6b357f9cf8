"""TreeKEM between independent members, built from scratch: adds (new members excluded from
the path encryption, then joining from the Welcome's path secret), removes and updates, each
committed with an UpdatePath by a different member. Every member must reach the same commit
secret and tree, with private keys that match it — the known pitfall is a committer that
reuses its old leaf, which only commits with paths between independent members expose."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.errors import MlsError
from slimwire.mls._ratchet_tree import (
    InvalidLeafNodeError,
    RatchetTree,
    validate_leaf_node,
)
from slimwire.mls._structs import (
    Capabilities,
    Credential,
    CredentialType,
    Extension,
    LeafNode,
    LeafNodeSource,
    Lifetime,
    UpdatePath,
)
from slimwire.mls._suites import CipherSuite, cipher_suite
from slimwire.mls._treekem import (
    TreeKemError,
    TreePrivateKeys,
    apply_update_path,
    create_update_path,
    joiner_path_secret,
)
from tests.mls._vectors import cases, h

GROUP_ID = b"treekem-test-group"


def _context(tree_hash: bytes) -> bytes:
    return b"provisional context|" + tree_hash


@dataclass
class Member:
    signature_priv: bytes
    view: TreePrivateKeys


def _key_package_leaf(cs: CipherSuite, name: str) -> tuple[LeafNode, bytes, bytes]:
    """(signed leaf, signature private key, encryption private key)."""
    sig_priv, sig_pub = cs.generate_signature_key_pair()
    enc_priv, enc_pub = cs.generate_kem_key_pair()
    leaf = LeafNode(
        enc_pub,
        sig_pub,
        Credential.basic(name.encode()),
        Capabilities((1,), (cs.id,), (), (), (CredentialType.BASIC,)),
        LeafNodeSource.KEY_PACKAGE,
        Lifetime(0, 2**64 - 1),
    )
    signature = cs.sign_with_label(sig_priv, b"LeafNodeTBS", leaf.tbs())
    return replace(leaf, signature=signature), sig_priv, enc_priv


@dataclass
class Group:
    cs: CipherSuite
    tree: RatchetTree
    members: dict[int, Member] = field(default_factory=dict)
    counter: int = 0

    @classmethod
    def create(cls, cs: CipherSuite) -> Group:
        leaf, sig, enc = _key_package_leaf(cs, "m0")
        group = cls(cs, RatchetTree.one_member(cs, leaf), counter=1)
        group.members[0] = Member(sig, TreePrivateKeys.for_leaf(0, enc))
        return group

    def commit(self, committer: int, adds: int = 0, removes: tuple[int, ...] = ()) -> None:
        """Apply the proposals, then a path from ``committer``; check everyone agrees."""
        tree = self.tree
        for r in removes:
            tree = tree.remove_leaf(r)
            del self.members[r]
        new: dict[int, tuple[bytes, bytes]] = {}
        for _ in range(adds):
            leaf, sig, enc = _key_package_leaf(self.cs, f"m{self.counter}")
            self.counter += 1
            validate_leaf_node(tree, leaf, source=LeafNodeSource.KEY_PACKAGE, now=1)
            tree, index = tree.add_leaf(leaf)
            new[index] = (sig, enc)
        exclude = frozenset(new)
        c = self.members[committer]
        old_leaf = tree.leaf(committer)
        assert old_leaf is not None
        created = create_update_path(
            tree,
            c.view.pruned(tree),
            old_leaf,
            c.signature_priv,
            group_id=GROUP_ID,
            group_context=_context,
            exclude_leaves=exclude,
        )
        new_leaf = created.update_path.leaf_node
        assert new_leaf.encryption_key != old_leaf.encryption_key
        validate_leaf_node(
            tree,
            new_leaf,
            source=LeafNodeSource.COMMIT,
            group_id=GROUP_ID,
            leaf_index=committer,
        )
        for i, m in self.members.items():
            if i == committer:
                continue
            applied = apply_update_path(
                tree,
                committer,
                created.update_path,
                m.view.pruned(tree),
                group_id=GROUP_ID,
                group_context=_context,
                exclude_leaves=exclude,
            )
            assert applied.commit_secret == created.commit_secret
            assert applied.tree == created.tree
            m.view = applied.private_keys
        c.view = created.private_keys
        for index, (sig, enc) in new.items():
            secret = joiner_path_secret(created, index)
            assert secret is not None
            view = TreePrivateKeys.joined(
                created.tree, index, enc, committer=committer, path_secret=secret
            )
            self.members[index] = Member(sig, view)
        self.tree = created.tree
        self.tree.validate(GROUP_ID)
        for m in self.members.values():
            m.view.check_consistent(self.cs, self.tree)
        if len(self.members) > 1:
            # a full path leaves everyone holding the key of its top node: the root, unless
            # one half of the tree is empty (the filtered path then stops below a blank root)
            shared = set.intersection(*(set(m.view.keys) for m in self.members.values()))
            assert any(x % 2 == 1 for x in shared)
            assert self.tree.root in shared or self.tree.nodes[self.tree.root] is None


@pytest.mark.parametrize("suite_id", [1, 2])
def test_group_life_with_paths_between_independent_members(suite_id: int) -> None:
    g = Group.create(cipher_suite(suite_id))
    g.commit(0, adds=2)  # 0 adds 1 and 2
    g.commit(1, adds=3)  # 1 adds 3, 4, 5 (tree extends to 8 leaves)
    g.commit(4)  # an update by a joiner
    g.commit(2, removes=(0,))  # a remove leaves a blank hole
    g.commit(5, adds=1)  # the new member fills the hole at leaf 0
    g.commit(0, removes=(4, 5))  # truncation back to 4 leaves
    assert g.tree.n_leaves == 4
    assert sorted(g.members) == [0, 1, 2, 3]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 99), st.integers(0, 2), st.booleans()), max_size=6))
def test_random_commit_sequences(ops: list[tuple[int, int, bool]]) -> None:
    g = Group.create(cipher_suite(1))
    g.commit(0, adds=1)
    for pick, adds, remove in ops:
        members = sorted(g.members)
        committer = members[pick % len(members)]
        others = [m for m in members if m != committer]
        removes = (others[pick % len(others)],) if remove and others else ()
        g.commit(committer, adds=adds, removes=removes)


def test_tampered_update_paths_are_rejected() -> None:
    g = Group.create(cipher_suite(1))
    g.commit(0, adds=3)
    tree = g.tree
    c = g.members[0]
    leaf = tree.leaf(0)
    assert leaf is not None
    created = create_update_path(
        tree, c.view, leaf, c.signature_priv, group_id=GROUP_ID, group_context=_context
    )
    path = created.update_path
    receiver = g.members[3].view

    def apply(p: object, **kw: object) -> None:
        args = {"group_id": GROUP_ID, "group_context": _context, **kw}
        apply_update_path(tree, 0, p, receiver, **args)  # type: ignore[arg-type]

    apply(path)  # the untampered path is fine
    # the old leaf copied back (the known pitfall) fails: same key, wrong source, bad signature
    with pytest.raises(TreeKemError):
        apply(replace(path, leaf_node=leaf))
    # a leaf signed for another group
    with pytest.raises(TreeKemError):
        apply(path, group_id=b"other group")
    # a swapped parent key breaks the parent hash the leaf signed
    nodes = list(path.nodes)
    nodes[-1] = replace(nodes[-1], encryption_key=nodes[0].encryption_key)
    with pytest.raises(TreeKemError):
        apply(replace(path, nodes=tuple(nodes)))
    # a missing node
    with pytest.raises(TreeKemError):
        apply(replace(path, nodes=path.nodes[:-1]))
    # a ciphertext for the wrong context
    with pytest.raises(TreeKemError):
        apply(path, group_context=lambda th: _context(th) + b"!")


def test_leaf_node_validation_rules() -> None:
    cs = cipher_suite(1)
    g = Group.create(cs)
    g.commit(0, adds=1)
    leaf, leaf_sig, _ = _key_package_leaf(cs, "x")
    kp = LeafNodeSource.KEY_PACKAGE
    validate_leaf_node(g.tree, leaf, source=kp, now=5)
    with pytest.raises(InvalidLeafNodeError, match="source"):
        validate_leaf_node(g.tree, leaf, source=LeafNodeSource.UPDATE)
    with pytest.raises(InvalidLeafNodeError, match="signature"):
        validate_leaf_node(g.tree, replace(leaf, credential=Credential.basic(b"y")), source=kp)
    member = g.tree.leaf(1)
    assert member is not None
    with pytest.raises(InvalidLeafNodeError, match="already used"):
        validate_leaf_node(g.tree, member, source=member.leaf_node_source, group_id=GROUP_ID)
    sig_priv, _ = cs.generate_signature_key_pair()
    unsigned = replace(
        leaf,
        signature_key=cs.signature_public_key(sig_priv),
        extensions=(Extension(0xF0F0, b""),),
    )
    bad_ext = replace(
        unsigned, signature=cs.sign_with_label(sig_priv, b"LeafNodeTBS", unsigned.tbs())
    )
    with pytest.raises(InvalidLeafNodeError, match="extension"):
        validate_leaf_node(g.tree, bad_ext, source=kp)
    short = replace(leaf, lifetime=Lifetime(10, 20))
    short = replace(short, signature=cs.sign_with_label(leaf_sig, b"LeafNodeTBS", short.tbs()))
    validate_leaf_node(None, short, source=kp, suite=cs, now=15)
    with pytest.raises(InvalidLeafNodeError, match="lifetime"):
        validate_leaf_node(None, short, source=kp, suite=cs, now=30)


@pytest.mark.parametrize("case", cases("tree-validation")[::7])
def test_vector_leaves_pass_leaf_validation(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])
    tree = RatchetTree.from_bytes(cs, h(case["tree"]))
    for i, leaf in tree.leaves():
        validate_leaf_node(
            None,
            leaf,
            source=leaf.leaf_node_source,
            group_id=h(case["group_id"]),
            leaf_index=i,
            suite=cs,
        )


@pytest.mark.parametrize("suite_id", [1, 5])
def test_external_committer_takes_a_blank_leaf(suite_id: int) -> None:
    """An external joiner (§12.4.3.2) commits from the leftmost blank leaf (the tree is
    extended when full); the members process its path as an external commit."""
    cs = cipher_suite(suite_id)
    g = Group.create(cs)
    g.commit(0, adds=3)
    g.commit(1, removes=(2,))
    for expect_index in (2, 4):  # first the hole, then (tree full) the extension
        tree = g.tree
        index = next((i for i in range(tree.n_leaves) if tree.leaf(i) is None), None)
        if index is None:
            index, tree = tree.n_leaves, tree.extended()
        assert index == expect_index
        leaf, sig, _ = _key_package_leaf(cs, f"ext{index}")
        created = create_update_path(
            tree,
            TreePrivateKeys(index, {}),
            leaf,
            sig,
            group_id=GROUP_ID,
            group_context=_context,
            external=True,
        )
        for m in g.members.values():
            applied = apply_update_path(
                tree,
                index,
                created.update_path,
                m.view.pruned(tree),
                group_id=GROUP_ID,
                group_context=_context,
                external=True,
            )
            assert applied.commit_secret == created.commit_secret
            assert applied.tree == created.tree
            m.view = applied.private_keys
        with pytest.raises(TreeKemError, match="taken"):
            apply_update_path(
                tree,
                0,
                created.update_path,
                g.members[1].view,
                group_id=GROUP_ID,
                group_context=_context,
                external=True,
            )
        g.members[index] = Member(sig, created.private_keys)
        g.tree = created.tree
        g.tree.validate(GROUP_ID)
        for m in g.members.values():
            m.view.check_consistent(cs, g.tree)


def _fuzz_fixture() -> tuple[Group, bytes]:
    g = Group.create(cipher_suite(1))
    g.commit(0, adds=4)
    leaf = g.tree.leaf(0)
    assert leaf is not None
    created = create_update_path(
        g.tree,
        g.members[0].view,
        leaf,
        g.members[0].signature_priv,
        group_id=GROUP_ID,
        group_context=_context,
    )
    return g, created.update_path.to_bytes()


_FUZZ_GROUP, _FUZZ_PATH = _fuzz_fixture()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 255), st.sampled_from([1, 2, 3, 4]))
def test_mutated_update_paths_fail_only_with_mls_errors(pos: int, xor: int, receiver: int) -> None:
    """UpdatePaths come off the network: any corruption is either harmless to this receiver
    (a ciphertext meant for someone else) or an MlsError, never another exception."""
    data = bytearray(_FUZZ_PATH)
    data[pos % len(data)] ^= xor
    g = _FUZZ_GROUP
    try:
        path = UpdatePath.from_bytes(bytes(data))
        applied = apply_update_path(
            g.tree,
            0,
            path,
            g.members[receiver].view,
            group_id=GROUP_ID,
            group_context=_context,
        )
    except MlsError:
        return
    applied.private_keys.check_consistent(g.cs, applied.tree)
