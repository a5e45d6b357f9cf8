"""tree-math.json: root/left/right/parent/sibling of every node (RFC 9420 Appendix C)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire.mls import _tree_math as tm
from tests.mls._vectors import cases


@pytest.mark.parametrize("case", cases("tree-math"))
def test_tree_math(case: dict[str, Any]) -> None:
    n = case["n_leaves"]
    assert tm.node_width(n) == case["n_nodes"]
    assert tm.root(n) == case["root"]
    for x in range(case["n_nodes"]):
        leaf = tm.level(x) == 0
        assert (None if leaf else tm.left(x)) == case["left"][x]
        assert (None if leaf else tm.right(x)) == case["right"][x]
        is_root = x == tm.root(n)
        assert (None if is_root else tm.parent(x, n)) == case["parent"][x]
        assert (None if is_root else tm.sibling(x, n)) == case["sibling"][x]


@given(st.integers(0, 11), st.data())
def test_direct_path_ends_at_root_and_copath_pairs(k: int, data: st.DataObject) -> None:
    n = 1 << k  # RFC 9420 trees are always full (§7.8): a power of two leaves
    leaf = data.draw(st.integers(0, n - 1))
    x = tm.leaf_to_node(leaf)
    path = tm.direct_path(x, n)
    cop = tm.copath(x, n)
    if n == 1:
        assert path == []
        assert cop == []
        return
    assert path[-1] == tm.root(n)
    assert len(cop) == len(path)
    for node, sib in zip([x, *path[:-1]], cop, strict=True):
        assert tm.sibling(sib, n) == node
        assert tm.parent(sib, n) == tm.parent(node, n)
    assert all(c < tm.node_width(n) for c in cop)


def test_misuse_raises() -> None:
    with pytest.raises(ValueError, match="no children"):
        tm.left(2)
    with pytest.raises(ValueError, match="no parent"):
        tm.parent(tm.root(8), 8)
    with pytest.raises(ValueError, match="not a leaf"):
        tm.node_to_leaf(3)


@given(st.integers(0, 7), st.data())
def test_common_ancestor_is_lowest_shared_ancestor(k: int, data: st.DataObject) -> None:
    n = 1 << k
    width = tm.node_width(n)
    x = data.draw(st.integers(0, width - 1))
    y = data.draw(st.integers(0, width - 1))

    def ancestors(z: int) -> list[int]:
        return [z, *tm.direct_path(z, n)]

    shared = [a for a in ancestors(x) if a in ancestors(y)]
    assert tm.common_ancestor(x, y) == shared[0]
    first, last = tm.leaf_span(shared[0])
    for z in (x, y):
        lo, hi = tm.leaf_span(z)
        assert first <= lo <= hi <= last
