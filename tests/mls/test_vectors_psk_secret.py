"""psk_secret.json: chained PSK secrets over 0..n external PSKs (RFC 9420 §8.4)."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls._psk import MissingPskError, psk_secret, resolve_psks
from slimwire.mls._struct_content import PreSharedKeyID, PSKType
from slimwire.mls._suites import cipher_suite
from tests.mls._vectors import cases, h


@pytest.mark.parametrize("case", cases("psk_secret"))
def test_psk_secret(case: dict[str, Any]) -> None:
    cs = cipher_suite(case["cipher_suite"])
    psks = [
        (PreSharedKeyID(PSKType.EXTERNAL, h(p["psk_nonce"]), psk_id=h(p["psk_id"])), h(p["psk"]))
        for p in case["psks"]
    ]
    assert psk_secret(cs, psks) == h(case["psk_secret"])
    store = dict(psks)
    assert resolve_psks([pid for pid, _ in psks], store.get) == psks
    if psks:
        assert psk_secret(cs, psks[::-1]) != h(case["psk_secret"]) or len(psks) == 1


def test_missing_psk_is_an_error() -> None:
    pid = PreSharedKeyID(PSKType.EXTERNAL, b"n", psk_id=b"absent")
    with pytest.raises(MissingPskError):
        resolve_psks([pid], {}.get)
