"""Every MLS message in the passive-client vectors (welcomes, key packages, ratchet trees,
proposals, commits: 1,700+ real messages from several implementations) decodes and re-encodes
byte for byte, and every proposal reference in their commits is the RefHash of a proposal sent
in that epoch."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls._codec import decode_all
from slimwire.mls._framing import proposal_ref
from slimwire.mls._struct_content import Commit, ProposalRef
from slimwire.mls._struct_framing import AuthenticatedContent, MLSMessage, PublicMessage
from slimwire.mls._structs import WireFormat, decode_ratchet_tree, ratchet_tree_to_bytes
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import cases, h

FILES = ("passive-client-welcome", "passive-client-handling-commit", "passive-client-random")
CASES = [p for name in FILES for p in cases(name)]


def _round_trip(data: bytes) -> MLSMessage:
    msg = MLSMessage.from_bytes(data)
    assert msg.to_bytes() == data
    return msg


@pytest.mark.parametrize("case", CASES)
def test_passive_client_messages_round_trip(case: dict[str, Any]) -> None:
    suite = cipher_suite(case["cipher_suite"])
    _round_trip(h(case["key_package"]))
    _round_trip(h(case["welcome"]))
    if case.get("ratchet_tree"):
        tree = decode_all(h(case["ratchet_tree"]), decode_ratchet_tree)
        assert ratchet_tree_to_bytes(tree) == h(case["ratchet_tree"])
    for epoch in case["epochs"]:
        refs = set()
        for raw in epoch["proposals"]:
            msg = _round_trip(h(raw))
            if isinstance(msg.body, PublicMessage):
                ac = AuthenticatedContent(
                    WireFormat.PUBLIC_MESSAGE, msg.body.content, msg.body.auth
                )
                refs.add(proposal_ref(suite, ac))
        commit_msg = _round_trip(h(epoch["commit"]))
        if isinstance(commit_msg.body, PublicMessage):
            commit = commit_msg.body.content.content
            assert isinstance(commit, Commit)
            by_ref = [p for p in commit.proposals if isinstance(p, ProposalRef)]
            assert all(ref in refs for ref in by_ref)


def test_corpus_commits_reference_proposals() -> None:
    """The reference check above is not vacuous: the corpus commits by reference."""
    count = 0
    for param in CASES:
        for epoch in param.values[0]["epochs"]:
            body = MLSMessage.from_bytes(h(epoch["commit"])).body
            if isinstance(body, PublicMessage) and isinstance(body.content.content, Commit):
                count += sum(isinstance(p, ProposalRef) for p in body.content.content.proposals)
    assert count > 1000
