"""Shared-secret tokens: format, verification rules, identities on disk."""

from __future__ import annotations

import base64
import json
import re
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire.auth import (
    Identity,
    KeyAlgorithm,
    SharedSecretProvider,
    SharedSecretVerifier,
    SigningKey,
    parse_token,
    verify_signature,
)
from slimwire.errors import AuthError
from slimwire.names import app_id_from_token_id

SECRET = "abcdefghijklmnopqrstuvwxyz012345"
TOKEN_RE = re.compile(
    r"^org/ns/alice_[A-Za-z0-9]{8}:\d+:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]{43}$"
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_token_format_matches_reference() -> None:
    ident = Identity.generate("org/ns/alice")
    token = SharedSecretProvider(ident, SECRET).token()
    assert TOKEN_RE.match(token), token
    parsed = parse_token(token)
    assert parsed.token_id == ident.token_id
    assert len(parsed.nonce) == 12
    assert len(parsed.mac) == 32
    # claims are compact JSON {"pubkey": base64std(65-byte SEC1 point)}
    claims_json = base64.urlsafe_b64decode(token.split(":")[3] + "==").decode()
    assert claims_json == json.dumps(
        {"pubkey": base64.b64encode(ident.public_key).decode()}, separators=(",", ":")
    )
    assert len(ident.public_key) == 65
    assert ident.public_key[0] == 4


def test_fresh_nonce_per_token() -> None:
    prov = SharedSecretProvider(Identity.generate("svc"), SECRET)
    assert len({prov.token() for _ in range(50)}) == 50


def test_verify_roundtrip_and_claims() -> None:
    clock = Clock(1_800_000_000)
    ident = Identity.generate("svc")
    token = SharedSecretProvider(ident, SECRET, clock=clock).token()
    claims = SharedSecretVerifier(SECRET, clock=clock).verify(token)
    assert claims.subject == ident.token_id
    assert claims.issued_at == 1_800_000_000
    assert claims.expires_at == 1_800_000_000 + 3600
    assert claims.public_key == ident.public_key


def test_wrong_secret_rejected() -> None:
    token = SharedSecretProvider(Identity.generate("svc"), SECRET).token()
    with pytest.raises(AuthError, match="MAC"):
        SharedSecretVerifier("X" * 32).verify(token)


def test_tampered_fields_rejected() -> None:
    token = SharedSecretProvider(Identity.generate("svc"), SECRET).token()
    verifier = SharedSecretVerifier(SECRET)
    parts = token.split(":")
    for index in range(4):
        bad = list(parts)
        bad[index] = bad[index][:-1] + ("A" if bad[index][-1] != "A" else "B")
        if index == 1:
            bad[1] = str(int(parts[1]) - 1)
        with pytest.raises(AuthError):
            verifier.verify(":".join(bad))


def test_validity_window_and_skew() -> None:
    clock = Clock(1_000_000)
    token = SharedSecretProvider(Identity.generate("svc"), SECRET, clock=clock).token()
    verifier = SharedSecretVerifier(SECRET, clock=clock)
    clock.now = 1_000_000 + 3600
    verifier.verify(token)  # exactly at the window edge is still valid
    clock.now = 1_000_000 + 3601
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(token)
    clock.now = 1_000_000 - 5
    verifier.verify(token)  # 5 s in the future is tolerated
    clock.now = 1_000_000 - 6
    with pytest.raises(AuthError, match="future"):
        verifier.verify(token)


def test_replay_cache_optional() -> None:
    token = SharedSecretProvider(Identity.generate("svc"), SECRET).token()
    SharedSecretVerifier(SECRET).verify(token)
    SharedSecretVerifier(SECRET).verify(token)
    with_cache = SharedSecretVerifier(SECRET, replay_cache=16)
    with_cache.verify(token)
    with pytest.raises(AuthError, match="replay"):
        with_cache.verify(token)


def test_short_secret_rejected() -> None:
    with pytest.raises(AuthError, match="too short"):
        SharedSecretProvider(Identity.generate("svc"), "short")
    with pytest.raises(AuthError, match="too short"):
        SharedSecretVerifier("x" * 31)


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "tab\there"])
def test_bad_base_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="base id"):
        Identity.generate(bad)


@pytest.mark.parametrize("alg", list(KeyAlgorithm))
def test_identity_save_load(tmp_path, alg: KeyAlgorithm) -> None:
    ident = Identity.generate("org/ns/app", alg)
    path = tmp_path / "id.json"
    ident.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Identity.load(path)
    assert loaded == ident
    assert loaded.name_id == app_id_from_token_id(ident.token_id)
    sig = loaded.signing_key.sign(b"data")
    verify_signature(ident.public_key, sig, b"data")


def test_identity_load_malformed(tmp_path) -> None:
    path = tmp_path / "id.json"
    path.write_text("{not json")
    with pytest.raises(AuthError):
        Identity.load(path)
    path.write_text(json.dumps({"version": 1, "token_id": "a_b", "algorithm": "rsa"}))
    with pytest.raises(AuthError):
        Identity.load(path)


def test_reference_token_id_gives_reference_name_id() -> None:
    # slim-wire.md 1.3 (verified against the reference)
    assert Identity("alice_AbCd1234", SigningKey.generate()).name_id == int(
        "74ecd689241f30cd1dc53fd5de63a485", 16
    )


@pytest.mark.parametrize("alg", list(KeyAlgorithm))
def test_signatures_by_key_length(alg: KeyAlgorithm) -> None:
    key = SigningKey.generate(alg)
    assert len(key.public_bytes) == (65 if alg is KeyAlgorithm.P256 else 32)
    sig = key.sign(b"aad")
    verify_signature(key.public_bytes, sig, b"aad")
    with pytest.raises(AuthError):
        verify_signature(key.public_bytes, sig, b"aae")
    other = SigningKey.generate(alg)
    with pytest.raises(AuthError):
        verify_signature(other.public_bytes, sig, b"aad")
    again = SigningKey.from_private_bytes(key.private_bytes, alg)
    assert again.public_bytes == key.public_bytes


@given(st.text(max_size=300))
def test_verifier_never_crashes_on_text(text: str) -> None:
    verifier = SharedSecretVerifier(SECRET)
    with pytest.raises(AuthError):
        verifier.verify(text)


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters=":"), max_size=60),
        min_size=5,
        max_size=5,
    )
)
def test_parser_on_five_fields(fields: list[str]) -> None:
    token = ":".join(fields)
    try:
        parsed = parse_token(token)
    except AuthError:
        pass
    else:
        assert parsed.token_id == fields[0]
    with pytest.raises(AuthError):
        SharedSecretVerifier(SECRET).verify(token)


@given(st.binary(max_size=80), st.binary(max_size=80))
def test_verify_signature_garbage(key: bytes, sig: bytes) -> None:
    with pytest.raises(AuthError):
        verify_signature(key, sig, b"data")
