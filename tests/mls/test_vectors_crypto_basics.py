"""crypto-basics.json: RefHash, ExpandWithLabel, DeriveSecret, DeriveTreeSecret,
Sign/VerifyWithLabel and Encrypt/DecryptWithLabel for all seven suites (RFC 9420 §5, §8)."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.errors import MlsError
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import cases, h


@pytest.mark.parametrize("case", cases("crypto-basics"))
def test_crypto_basics(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])

    v = case["ref_hash"]
    assert cs.ref_hash(v["label"].encode(), h(v["value"])) == h(v["out"])

    v = case["expand_with_label"]
    out = cs.expand_with_label(h(v["secret"]), v["label"].encode(), h(v["context"]), v["length"])
    assert out == h(v["out"])

    v = case["derive_secret"]
    assert cs.derive_secret(h(v["secret"]), v["label"].encode()) == h(v["out"])

    v = case["derive_tree_secret"]
    out = cs.derive_tree_secret(h(v["secret"]), v["label"].encode(), v["generation"], v["length"])
    assert out == h(v["out"])

    v = case["sign_with_label"]
    label, content = v["label"].encode(), h(v["content"])
    assert cs.signature_public_key(h(v["priv"])) == h(v["pub"])
    assert cs.verify_with_label(h(v["pub"]), label, content, h(v["signature"]))
    ours = cs.sign_with_label(h(v["priv"]), label, content)
    assert cs.verify_with_label(h(v["pub"]), label, content, ours)
    assert not cs.verify_with_label(h(v["pub"]), label + b"x", content, ours)
    assert not cs.verify_with_label(h(v["pub"]), label, content + b"x", h(v["signature"]))

    v = case["encrypt_with_label"]
    label, context = v["label"].encode(), h(v["context"])
    priv, pub = h(v["priv"]), h(v["pub"])
    assert cs.kem_public_key(priv) == pub
    pt = cs.decrypt_with_label(priv, label, context, h(v["kem_output"]), h(v["ciphertext"]))
    assert pt == h(v["plaintext"])
    kem_output, ct = cs.encrypt_with_label(pub, label, context, h(v["plaintext"]))
    assert cs.decrypt_with_label(priv, label, context, kem_output, ct) == h(v["plaintext"])
    with pytest.raises(MlsError):
        cs.decrypt_with_label(priv, label + b"x", context, kem_output, ct)
