"""The passive-client vectors (RFC 9420 interop suite): join from a Welcome (tree in-band or
out of band, with and without PSKs), then process every epoch's proposals and commit; the epoch
authenticator must match after the join and after every commit. Everything goes through the
public API (MlsClient.join, Group.process), as the session layer uses it."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls import CommitProcessed, MlsClient, ProposalReceived
from slimwire.mls._struct_framing import MLSMessage
from slimwire.mls._structs import KeyPackage
from tests.mls._vectors import cases, h


def _run(case: dict[str, Any]) -> int:
    kp_msg = MLSMessage.from_bytes(h(case["key_package"]))
    assert isinstance(kp_msg.body, KeyPackage)
    psks = {h(p["psk_id"]): h(p["psk"]) for p in case["external_psks"]}
    client = MlsClient(
        kp_msg.body.leaf_node.credential.identity,
        h(case["signature_priv"]),
        suite_id=case["cipher_suite"],
        external_psks=psks,
    )
    client.import_key_package(
        h(case["key_package"]), h(case["init_priv"]), h(case["encryption_priv"])
    )
    tree = h(case["ratchet_tree"]) if case["ratchet_tree"] else None
    group = client.join(h(case["welcome"]), ratchet_tree=tree)
    assert group.epoch_authenticator == h(case["initial_epoch_authenticator"])
    for step, epoch in enumerate(case["epochs"]):
        for proposal in epoch["proposals"]:
            assert isinstance(group.process(h(proposal)), ProposalReceived)
        before = group.epoch
        event = group.process(h(epoch["commit"]))
        assert isinstance(event, CommitProcessed)
        assert group.epoch == before + 1
        assert group.epoch_authenticator == h(epoch["epoch_authenticator"]), f"epoch step {step}"
    return len(case["epochs"])


@pytest.mark.parametrize("case", cases("passive-client-welcome"))
def test_passive_client_welcome(case: dict[str, Any]) -> None:
    _run(case)


@pytest.mark.parametrize("case", cases("passive-client-handling-commit"))
def test_passive_client_handling_commit(case: dict[str, Any]) -> None:
    assert _run(case) == len(case["epochs"]) > 0


@pytest.mark.parametrize("case", cases("passive-client-random"))
def test_passive_client_random(case: dict[str, Any]) -> None:
    assert _run(case) == len(case["epochs"]) > 0
