"""tree-operations.json: apply an Add, Update or Remove proposal to a tree and compare the
serialized result and its tree hash (RFC 9420 §12.1)."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls._ratchet_tree import RatchetTree
from slimwire.mls._struct_content import Add, Remove, Update, proposal_from_bytes
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import cases, h


@pytest.mark.parametrize("case", cases("tree-operations"))
def test_tree_operations(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])
    before = RatchetTree.from_bytes(cs, h(case["tree_before"]))
    assert before.tree_hash() == h(case["tree_hash_before"])
    proposal = proposal_from_bytes(h(case["proposal"]))
    if isinstance(proposal, Add):
        after, _ = before.add_leaf(proposal.key_package.leaf_node)
    elif isinstance(proposal, Update):
        after = before.update_leaf(case["proposal_sender"], proposal.leaf_node)
    else:
        assert isinstance(proposal, Remove)
        after = before.remove_leaf(proposal.removed)
    assert after.to_bytes() == h(case["tree_after"])
    assert after.tree_hash() == h(case["tree_hash_after"])
    # memoised hashes carried across the edit agree with a fresh computation
    fresh = RatchetTree.from_bytes(cs, after.to_bytes())
    assert [fresh.tree_hash(x) for x in range(len(fresh.nodes))] == [
        after.tree_hash(x) for x in range(len(after.nodes))
    ]
