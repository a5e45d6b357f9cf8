"""Ratchet tree beyond the vectors: hostile bytes, and edits against a from-scratch rebuild."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.errors import MlsError
from slimwire.mls._ratchet_tree import RatchetTree
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import h, load

_TREES = [h(c["tree"]) for c in load("tree-validation") if c["cipher_suite"] == 1][:6]
_CS = cipher_suite(1)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_tree_bytes_raise_mls_error(data: bytes) -> None:
    try:
        tree = RatchetTree.from_bytes(_CS, data)
    except MlsError:
        return
    assert tree.to_bytes() == data


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_TREES), st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_tree_bytes_never_crash(tree: bytes, pos: int, byte: int) -> None:
    data = bytearray(tree)
    data[pos % len(data)] = byte
    try:
        parsed = RatchetTree.from_bytes(_CS, bytes(data))
    except MlsError:
        return
    # a parsed tree hashes and checks without raising anything but MlsError
    parsed.tree_hash()
    with contextlib.suppress(MlsError):
        parsed.validate(b"group")


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(_TREES), st.lists(st.integers(0, 40), max_size=6))
def test_remove_then_add_matches_fresh_hashes(tree_bytes: bytes, victims: list[int]) -> None:
    tree = RatchetTree.from_bytes(_CS, tree_bytes)
    tree.tree_hash()
    for v in victims:
        members = [i for i, _ in tree.leaves()]
        if len(members) <= 1:
            break
        victim = members[v % len(members)]
        leaf = tree.leaf(victim)
        assert leaf is not None
        tree = tree.remove_leaf(victim)
        tree, index = tree.add_leaf(leaf)
        assert tree.leaf(index) == leaf
        fresh = RatchetTree.from_bytes(_CS, tree.to_bytes())
        assert fresh.tree_hash() == tree.tree_hash()
        tree = tree.remove_leaf(index)
