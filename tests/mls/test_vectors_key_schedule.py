"""key-schedule.json: a chain of epochs per suite; every derived field must match, including
the MLS-Exporter output (which hashes its context) and external_pub (DeriveKeyPair)."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls._key_schedule import (
    epoch_from_init_secret,
    external_init_secret,
    external_init_secret_from_kem_output,
    welcome_key_nonce,
)
from slimwire.mls._structs import GroupContext
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import cases, h


@pytest.mark.parametrize("case", cases("key-schedule"))
def test_key_schedule(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])
    group_id = h(case["group_id"])
    init_secret = h(case["initial_init_secret"])
    for epoch, e in enumerate(case["epochs"]):
        ctx = GroupContext(
            1, cs.id, group_id, epoch, h(e["tree_hash"]), h(e["confirmed_transcript_hash"])
        ).to_bytes()
        assert ctx == h(e["group_context"])
        s = epoch_from_init_secret(cs, init_secret, h(e["commit_secret"]), h(e["psk_secret"]), ctx)
        assert s.joiner_secret == h(e["joiner_secret"])
        assert s.welcome_secret == h(e["welcome_secret"])
        assert s.init_secret == h(e["init_secret"])
        assert s.sender_data_secret == h(e["sender_data_secret"])
        assert s.encryption_secret == h(e["encryption_secret"])
        assert s.exporter_secret == h(e["exporter_secret"])
        assert s.epoch_authenticator == h(e["epoch_authenticator"])
        assert s.external_secret == h(e["external_secret"])
        assert s.confirmation_key == h(e["confirmation_key"])
        assert s.membership_key == h(e["membership_key"])
        assert s.resumption_psk == h(e["resumption_psk"])
        assert s.external_pub == h(e["external_pub"])
        x = e["exporter"]
        # the exporter label is a text string (that happens to look like hex); context is hex
        assert s.export(x["label"].encode(), h(x["context"]), x["length"]) == h(x["secret"])
        # the external joiner and the members agree on the external init secret
        kem_output, joiner_init = external_init_secret(cs, s.external_pub)
        priv = s.external_key_pair()[0]
        assert external_init_secret_from_kem_output(cs, priv, kem_output) == joiner_init
        key, nonce = welcome_key_nonce(cs, s.welcome_secret)
        assert (len(key), len(nonce)) == (cs.aead_key_len, cs.aead_nonce_len)
        init_secret = s.init_secret
