"""tree-validation.json: per-node resolutions and tree hashes, parent-hash chains and leaf
signatures of trees with blanks, trailing blanks and unmerged leaves (RFC 9420 §4, §7)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from slimwire.mls._ratchet_tree import InvalidTreeError, RatchetTree
from slimwire.mls._structs import LeafNode, ParentNode
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import cases, h


@pytest.mark.parametrize("case", cases("tree-validation"))
def test_tree_validation(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])
    tree = RatchetTree.from_bytes(cs, h(case["tree"]))
    assert tree.to_bytes() == h(case["tree"])
    assert len(tree.nodes) == len(case["tree_hashes"])
    for x, expected in enumerate(case["resolutions"]):
        assert tree.resolution(x) == expected
    for x, expected in enumerate(case["tree_hashes"]):
        assert tree.tree_hash(x) == h(expected)
    assert tree.verify_parent_hashes()
    group_id = h(case["group_id"])
    assert tree.verify_leaf_signatures(group_id)
    tree.validate(group_id)

    # Tampering is caught: another group id breaks leaf signatures of commit-sourced leaves,
    # and a changed parent key breaks the parent-hash chain.
    if any(leaf.parent_hash for _, leaf in tree.leaves()):
        assert not tree.verify_leaf_signatures(group_id + b"x")
    parents = [x for x in range(1, len(tree.nodes), 2) if tree.nodes[x] is not None]
    if parents:
        p = parents[0]
        node = tree.nodes[p]
        assert isinstance(node, ParentNode)
        forged = tree.with_nodes({p: replace(node, encryption_key=node.encryption_key[::-1])})
        assert not forged.verify_parent_hashes()
        with pytest.raises(InvalidTreeError):
            forged.validate(group_id)
    leaf0 = tree.leaf(0)
    assert isinstance(leaf0, LeafNode)
    assert tree.with_nodes({0: replace(leaf0, signature=bytes(64))}).tree_hash() != (
        tree.tree_hash()
    )
