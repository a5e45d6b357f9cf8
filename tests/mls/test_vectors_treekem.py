"""treekem.json: every member's private view processes every UpdatePath (path secret, commit
secret, tree hash after), and fresh UpdatePaths we create are processed by every other member
(RFC 9420 §7.4-7.6, §12.4.2)."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls._ratchet_tree import RatchetTree
from slimwire.mls._structs import GroupContext, UpdatePath
from slimwire.mls._suites import CipherSuite, cipher_suite
from slimwire.mls._treekem import (
    TreeKemError,
    TreePrivateKeys,
    apply_update_path,
    create_update_path,
)
from tests.mls._vectors import cases, h


def _private_views(cs: CipherSuite, case: dict[str, Any]) -> dict[int, TreePrivateKeys]:
    views = {}
    for lp in case["leaves_private"]:
        view = TreePrivateKeys.for_leaf(lp["index"], h(lp["encryption_priv"]))
        for ps in lp["path_secrets"]:
            view = view.with_path_secret(cs, ps["node"], h(ps["path_secret"]))
        views[lp["index"]] = view
    return views


@pytest.mark.parametrize("case", cases("treekem"))
def test_treekem(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])
    group_id = h(case["group_id"])
    tree = RatchetTree.from_bytes(cs, h(case["ratchet_tree"]))
    assert tree.verify_parent_hashes()
    views = _private_views(cs, case)
    for view in views.values():
        view.check_consistent(cs, tree)
    signature_keys = {lp["index"]: h(lp["signature_priv"]) for lp in case["leaves_private"]}

    def context(tree_hash: bytes) -> bytes:
        return GroupContext(
            1, cs.id, group_id, case["epoch"], tree_hash, h(case["confirmed_transcript_hash"])
        ).to_bytes()

    for up in case["update_paths"]:
        sender = up["sender"]
        path = UpdatePath.from_bytes(h(up["update_path"]))
        merged = None
        for j, view in views.items():
            if j == sender:
                continue
            applied = apply_update_path(
                tree, sender, path, view, group_id=group_id, group_context=context
            )
            assert applied.path_secret == h(up["path_secrets"][j])
            assert applied.commit_secret == h(up["commit_secret"])
            assert applied.tree.tree_hash() == h(up["tree_hash_after"])
            applied.private_keys.check_consistent(cs, applied.tree)
            merged = applied.tree
        assert merged is not None
        assert merged.verify_parent_hashes()
        merged.validate(group_id)

        # Our own UpdatePath from the same sender: every other member gets our commit secret.
        leaf = tree.leaf(sender)
        assert leaf is not None
        created = create_update_path(
            tree,
            views[sender],
            leaf,
            signature_keys[sender],
            group_id=group_id,
            group_context=context,
        )
        assert created.tree.verify_parent_hashes()
        created.tree.validate(group_id)
        created.private_keys.check_consistent(cs, created.tree)
        for j, view in views.items():
            if j == sender:
                continue
            applied = apply_update_path(
                tree, sender, created.update_path, view, group_id=group_id, group_context=context
            )
            assert applied.commit_secret == created.commit_secret
            assert applied.tree == created.tree
            assert applied.path_secret == created.path_secrets[applied.path_secret_node]

        # A tampered path is rejected: a different group context cannot decrypt.
        other = next((j for j in views if j != sender), None)
        if other is not None and path.nodes:
            with pytest.raises(TreeKemError):
                apply_update_path(
                    tree,
                    sender,
                    path,
                    views[other],
                    group_id=group_id,
                    group_context=lambda th: context(th) + b"\x00",
                )
