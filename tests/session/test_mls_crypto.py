"""MlsCrypto, the session layer's MLS seam: members with JWT identities can be removed and
rejoined by app id, and a message whose AAD does not match its header is refused without
using up its key (the genuine copy still opens)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire.auth import (
    Identity,
    JwsAlgorithm,
    JwtProvider,
    JwtSigner,
    JwtVerifier,
    SharedSecretProvider,
    SharedSecretVerifier,
    StaticKeys,
)
from slimwire.errors import MlsError
from slimwire.names import app_id_from_token_id
from slimwire.session._mls import MlsCrypto, credential_token_id

SECRET = "a shared secret of at least thirty-two bytes"
SIGNER = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
JWT_VERIFIER = JwtVerifier(StaticKeys([SIGNER.public]), audience="slim")


def _jwt_member(name: str, subject: str | None = None) -> tuple[JwtProvider, MlsCrypto]:
    provider = JwtProvider(Identity.generate(name), SIGNER, audience="slim", subject=subject)
    return provider, MlsCrypto(provider, JWT_VERIFIER)


def _group_of(mod: MlsCrypto, *members: MlsCrypto) -> None:
    mod.create_group()
    for i, member in enumerate(members):
        commit, welcome = mod.add(member.key_package())
        for earlier in members[:i]:
            earlier.apply_commit(commit)
        member.join(welcome)


def test_credential_token_id_reads_shared_secret_tokens_and_jwts() -> None:
    ident = Identity.generate("org/ns/alice")
    shared = SharedSecretProvider(ident, SECRET).token()
    assert credential_token_id(shared.encode()) == ident.token_id
    jwt = JwtProvider(ident, SIGNER, subject="did:example:alice").token()
    assert credential_token_id(jwt.encode()) == "did:example:alice"
    assert credential_token_id(b"\xff\xfe") is None
    assert credential_token_id(b"neither.a.token") is None


@given(st.binary(max_size=300))
def test_credential_token_id_never_raises(data: bytes) -> None:
    result = credential_token_id(data)
    assert result is None or isinstance(result, str)


@pytest.mark.parametrize("subject", [None, "did:key:zAuthorityIssuedSubject"])
def test_remove_and_rejoin_a_jwt_member(subject: str | None) -> None:
    _, mod = _jwt_member("org/ns/mod")
    bob_provider, bob = _jwt_member("org/ns/bob", subject)
    carol_provider, carol = _jwt_member("org/ns/carol")
    _group_of(mod, bob, carol)
    bob_id = app_id_from_token_id(bob_provider.subject)
    carol_id = app_id_from_token_id(carol_provider.subject)
    if subject is None:
        assert bob_id == bob_provider.identity.name_id

    # rejoin: bob's leaf is replaced from a fresh key package in one commit
    fresh_bob = MlsCrypto(bob_provider, JWT_VERIFIER)
    commit, welcome = mod.rejoin_app(bob_id, fresh_bob.key_package())
    carol.apply_commit(commit)
    fresh_bob.join(welcome)
    sealed = mod.encrypt(b"after rejoin", b"aad")
    assert fresh_bob.decrypt(sealed, b"aad") == b"after rejoin"
    assert carol.decrypt(sealed, b"aad") == b"after rejoin"

    # remove: carol is gone, bob still reads the group
    commit = mod.remove_app(carol_id)
    fresh_bob.apply_commit(commit)
    sealed = mod.encrypt(b"after remove", b"aad")
    assert fresh_bob.decrypt(sealed, b"aad") == b"after remove"
    with pytest.raises(MlsError):
        carol.decrypt(sealed, b"aad")
    with pytest.raises(MlsError, match="no member with that name id"):
        mod.remove_app(carol_id)


def test_mixed_group_removes_the_shared_secret_member_by_app_id() -> None:
    verifier = _Either(JWT_VERIFIER, SharedSecretVerifier(SECRET))
    mod = MlsCrypto(JwtProvider(Identity.generate("org/ns/mod"), SIGNER, audience="slim"), verifier)
    ident = Identity.generate("org/ns/dave")
    dave = MlsCrypto(SharedSecretProvider(ident, SECRET), verifier)
    _group_of(mod, dave)
    epoch = mod.epoch
    mod.remove_app(ident.name_id)
    assert mod.epoch == epoch + 1


class _Either:
    def __init__(self, *verifiers: JwtVerifier | SharedSecretVerifier) -> None:
        self.verifiers = verifiers

    def verify(self, token: str):  # type: ignore[no-untyped-def]
        error: Exception | None = None
        for v in self.verifiers:
            try:
                return v.verify(token)
            except Exception as exc:
                error = error or exc
        assert error is not None
        raise error


def test_aad_mismatch_is_refused_and_keeps_the_key() -> None:
    _, mod = _jwt_member("org/ns/mod")
    _, bob = _jwt_member("org/ns/bob")
    _group_of(mod, bob)
    sealed = mod.encrypt(b"payload", b"the real header")
    with pytest.raises(MlsError):
        bob.decrypt(sealed, b"a tampered header")
    # the key was not consumed: the same ciphertext opens with the right header
    assert bob.decrypt(sealed, b"the real header") == b"payload"
    # and now it was: a replay is refused
    with pytest.raises(MlsError):
        bob.decrypt(sealed, b"the real header")


def test_integrity_percent_zero_skips_the_aad_check() -> None:
    _, mod = _jwt_member("org/ns/mod")
    bob_provider = JwtProvider(Identity.generate("org/ns/bob"), SIGNER, audience="slim")
    bob = MlsCrypto(bob_provider, JWT_VERIFIER, integrity_percent=0)
    _group_of(mod, bob)
    sealed = mod.encrypt(b"payload", b"the real header")
    assert bob.decrypt(sealed, b"anything else") == b"payload"
    assert MlsCrypto(bob_provider, JWT_VERIFIER, integrity_percent=250).integrity_percent == 100


@pytest.mark.parametrize(("sent", "taken"), [(0, 0), (40, 40), (100, 100), (500, 100)])
def test_joiner_takes_integrity_percent_from_the_join_request(sent: int, taken: int) -> None:
    from slimwire._proto import data_plane_pb2 as pb
    from slimwire.session import SessionConfig
    from slimwire.session._config import SessionKind

    join = pb.JoinRequestPayload()
    join.mls_settings.header_integrity_validation_percent = sent
    config = SessionConfig.from_join_request(SessionKind.GROUP, join, {})
    assert config.mls
    assert config.integrity_percent == taken
    assert (
        SessionConfig.from_join_request(SessionKind.GROUP, pb.JoinRequestPayload(), {}).mls is False
    )
