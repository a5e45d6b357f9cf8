"""Array-based left-balanced binary tree arithmetic (RFC 9420 §4.1, Appendix C).

RFC 9420 trees are always full (§7.8: the tree doubles when it runs out of leaves), so
``n_leaves`` is a power of two. Leaves sit at even node indices (leaf ``i`` is node ``2i``),
parents at odd ones; a node's level is the number of trailing one bits of its index. Everything
is plain integer arithmetic, so ratchet-tree code can walk paths without building objects.
"""

from __future__ import annotations

__all__ = [
    "common_ancestor",
    "copath",
    "direct_path",
    "filtered_direct_path_pairs",
    "is_leaf",
    "leaf_span",
    "leaf_to_node",
    "left",
    "level",
    "node_to_leaf",
    "node_width",
    "parent",
    "right",
    "root",
    "sibling",
]


def level(x: int) -> int:
    """Number of trailing one bits: 0 for leaves."""
    return ((x ^ (x + 1)).bit_length()) - 1


def is_leaf(x: int) -> bool:
    return x & 1 == 0


def leaf_to_node(leaf_index: int) -> int:
    return 2 * leaf_index


def leaf_span(x: int) -> tuple[int, int]:
    """The leaf indices [first, last] under node ``x``."""
    half = (1 << level(x)) - 1
    return (x - half) >> 1, (x + half) >> 1


def node_to_leaf(x: int) -> int:
    if x & 1:
        raise ValueError(f"node {x} is not a leaf")
    return x >> 1


def node_width(n_leaves: int) -> int:
    """Number of nodes in a tree of ``n_leaves`` leaves."""
    return 0 if n_leaves == 0 else 2 * (n_leaves - 1) + 1


def root(n_leaves: int) -> int:
    if n_leaves <= 0:
        raise ValueError("a tree has at least one leaf")
    w = node_width(n_leaves)
    return (1 << (w.bit_length() - 1)) - 1


def left(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError(f"leaf {x} has no children")
    return x ^ (1 << (k - 1))


def right(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError(f"leaf {x} has no children")
    return x ^ (3 << (k - 1))


def _parent_step(x: int) -> int:
    k = level(x)
    b = (x >> (k + 1)) & 1
    return (x | (1 << k)) ^ (b << (k + 1))


def parent(x: int, n_leaves: int) -> int:
    """The parent of ``x`` in a tree of ``n_leaves`` leaves (the tree may be unbalanced on
    the right, so the parent is found by stepping up until the node is inside the tree)."""
    if x == root(n_leaves):
        raise ValueError("the root has no parent")
    w = node_width(n_leaves)
    p = _parent_step(x)
    while p >= w:
        p = _parent_step(p)
    return p


def sibling(x: int, n_leaves: int) -> int:
    p = parent(x, n_leaves)
    return right(p) if x < p else left(p)


def direct_path(x: int, n_leaves: int) -> list[int]:
    """Ancestors of ``x`` from its parent up to the root (empty for the root)."""
    r = root(n_leaves)
    out: list[int] = []
    while x != r:
        x = parent(x, n_leaves)
        out.append(x)
    return out


def copath(x: int, n_leaves: int) -> list[int]:
    """Siblings of ``x`` and of each of its ancestors below the root."""
    r = root(n_leaves)
    if x == r:
        return []
    path = [x, *direct_path(x, n_leaves)]
    path.pop()  # the root has no sibling
    return [sibling(y, n_leaves) for y in path]


def filtered_direct_path_pairs(x: int, n_leaves: int) -> list[tuple[int, int]]:
    """(ancestor, copath child) pairs along the direct path of ``x``, before filtering; the
    ratchet tree drops the pairs whose copath child has an empty resolution (§4.1.2)."""
    return list(zip(direct_path(x, n_leaves), copath(x, n_leaves), strict=True))


def common_ancestor(x: int, y: int) -> int:
    """The lowest node whose subtree holds both ``x`` and ``y`` (either may be that node).
    In a full tree it has the longest common prefix of the two indices as its high bits."""
    lx, ly = level(x) + 1, level(y) + 1
    if lx <= ly and x >> ly == y >> ly:
        return y
    if ly <= lx and x >> lx == y >> lx:
        return x
    k = 0
    while x != y:
        x, y = x >> 1, y >> 1
        k += 1
    return (x << k) + (1 << (k - 1)) - 1
