"""SecretTree's take-then-consume API: a prepared key changes nothing until it is consumed,
a consumed key and the secrets it came from are gone (forward secrecy), a key prepared from a
state the tree has left is refused, and persistence keeps the tree's exact position."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.mls._codec import DecodeError
from slimwire.mls._secret_tree import RatchetType, SecretTree, SecretTreeError
from slimwire.mls._suites import cipher_suite

SUITE = cipher_suite(2)
APP, HS = RatchetType.APPLICATION, RatchetType.HANDSHAKE
SECRET = bytes(range(32))


def _tree(n_leaves: int = 4, **kw: int) -> SecretTree:
    return SecretTree(SUITE, SECRET, n_leaves, **kw)


def test_prepare_changes_nothing_and_consume_uses_up() -> None:
    tree = _tree()
    empty = tree.to_bytes()
    pending = tree.prepare(2, APP, 0)
    assert tree.to_bytes() == empty  # nothing derived or stored yet
    assert tree.prepare(2, APP, 0).key == pending.key  # the same key again
    tree.consume(pending)
    assert _tree().key_for(2, APP, 0) == pending.key
    with pytest.raises(SecretTreeError):  # consumed once only
        tree.consume(pending)
    with pytest.raises(SecretTreeError, match="already used"):
        tree.prepare(2, APP, 0)
    assert tree.key_for(2, APP, 1).generation == 1


def test_a_key_from_a_state_the_tree_left_is_refused() -> None:
    tree = _tree()
    early = tree.prepare(0, APP, 0)
    tree.key_for(0, HS, 0)  # derives leaf 0's secret and both ratchets
    with pytest.raises(SecretTreeError, match="left"):
        tree.consume(early)
    # a sibling's derivation takes the parent secret the first key was derived from
    first = tree.prepare(1, APP, 3)
    tree.key_for(1, HS, 0)
    with pytest.raises(SecretTreeError):
        tree.consume(first)
    # the same generation, prepared anew, is still there: nothing was lost
    assert tree.key_for(1, APP, 3) == _tree().key_for(1, APP, 3)


def test_consumed_secrets_are_deleted() -> None:
    tree = _tree()
    stored = tree.to_bytes()
    assert SECRET in stored
    pending = tree.prepare(3, APP, 0)
    tree.consume(pending)
    after = tree.to_bytes()
    assert SECRET not in after  # the root's secret is gone once its children exist
    assert pending.before is None
    assert pending.after.secret in after
    used = tree.prepare(3, APP, 1)
    tree.consume(used)
    assert pending.after.secret not in tree.to_bytes()  # the ratchet moved on
    for leaf in range(4):
        for kind in RatchetType:
            tree.key_for(leaf, kind, 5)
    # every node secret has been used: only ratchets remain (n_leaves, then no nodes)
    assert tree.to_bytes()[:5] == b"\x00\x00\x00\x04\x00"


# an operation: (leaf, kind, generation step, what to do with the prepared key)
OPS = st.lists(
    st.tuples(
        st.integers(0, 4),  # leaf 4 is outside the tree
        st.sampled_from([APP, HS]),
        st.integers(-3, 6),
        st.sampled_from(["consume", "drop", "persist"]),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(OPS)
def test_taking_keys_matches_a_tree_that_only_consumes(
    ops: list[tuple[int, RatchetType, int, str]],
) -> None:
    """Dropped keys leave no trace and a restored tree carries on exactly: the tree under
    test, with keys prepared and dropped and stores and restores in between, hands out the
    same keys and refusals as a plain tree that only consumes, and encodes the same bytes."""
    tree = _tree(max_forward=8, max_skipped=4)
    plain = _tree(max_forward=8, max_skipped=4)
    next_gen: dict[tuple[int, RatchetType], int] = {}
    for leaf, kind, step, action in ops:
        generation = max(0, next_gen.get((leaf, kind), 0) + step)
        try:
            expected = plain.key_for(leaf, kind, generation)
        except SecretTreeError:
            with pytest.raises(SecretTreeError):
                tree.prepare(leaf, kind, generation)
            continue
        next_gen[(leaf, kind)] = max(generation + 1, next_gen.get((leaf, kind), 0))
        pending = tree.prepare(leaf, kind, generation)
        assert pending.key == expected
        if action == "drop":
            tree.prepare(leaf, kind, generation)  # and again: still nothing changes
            tree.consume(tree.prepare(leaf, kind, generation))
        else:
            tree.consume(pending)
        if action == "persist":
            tree = SecretTree.from_bytes(SUITE, tree.to_bytes(), max_forward=8, max_skipped=4)
        assert tree.to_bytes() == plain.to_bytes()


@pytest.mark.parametrize("suite_id", [1, 2, 4, 7])
def test_a_senders_next_key_is_the_receivers_key(suite_id: int) -> None:
    """next_key (the sender's one-step shortcut) hands out the generations a receiver derives
    with prepare/consume, in order from 0, interleaved with the other ratchet and leaves,
    and leaves the tree in the same state; persisted midway, it carries on."""
    suite = cipher_suite(suite_id)
    sender, receiver = (SecretTree(suite, SECRET, 8) for _ in range(2))
    for i in range(12):
        for leaf, kind in ((5, APP), (5, HS), (2, APP)):
            if kind is HS and i % 3:
                continue
            key = sender.next_key(leaf, kind)
            assert key == receiver.key_for(leaf, kind, key.generation)
            assert key.generation == (i if kind is APP else i // 3)
        assert sender.to_bytes() == receiver.to_bytes()
        if i == 6:
            sender = SecretTree.from_bytes(suite, sender.to_bytes())
    with pytest.raises(SecretTreeError):  # a generation a sender used is gone for it too
        sender.key_for(5, APP, 3)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes(data: bytes) -> None:
    try:
        tree = SecretTree.from_bytes(SUITE, data)
    except DecodeError:
        return
    encoded = tree.to_bytes()  # canonical: sorted, one entry per node and ratchet
    assert SecretTree.from_bytes(SUITE, encoded).to_bytes() == encoded


def test_decoding_refuses_nodes_and_ratchets_outside_the_tree() -> None:
    tree = _tree(2)
    tree.key_for(1, APP, 0)
    data = tree.to_bytes()
    assert SecretTree.from_bytes(SUITE, data).to_bytes() == data
    with pytest.raises(DecodeError):
        SecretTree.from_bytes(SUITE, data + b"\x00")
    wrong_width = b"\x00\x00\x00\x03" + data[4:]
    with pytest.raises(DecodeError):
        SecretTree.from_bytes(SUITE, wrong_width)
