"""JWT identity tokens: JWS vectors, provider, verifier rules, JWKS sources, SPIFFE."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.auth import Identity, KeyAlgorithm, SigningKey, TokenClaims
from slimwire.auth._jwks import (
    JwkKey,
    JwksFile,
    JwksUrl,
    JwsAlgorithm,
    StaticKeys,
    b64url,
    b64url_decode,
    jwks_document,
    parse_jwks,
)
from slimwire.auth._jwt import (
    JwtProvider,
    JwtSigner,
    JwtVerifier,
    check_token_key,
    decode_unverified,
    token_public_key,
)
from slimwire.auth._spiffe import SpiffeId, SpiffeVerifier, encode_claims_audience
from slimwire.errors import AuthError

NOW = 1_800_000_000


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _raw_token(signer: JwtSigner, claims: dict[str, object], header: dict[str, object]) -> str:
    """A token with an arbitrary header, signed by ``signer`` (to build hostile inputs)."""
    from slimwire.auth._jwt import _sign

    h = b64url(json.dumps(header).encode())
    p = b64url(json.dumps(claims).encode())
    sig = _sign(signer.private_key, f"{h}.{p}".encode())
    return f"{h}.{p}.{b64url(sig)}"


@pytest.fixture(params=list(JwsAlgorithm), ids=lambda a: a.value)
def signer(request: pytest.FixtureRequest) -> JwtSigner:
    return JwtSigner.generate(request.param, kid=f"k-{request.param.value}")


def _claims(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {"sub": "alice", "iat": NOW, "nbf": NOW, "exp": NOW + 600}
    base["aud"] = ["slim"]
    base.update(extra)
    return base


# ---- published JWS vectors -------------------------------------------------------------------


def test_rfc8037_a4_ed25519_signature_is_reproduced() -> None:
    # RFC 8037 Appendix A.1 (key) and A.4 (JWS): Ed25519 is deterministic, so signing the same
    # input with the same key must give exactly the published signature.
    d = b64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(d)
    pub = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    assert b64url(pub) == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    from slimwire.auth._jwt import _sign, _verify

    signing_input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    sig = _sign(key, signing_input)
    assert b64url(sig) == (
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )
    jwk = JwkKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64url(pub)})
    assert _verify(jwk, sig, signing_input)


def test_rfc7515_a3_es256_example_verifies_raw_r_s() -> None:
    # RFC 7515 Appendix A.3: an ES256 JWS whose signature is the raw 64-byte R || S.
    from slimwire.auth._jwt import _verify

    jwk = JwkKey.from_jwk(
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        }
    )
    token = (
        "eyJhbGciOiJFUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ."
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    )
    header, claims, signing_input, sig = decode_unverified(token)
    assert header == {"alg": "ES256"}
    assert claims["iss"] == "joe"
    assert len(sig) == 64
    assert _verify(jwk, sig, signing_input)
    assert not _verify(jwk, sig, signing_input + b"x")


def test_es256_signatures_are_64_bytes_not_der() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    for _ in range(5):
        token = s.sign(_claims())
        assert len(b64url_decode(token.rsplit(".", 1)[1])) == 64


# ---- verifier rules -------------------------------------------------------------------------


def test_roundtrip_each_algorithm(signer: JwtSigner) -> None:
    token = signer.sign(_claims(groups=["ops"]))
    header, _, _, _ = decode_unverified(token)
    assert header == {"alg": signer.algorithm.value, "typ": "JWT", "kid": signer.kid}
    v = JwtVerifier([signer.public], audience="slim", clock=Clock())
    claims = v.verify(token)
    assert claims.subject == "alice"
    assert claims.expires_at == NOW + 600
    assert claims.custom["groups"] == ["ops"]


def test_forged_tokens_are_refused(signer: JwtSigner) -> None:
    v = JwtVerifier([signer.public], audience="slim", clock=Clock())
    token = signer.sign(_claims())
    h, p, s = token.split(".")
    # Payload changed after signing.
    forged_payload = b64url(json.dumps(_claims(sub="mallory")).encode())
    with pytest.raises(AuthError, match="signature"):
        v.verify(f"{h}.{forged_payload}.{s}")
    # Same claims signed by another key of the same algorithm and kid.
    other = JwtSigner.generate(signer.algorithm, signer.kid)
    with pytest.raises(AuthError, match="signature"):
        v.verify(other.sign(_claims()))
    # Signature bytes flipped.
    sig = bytearray(b64url_decode(s))
    sig[0] ^= 1
    with pytest.raises(AuthError, match="signature"):
        v.verify(f"{h}.{p}.{b64url(bytes(sig))}")


def test_expired_not_yet_valid_and_leeway() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    clock = Clock()
    v = JwtVerifier([s.public], audience="slim", leeway=5, clock=clock)
    token = s.sign(_claims())
    clock.now = NOW + 600 + 5  # within leeway
    assert v.verify(token).subject == "alice"
    v.clear_cache()
    clock.now = NOW + 606
    with pytest.raises(AuthError, match="expired"):
        v.verify(token)
    clock.now = NOW
    future = s.sign(_claims(nbf=NOW + 60, iat=NOW + 60, exp=NOW + 600))
    with pytest.raises(AuthError, match="not yet valid"):
        v.verify(future)
    clock.now = NOW + 56  # nbf within leeway
    assert v.verify(future).subject == "alice"


def test_expired_token_is_refused_even_when_cached() -> None:
    s = JwtSigner.generate(JwsAlgorithm.EDDSA, "k")
    clock = Clock()
    v = JwtVerifier([s.public], audience="slim", clock=clock)
    token = s.sign(_claims())
    v.verify(token)
    clock.now = NOW + 10_000
    with pytest.raises(AuthError, match="expired"):
        v.verify(token)


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({"aud": ["other"]}, "audience"),
        ({"aud": "other"}, "audience"),
        ({"aud": None}, "audience"),
        ({"exp": None}, "exp"),
        ({"exp": "tomorrow"}, "exp"),
        ({"exp": True}, "exp"),
        ({"sub": None}, "subject"),
        ({"iss": "evil"}, "issuer"),
    ],
)
def test_claim_rules(claims: dict[str, object], match: str) -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    v = JwtVerifier([s.public], audience="slim", issuer="authority", clock=Clock())
    body = _claims(**{"iss": "authority", **claims})
    body = {k: val for k, val in body.items() if val is not None}
    with pytest.raises(AuthError, match=match):
        v.verify(s.sign(body))


def test_audience_string_or_list_accepted() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    v = JwtVerifier([s.public], audience=["a", "slim"], clock=Clock())
    assert v.verify(s.sign(_claims(aud="slim"))).subject == "alice"
    assert v.verify(s.sign(_claims(aud=["x", "a"]))).subject == "alice"


def test_alg_none_and_hs256_confusion_are_refused() -> None:
    rsa_signer = JwtSigner.generate(JwsAlgorithm.RS256, "k")
    v = JwtVerifier([rsa_signer.public], audience="slim", clock=Clock())
    body = b64url(json.dumps(_claims()).encode())
    none_header = b64url(json.dumps({"alg": "none", "kid": "k"}).encode())
    with pytest.raises(AuthError, match="unsigned"):
        v.verify(f"{none_header}.{body}.")
    # The classic confusion: HMAC keyed with the RSA public key's PEM.
    pem = rsa_signer.public.key.public_bytes(
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = b64url(json.dumps({"alg": "HS256", "kid": "k"}).encode())
    mac = hmac.HMAC(pem, hashes.SHA256())
    mac.update(f"{hs_header}.{body}".encode())
    with pytest.raises(AuthError, match="not supported"):
        v.verify(f"{hs_header}.{body}.{b64url(mac.finalize())}")


def test_header_alg_must_fit_the_key() -> None:
    ed = JwtSigner.generate(JwsAlgorithm.EDDSA, "k")
    v = JwtVerifier([ed.public], audience="slim", clock=Clock())
    # An EdDSA signature under an ES256 header finds no ES256 key.
    lying = _raw_token(ed, _claims(), {"alg": "ES256", "kid": "k"})
    with pytest.raises(AuthError, match="no ES256 key"):
        v.verify(lying)


def test_algorithm_allow_list() -> None:
    rsa_signer = JwtSigner.generate(JwsAlgorithm.RS256, "k")
    v = JwtVerifier(
        [rsa_signer.public], audience="slim", algorithms=[JwsAlgorithm.ES256], clock=Clock()
    )
    with pytest.raises(AuthError, match="not allowed"):
        v.verify(rsa_signer.sign(_claims()))


def test_crit_header_refused() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    v = JwtVerifier([s.public], audience="slim", clock=Clock())
    with pytest.raises(AuthError, match="critical"):
        v.verify(_raw_token(s, _claims(), {"alg": "ES256", "kid": "k", "crit": ["exp"]}))


def test_verified_tokens_are_cached_by_token_and_bounded() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")

    class Counting(StaticKeys):
        lookups = 0

        def keys(self, kid: str | None):  # type: ignore[no-untyped-def]
            Counting.lookups += 1
            return super().keys(kid)

    v = JwtVerifier(Counting([s.public]), audience="slim", cache_size=2, clock=Clock())
    t1, t2, t3 = (s.sign(_claims(jti=str(i))) for i in range(3))
    for _ in range(5):
        v.verify(t1)
    assert Counting.lookups == 1
    v.verify(t2)
    v.verify(t3)  # evicts t1 (least recently used)
    assert Counting.lookups == 3
    v.verify(t1)
    assert Counting.lookups == 4


# ---- provider ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_provider_binds_the_mls_key_and_check_token_key(algorithm: KeyAlgorithm) -> None:
    ident = Identity.generate("org/ns/alice", algorithm)
    s = JwtSigner.generate(JwsAlgorithm.ES256, ident.token_id)
    clock = Clock()
    p = JwtProvider(ident, s, audience="slim", issuer="me", clock=clock)
    v = JwtVerifier([s.public], audience="slim", issuer="me", require_pubkey=True, clock=clock)
    claims = v.verify(p.token())
    assert claims.subject == ident.token_id
    assert claims.public_key == ident.public_key
    check_token_key(claims, ident.public_key)
    # A token whose pubkey is not the key that signs the header/leaf is refused.
    other = SigningKey.generate(algorithm)
    with pytest.raises(AuthError, match="different signature key"):
        check_token_key(claims, other.public_bytes)


def test_pubkey_under_custom_claims_is_read_like_the_reference() -> None:
    ident = Identity.generate("org/ns/bob")
    s = JwtSigner.generate(JwsAlgorithm.EDDSA, "k")
    p = JwtProvider(ident, s, audience="slim", pubkey_in_custom_claims=True, clock=Clock())
    _, raw, _, _ = decode_unverified(p.token())
    assert "pubkey" not in raw
    assert token_public_key(raw) == ident.public_key
    claims = JwtVerifier([s.public], audience="slim", clock=Clock()).verify(p.token())
    assert claims.public_key == ident.public_key


def test_token_without_pubkey_refused_when_required() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    v = JwtVerifier([s.public], audience="slim", require_pubkey=True, clock=Clock())
    with pytest.raises(AuthError, match="pubkey"):
        v.verify(s.sign(_claims()))
    claims = TokenClaims("x", 0, 1, {})
    with pytest.raises(AuthError, match="no pubkey"):
        check_token_key(claims, b"\x01" * 32)


def test_provider_reuses_then_refreshes_at_80_percent() -> None:
    ident = Identity.generate("org/ns/carol")
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    clock = Clock()
    p = JwtProvider(ident, s, lifetime=100, clock=clock)
    first = p.token()
    clock.now = NOW + 79
    assert p.token() == first
    clock.now = NOW + 80
    second = p.token()
    assert second != first
    assert p.expires_at == NOW + 180
    _, claims, _, _ = decode_unverified(second)
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW + 80, NOW + 80, NOW + 180)


def test_provider_refuses_overriding_registered_claims() -> None:
    ident = Identity.generate("org/ns/x")
    s = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    with pytest.raises(ValueError, match="pubkey"):
        JwtProvider(ident, s, claims={"pubkey": "x"})


# ---- JWKS ----------------------------------------------------------------------------------


def test_jwk_roundtrip_and_private_keys_refused(signer: JwtSigner) -> None:
    jwk = signer.public.to_jwk()
    assert jwk["kid"] == signer.kid
    assert jwk["alg"] == signer.algorithm.value
    back = JwkKey.from_jwk(jwk)
    assert back.algorithm is signer.algorithm
    assert back.to_jwk() == jwk
    with pytest.raises(ValueError, match="private"):
        JwkKey.from_jwk({**jwk, "d": "AAAA"})
    with pytest.raises(ValueError, match="alg"):
        JwkKey.from_jwk({**jwk, "alg": "HS256"})


def test_parse_jwks_skips_unusable_keys() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "good")
    doc = {
        "keys": [
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {**s.public.to_jwk(), "use": "enc", "kid": "enc"},
            s.public.to_jwk(),
        ]
    }
    assert [k.kid for k in parse_jwks(json.dumps(doc))] == ["good"]
    with pytest.raises(AuthError):
        parse_jwks(b"[]")


def test_jwks_file_rotation(tmp_path: Path) -> None:
    old = JwtSigner.generate(JwsAlgorithm.ES256, "old")
    new = JwtSigner.generate(JwsAlgorithm.EDDSA, "new")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_document([old.public])))
    v = JwtVerifier(JwksFile(path), audience="slim", clock=Clock())
    assert v.verify(old.sign(_claims())).subject == "alice"
    with pytest.raises(AuthError, match="no EdDSA key"):
        v.verify(new.sign(_claims()))
    path.write_text(json.dumps(jwks_document([old.public, new.public])))
    import os

    os.utime(path, ns=(1, 2))  # a distinct mtime even on coarse clocks
    assert v.verify(new.sign(_claims())).subject == "alice"


class _JwksHandler(http.server.BaseHTTPRequestHandler):
    document: bytes = b'{"keys": []}'
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.document)))
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, type[_JwksHandler]]]:
    handler = type("Handler", (_JwksHandler,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_jwks_url_fetch_cache_and_rotation(jwks_server: tuple[str, type[_JwksHandler]]) -> None:
    url, handler = jwks_server
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    k2 = JwtSigner.generate(JwsAlgorithm.ES256, "k2")
    handler.document = json.dumps(jwks_document([k1.public])).encode()
    mono = Clock(0.0)
    source = JwksUrl(url, ttl=300, min_interval=5, timeout=5, clock=mono)
    v = JwtVerifier(source, audience="slim", clock=Clock())
    assert v.verify(k1.sign(_claims(jti="a"))).subject == "alice"
    assert v.verify(k1.sign(_claims(jti="b"))).subject == "alice"
    assert handler.hits == 1  # cached between tokens
    # Rotation: the issuer publishes k2; a token with the unknown kid triggers one refetch.
    handler.document = json.dumps(jwks_document([k1.public, k2.public])).encode()
    mono.now = 10.0
    assert v.verify(k2.sign(_claims())).subject == "alice"
    assert handler.hits == 2
    # Unknown kids cannot make the verifier hammer the issuer: refetch is rate limited.
    stranger = JwtSigner.generate(JwsAlgorithm.ES256, "k3")
    for i in range(3):
        with pytest.raises(AuthError, match="no ES256 key"):
            v.verify(stranger.sign(_claims(jti=str(i))))
    assert handler.hits == 2  # within min_interval of the last fetch: none
    mono.now = 16.0
    with pytest.raises(AuthError, match="no ES256 key"):
        v.verify(stranger.sign(_claims(jti="late")))
    assert handler.hits == 3  # one refetch per interval


async def test_averify_runs_fetch_off_loop(jwks_server: tuple[str, type[_JwksHandler]]) -> None:
    url, handler = jwks_server
    k1 = JwtSigner.generate(JwsAlgorithm.EDDSA, "k1")
    handler.document = json.dumps(jwks_document([k1.public])).encode()
    v = JwtVerifier(JwksUrl(url), audience="slim", clock=Clock())
    token = k1.sign(_claims())
    assert (await v.averify(token)).subject == "alice"
    assert (await v.averify(token)).subject == "alice"
    assert handler.hits == 1


def test_jwks_url_scheme_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        JwksUrl("file:///etc/passwd")


# ---- SPIFFE --------------------------------------------------------------------------------


def test_spiffe_id_parsing() -> None:
    sid = SpiffeId.parse("spiffe://example.org/ns/prod/sa/agent")
    assert sid.trust_domain == "example.org"
    assert sid.path == "/ns/prod/sa/agent"
    assert str(sid) == "spiffe://example.org/ns/prod/sa/agent"
    assert SpiffeId.parse("spiffe://example.org").path == ""
    for bad in (
        "https://example.org/x",
        "spiffe://Example.org/x",
        "spiffe://example.org/a/../b",
        "spiffe://example.org/a//b",
        "spiffe://example.org/x?q=1",
        "spiffe:///x",
    ):
        with pytest.raises(ValueError, match="SPIFFE"):
            SpiffeId.parse(bad)


def test_spiffe_verifier_trust_domain_and_audience_claims() -> None:
    s = JwtSigner.generate(JwsAlgorithm.ES256, "bundle")
    ident = Identity.generate("org/ns/agent")
    pubkey = base64.b64encode(ident.public_key).decode()
    v = SpiffeVerifier(JwtVerifier([s.public], audience="slim", clock=Clock()), ["example.org"])
    aud = ["slim", encode_claims_audience({"pubkey": pubkey})]
    claims = v.verify(s.sign(_claims(sub="spiffe://example.org/agent", aud=aud)))
    assert claims.custom["trust_domain"] == "example.org"
    assert claims.public_key == ident.public_key
    with pytest.raises(AuthError, match="trust domain"):
        v.verify(s.sign(_claims(sub="spiffe://evil.org/agent")))
    with pytest.raises(AuthError, match="SPIFFE"):
        v.verify(s.sign(_claims(sub="alice")))


# ---- fuzz ----------------------------------------------------------------------------------

_SIGNER = JwtSigner.generate(JwsAlgorithm.ES256, "k")
_FUZZ_VERIFIER = JwtVerifier([_SIGNER.public], audience="slim", clock=Clock(), cache_size=0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_fuzz_verify_garbage_raises_only_auth_error(text: str) -> None:
    with pytest.raises(AuthError):
        _FUZZ_VERIFIER.verify(text)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "x"]), _JSONISH),
    st.dictionaries(
        st.sampled_from(["sub", "exp", "nbf", "iat", "aud", "iss", "pubkey", "custom_claims"]),
        _JSONISH,
    ),
)
def test_fuzz_signed_hostile_headers_and_claims(
    header: dict[str, object], claims: dict[str, object]
) -> None:
    # Validly signed but arbitrary header/claims: the verifier accepts or raises AuthError.
    token = _raw_token(_SIGNER, claims, header)
    try:
        result = _FUZZ_VERIFIER.verify(token)
    except AuthError:
        return
    assert header.get("alg") == "ES256"
    assert isinstance(result.subject, str)
    assert result.subject


# ---- the binding in use: e2e header signatures with JWT identities ---------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_e2e_header_signature_with_jwt_identity(algorithm: KeyAlgorithm) -> None:
    from slimwire._proto import data_plane_pb2 as pb
    from slimwire.auth import sign_header, verify_header
    from slimwire.names import Name

    clock = Clock()
    issuer = JwtSigner.generate(JwsAlgorithm.ES256, "authority")
    verifier = JwtVerifier([issuer.public], audience="slim", require_pubkey=True, clock=clock)
    alice = Identity.generate("org/ns/alice", algorithm)
    provider = JwtProvider(alice, issuer, audience="slim", clock=clock)

    def publish(token: str, key: SigningKey) -> pb.Publish:
        p = pb.Publish()
        Name("org", "ns", "alice", 1).fill_proto(p.header.source)
        Name("org", "ns", "bob", 2).fill_proto(p.header.destination)
        p.header.identity = token
        p.session.session_id = 7
        p.session.message_id = 1
        sign_header(p, key)
        return p

    good = publish(provider.token(), alice.signing_key)
    assert verify_header(good, verifier).subject == alice.token_id
    # A valid token of alice, but the header signed by another key: refused.
    mallory = SigningKey.generate(algorithm)
    with pytest.raises(AuthError, match="signature"):
        verify_header(publish(provider.token(), mallory), verifier)
    # A token change after signing breaks the signature (the token is inside the AAD).
    tampered = publish(provider.token(), alice.signing_key)
    tampered.header.identity = JwtProvider(
        alice, issuer, audience="slim", lifetime=50, clock=clock
    ).token()
    with pytest.raises(AuthError, match="signature"):
        verify_header(tampered, verifier)


_JWK_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["EC", "OKP", "RSA", "oct", "x"]) | st.integers(),
        "crv": st.sampled_from(["P-256", "Ed25519", "P-384"]) | st.none(),
        "x": st.binary(max_size=40).map(b64url) | st.integers(),
        "y": st.binary(max_size=40).map(b64url),
        "n": st.binary(max_size=300).map(b64url),
        "e": st.binary(max_size=4).map(b64url),
        "kid": st.text(max_size=5) | st.integers(),
        "alg": st.sampled_from(["ES256", "EdDSA", "RS256", "HS256"]),
        "use": st.sampled_from(["sig", "enc"]),
        "d": st.just("AAAA"),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JWK_FIELDS | _JSONISH, max_size=4) | _JSONISH)
def test_fuzz_parse_jwks(keys: object) -> None:
    # A JWKS comes from the network: any document parses to usable keys or raises AuthError.
    try:
        parsed = parse_jwks(json.dumps({"keys": keys}, default=str))
    except AuthError:
        assert not isinstance(keys, list)
        return
    for key in parsed:
        assert key.algorithm in JwsAlgorithm
        assert JwkKey.from_jwk(key.to_jwk()) == key
