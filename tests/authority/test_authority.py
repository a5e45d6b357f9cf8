"""The authentication service over loopback: issue, verify via the JWKS URL, rotation with
overlap, refused credentials, mTLS with the right and the wrong CA, persistence, parser fuzz."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.auth import Identity, KeyAlgorithm, SigningKey
from slimwire.auth._did import did_key_from_public_key, public_key_from_did_key
from slimwire.auth._jwks import JwksUrl
from slimwire.auth._jwt import JwtVerifier, check_token_key
from slimwire.authority import (
    Authority,
    AuthorityServer,
    AuthorityStore,
    HttpError,
    http_request,
    parse_request,
    request_token,
)
from slimwire.errors import AuthError, TransportError
from slimwire.policy import Action, PolicyEngine, load_policy

SECRET = "correct horse battery staple"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store() -> AuthorityStore:
    store = AuthorityStore(":memory:")
    store.add_client("agent-a", secret=SECRET, names=["org/ns/*"], groups=["ops"])
    store.add_client("agent-b", secret="another secret value", names=["org/b/svc"])
    store.add_client("cert-client", names=["org/mtls/*"], allow_mtls=True)
    return store


def _verifier(url: str, clock: Clock) -> JwtVerifier:
    return JwtVerifier(
        JwksUrl(url + "/.well-known/jwks.json", min_interval=0),
        audience="slim",
        issuer="https://authority.test",
        require_pubkey=True,
        clock=clock,
    )


async def test_issue_and_verify_via_jwks_url() -> None:
    clock = Clock()
    authority = Authority(_store(), issuer="https://authority.test", lifetime=300, clock=clock)
    ident = Identity.generate("org/ns/alice", KeyAlgorithm.P256)
    async with AuthorityServer(authority) as srv:
        answer = await request_token(
            srv.url,
            name="org/ns/alice",
            public_key=ident.public_key,
            client_id="agent-a",
            client_secret=SECRET,
        )
        verifier = _verifier(srv.url, clock)
        claims = await verifier.averify(answer["token"])
    did = did_key_from_public_key(ident.public_key)
    assert claims.subject == did
    assert answer["subject"] == did
    assert public_key_from_did_key(claims.subject) == ident.public_key
    check_token_key(claims, ident.public_key)
    assert claims.custom["name"] == "org/ns/alice"
    assert claims.custom["groups"] == ["ops"]
    assert claims.expires_at == int(clock.now) + 300
    # The token feeds the policy engine directly (groups claim).
    engine = PolicyEngine(
        load_policy(
            {
                "rules": [
                    {
                        "effect": "allow",
                        "claims": {"groups": "ops"},
                        "actions": ["publish"],
                        "names": ["org/ns"],
                    }
                ]
            }
        ),
        verifier,
        clock=clock,
    )
    assert engine.decide(answer["token"], Action.PUBLISH, "org/ns/bob").allowed


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"client_id": "agent-a", "client_secret": "wrong"}, 401, "invalid client credentials"),
        ({"client_id": "nobody", "client_secret": SECRET}, 401, "invalid client credentials"),
        ({"client_id": "agent-a"}, 401, "client_secret or a client certificate"),
        ({"client_id": "agent-a", "client_secret": SECRET, "name": "other/ns/x"}, 403, "may not"),
        (
            {"client_id": "agent-a", "client_secret": SECRET, "public_key": "AAAA"},
            400,
            "public_key",
        ),
        ({"client_id": "agent-a", "client_secret": SECRET, "did": "did:key:z6Mkx"}, 400, "did"),
        ({"client_id": "agent-a", "client_secret": SECRET, "name": "bad"}, 400, "name"),
    ],
)
async def test_refused_requests(body: dict[str, str], status: int, match: str) -> None:
    authority = Authority(_store(), issuer="https://authority.test")
    key = SigningKey.generate(KeyAlgorithm.ED25519)
    import base64

    full = {"name": "org/ns/alice", "public_key": base64.b64encode(key.public_bytes).decode()}
    full.update(body)
    async with AuthorityServer(authority) as srv:
        got_status, answer = await http_request("POST", srv.url + "/v1/token", full)
    assert got_status == status
    assert match in answer["error"]


async def test_http_errors() -> None:
    authority = Authority(_store(), issuer="https://authority.test")
    async with AuthorityServer(authority) as srv:
        assert (await http_request("GET", srv.url + "/nope"))[0] == 404
        assert (await http_request("GET", srv.url + "/v1/token"))[0] == 405
        status, jwks = await http_request("GET", srv.url + "/.well-known/jwks.json")
    assert status == 200
    assert len(jwks["keys"]) == 1


async def test_rotation_keeps_old_key_until_its_tokens_expire() -> None:
    clock = Clock()
    authority = Authority(_store(), issuer="https://authority.test", lifetime=300, clock=clock)
    ident = Identity.generate("org/ns/alice")
    creds = {"client_id": "agent-a", "client_secret": SECRET}
    async with AuthorityServer(authority) as srv:
        verifier = _verifier(srv.url, clock)
        old = await request_token(srv.url, name="org/ns/a", public_key=ident.public_key, **creds)
        assert (await verifier.averify(old["token"])).subject
        clock.now += 100
        new_kid = authority.rotate()
        new = await request_token(srv.url, name="org/ns/a", public_key=ident.public_key, **creds)
        assert new["kid"] == new_kid != old["kid"]
        # The verifier has never seen new_kid: the unknown kid triggers a JWKS refetch.
        assert (await verifier.averify(new["token"])).subject
        _, jwks = await http_request("GET", srv.url + "/.well-known/jwks.json")
        assert {k["kid"] for k in jwks["keys"]} == {old["kid"], new_kid}
        # Once every token of the old key has expired, the key leaves the JWKS.
        clock.now += 300 + authority.leeway + 1
        authority.tick()
        _, jwks = await http_request("GET", srv.url + "/.well-known/jwks.json")
        assert {k["kid"] for k in jwks["keys"]} == {new_kid}
        with pytest.raises(AuthError, match="expired"):
            await verifier.averify(old["token"])


def test_automatic_rotation_on_tick() -> None:
    clock = Clock()
    authority = Authority(_store(), issuer="x", rotate_every=3600, clock=clock)
    first = authority.current.kid
    assert not authority.tick()
    clock.now += 3600
    assert authority.tick()
    assert authority.current.kid != first


def test_state_persists_in_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "authority.db"
    store = AuthorityStore(db)
    store.add_client("agent-a", secret=SECRET, names=["org/ns/*"])
    kid = Authority(store, issuer="x").current.kid
    store.close()
    assert db.stat().st_mode & 0o077 == 0
    reopened = AuthorityStore(db)
    authority = Authority(reopened, issuer="x")
    assert authority.current.kid == kid
    assert authority.authenticate_secret("agent-a", SECRET).names == ("org/ns/*",)
    with pytest.raises(AuthError, match="invalid"):
        authority.authenticate_secret("agent-a", "nope")


# ---- mTLS -------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca_key, rogue_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("test-ca", ca_key, "test-ca", ca_key, ca=True)
    # The rogue CA's own certificate is never given to the server: only its key signs.
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    out = {}
    _write(tmp_path / "ca.pem", ca, None)
    _write(
        tmp_path / "server.pem",
        _cert("localhost", server_key, "test-ca", ca_key, ip="127.0.0.1"),
        server_key,
    )
    _write(tmp_path / "client.pem", _cert("cert-client", client_key, "test-ca", ca_key), client_key)
    _write(
        tmp_path / "rogue-client.pem",
        _cert("cert-client", client_key, "rogue-ca", rogue_key),
        client_key,
    )
    _write(
        tmp_path / "other-client.pem", _cert("agent-b", client_key, "test-ca", ca_key), client_key
    )
    for name in ("ca", "server", "client", "rogue-client", "other-client"):
        out[name] = str(tmp_path / f"{name}.pem")
    return out


def _client_ctx(pki: dict[str, str], cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert is not None:
        ctx.load_cert_chain(cert)
    return ctx


async def test_mtls_issues_to_a_certificate_from_the_ca(pki: dict[str, str]) -> None:
    clock = Clock()
    store = _store()
    authority = Authority(store, issuer="https://authority.test", clock=clock)
    ident = Identity.generate("org/mtls/agent")
    async with AuthorityServer(authority, certfile=pki["server"], client_ca=pki["ca"]) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        answer = await request_token(
            srv.url,
            name="org/mtls/agent",
            public_key=ident.public_key,
            ssl_context=_client_ctx(pki, pki["client"]),
        )
        # The JWKS over HTTPS, fetched by the verifier in a thread, needs the CA too:
        status, jwks = await http_request(
            "GET", srv.url + "/.well-known/jwks.json", ssl_context=_client_ctx(pki, None)
        )
    assert status == 200
    from slimwire.auth._jwks import StaticKeys, parse_jwks

    verifier = JwtVerifier(StaticKeys(parse_jwks(json.dumps(jwks))), audience="slim", clock=clock)
    claims = verifier.verify(answer["token"])
    assert claims.custom["client_id"] == "cert-client"


async def test_mtls_wrong_ca_is_refused(pki: dict[str, str]) -> None:
    store = _store()
    authority = Authority(store, issuer="https://authority.test")
    ident = Identity.generate("org/mtls/agent")
    async with AuthorityServer(authority, certfile=pki["server"], client_ca=pki["ca"]) as srv:
        with pytest.raises((TransportError, AuthError)):
            await request_token(
                srv.url,
                name="org/mtls/agent",
                public_key=ident.public_key,
                ssl_context=_client_ctx(pki, pki["rogue-client"]),
                timeout=5,
            )
        # Neither may a client without a certificate and without a secret get a token,
        with pytest.raises(AuthError, match="401"):
            await request_token(
                srv.url,
                name="org/mtls/agent",
                public_key=ident.public_key,
                ssl_context=_client_ctx(pki, None),
            )
        # nor a certificate from the right CA for a client not registered for mTLS.
        with pytest.raises(AuthError, match="not an mTLS client"):
            await request_token(
                srv.url,
                name="org/b/svc",
                public_key=ident.public_key,
                ssl_context=_client_ctx(pki, pki["other-client"]),
            )
    issued = store._db.execute("SELECT COUNT(*) FROM issued").fetchone()[0]
    assert issued == 0


# ---- HTTP parser ------------------------------------------------------------------------------


def test_parse_request_basics() -> None:
    raw = b"POST /v1/token?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}extra"
    parsed = parse_request(raw)
    assert parsed is not None
    req, used = parsed
    assert (req.method, req.path, req.body, used) == ("POST", "/v1/token", b"{}", len(raw) - 5)
    assert parse_request(raw[:20]) is None
    assert parse_request(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab") is None
    for bad, status in [
        (b"GET / HTTP/2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n", 431),
    ]:
        with pytest.raises(HttpError) as info:
            parse_request(bad)
        assert info.value.status == status


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_parse_request(data: bytes) -> None:
    status = 0
    parsed = None
    try:
        parsed = parse_request(data)
    except HttpError as exc:
        status = exc.status
    assert status == 0 or 400 <= status < 600
    if parsed is not None:
        req, used = parsed
        assert used <= len(data)
        assert req.path.startswith("/")


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["client_id", "client_secret", "name", "public_key", "did", "x"]),
        st.none() | st.integers() | st.text(max_size=20) | st.lists(st.integers(), max_size=2),
    )
)
def test_fuzz_token_endpoint_bodies(body: dict[str, object]) -> None:
    # Whatever JSON a client posts, the endpoint answers a 200 with a token or a 4xx - no crash.
    import hashlib as _hashlib

    store = AuthorityStore(":memory:")
    # A cheap secret check keeps the fuzz fast; the real scrypt is exercised above.
    store.check_secret = lambda cid, s: _hashlib.sha256(s.encode()).digest() == b""  # type: ignore[method-assign]
    server = AuthorityServer(Authority(store, issuer="x"))
    req = parse_request(
        b"POST /v1/token HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
        % (len(json.dumps(body)), json.dumps(body).encode())
    )
    assert req is not None
    status, answer = server._dispatch(req[0], None)
    assert status in (400, 401, 403)
    assert isinstance(answer["error"], str)


async def test_authority_token_provider_renews_in_background() -> None:
    from slimwire.authority import AuthorityTokenProvider

    authority = Authority(_store(), issuer="https://authority.test", lifetime=2)
    ident = Identity.generate("org/ns/alice")
    async with AuthorityServer(authority) as srv:
        provider = AuthorityTokenProvider(
            ident,
            srv.url,
            name="org/ns/alice",
            client_id="agent-a",
            client_secret=SECRET,
            refresh_at=0.5,
        )
        with pytest.raises(AuthError, match="no token yet"):
            provider.token()
        async with provider:
            first = provider.token()
            assert provider.subject == did_key_from_public_key(ident.public_key)
            async with asyncio.timeout(15):
                while provider.token() == first:
                    await asyncio.sleep(0.05)
        verifier = _verifier(srv.url, Clock(float(provider.expires_at) - 1))
        assert (await verifier.averify(provider.token())).public_key == ident.public_key
        bad = AuthorityTokenProvider(
            ident, srv.url, name="org/ns/alice", client_id="agent-a", client_secret="wrong"
        )
        with pytest.raises(AuthError, match="401"):
            await bad.refresh()
