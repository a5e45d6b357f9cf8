"""secret-tree.json: sender-data key/nonce, and handshake/application keys and nonces for
every leaf at the listed generations (RFC 9420 §9)."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls._secret_tree import (
    RatchetType,
    SecretTree,
    SecretTreeError,
    sender_data_key_nonce,
)
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import cases, h


@pytest.mark.parametrize("case", cases("secret-tree"))
def test_secret_tree(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])
    sd = case["sender_data"]
    key, nonce = sender_data_key_nonce(cs, h(sd["sender_data_secret"]), h(sd["ciphertext"]))
    assert key == h(sd["key"])
    assert nonce == h(sd["nonce"])

    n_leaves = len(case["leaves"])
    receiver = SecretTree(cs, h(case["encryption_secret"]), n_leaves)
    for leaf, entries in enumerate(case["leaves"]):
        for e in entries:
            g = e["generation"]
            app = receiver.key_for(leaf, RatchetType.APPLICATION, g)
            hs = receiver.key_for(leaf, RatchetType.HANDSHAKE, g)
            assert (app.generation, app.key, app.nonce) == (
                g,
                h(e["application_key"]),
                h(e["application_nonce"]),
            )
            assert (hs.key, hs.nonce) == (h(e["handshake_key"]), h(e["handshake_nonce"]))
            # a key is handed out once
            with pytest.raises(SecretTreeError):
                receiver.key_for(leaf, RatchetType.APPLICATION, g)

    # A sender walking its ratchet reaches the same keys; skipped ones stay available.
    last = n_leaves - 1
    sender = SecretTree(cs, h(case["encryption_secret"]), n_leaves)
    sent = [sender.next_key(last, RatchetType.APPLICATION) for _ in range(16)]
    for e in case["leaves"][last]:
        assert sent[e["generation"]].key == h(e["application_key"])
    out_of_order = SecretTree(cs, h(case["encryption_secret"]), n_leaves)
    for g in (5, 2, 9, 0):
        assert out_of_order.key_for(last, RatchetType.APPLICATION, g) == sent[g]


def test_bounds() -> None:
    cs = cipher_suite(1)
    tree = SecretTree(cs, bytes(32), 4, max_forward=10, max_skipped=2)
    with pytest.raises(SecretTreeError, match="outside"):
        tree.key_for(4, RatchetType.APPLICATION, 0)
    with pytest.raises(SecretTreeError, match="too far"):
        tree.key_for(1, RatchetType.APPLICATION, 11)
    tree.key_for(1, RatchetType.APPLICATION, 10)
    # only the two most recent skipped generations (8, 9) are kept
    tree.key_for(1, RatchetType.APPLICATION, 9)
    with pytest.raises(SecretTreeError, match="already used"):
        tree.key_for(1, RatchetType.APPLICATION, 7)
    with pytest.raises(ValueError, match="power-of-two"):
        SecretTree(cs, bytes(32), 3)
