"""Transport security over loopback: TLS, mTLS, basic and bearer-JWT channel auth.

Nodes link to nodes (and raw clients dial nodes) with throwaway CAs and certificates made here
with ``cryptography``. Each refusal (wrong password, bad/expired token, no or wrong-CA client
certificate) is checked to end that stream or handshake only, while a correct link to the same
node keeps carrying messages.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.auth import JwtSigner, JwtVerifier, StaticKeys
from slimwire.auth._jwks import JwsAlgorithm
from slimwire.config import (
    AuthConfig,
    BackoffConfig,
    ClientConfig,
    NodeConfig,
    ServerConfig,
    TlsConfig,
    parse_config,
)
from slimwire.dataplane import Node
from slimwire.dataplane._channel_auth import (
    BasicServerAuth,
    JwtServerAuth,
    SignedJwtClientAuth,
    StaticJwtClientAuth,
    build_client_auth,
    build_server_auth,
)
from slimwire.errors import AuthError, ConfigError, GrpcError, SlimwireError
from slimwire.names import Name
from slimwire.transport import open_stream

from ._client import RawClient

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)
CAROL = Name("org", "ns", "carol", 33)
UNAUTHENTICATED = 16
FAST_RETRY = BackoffConfig(interval=0.1)

# -- a throwaway PKI ---------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return b.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_pki(d: Path) -> Pki:
    """Two CAs, a server certificate for 127.0.0.1/localhost and a client certificate from
    the first, and a "rogue" client certificate from the second."""
    pem = serialization.Encoding.PEM
    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("test-ca", ca_key, None, ca=True)
    other = _cert("other-ca", other_key, None, ca=True)
    out: dict[str, Path] = {
        "ca": _write(d / "ca.pem", ca.public_bytes(pem)),
        "other_ca": _write(d / "other-ca.pem", other.public_bytes(pem)),
    }
    for label, issuer, is_server in (
        ("server", (ca.subject, ca_key), True),
        ("client", (ca.subject, ca_key), False),
        ("rogue", (other.subject, other_key), False),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"{label}-node", key, issuer, server=is_server)
        out[f"{label}_cert"] = _write(d / f"{label}.pem", cert.public_bytes(pem))
        out[f"{label}_key"] = _write(d / f"{label}-key.pem", _key_pem(key))
    return Pki(**out)


@pytest.fixture(scope="module")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_jwt_keys(tmp_path_factory.mktemp("jwt"))


def make_jwt_keys(d: Path) -> dict[str, Path]:
    """An ES256 key pair the server trusts and another private key it does not."""
    good, bad = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pub = good.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "private": _write(d / "jwt.key", _key_pem(good)),
        "public": _write(d / "jwt.pub", pub),
        "other_private": _write(d / "other.key", _key_pem(bad)),
    }


# -- helpers -----------------------------------------------------------------------------


def _server(**kw: Any) -> NodeConfig:
    scfg = ServerConfig(host="127.0.0.1", port=0, **kw)
    return NodeConfig(node_id=f"srv-{id(scfg)}", servers=(scfg,))


def _client_node(node_id: str, url: str, **kw: Any) -> NodeConfig:
    link = ClientConfig(endpoint=url, backoff=FAST_RETRY, **kw)
    return NodeConfig(
        node_id=node_id, servers=(ServerConfig(host="127.0.0.1", port=0),), clients=(link,)
    )


def _https(node: Node) -> str:
    return node.url.replace("http://", "https://")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _raw(url: str, name: Name, **open_kw: Any) -> RawClient:
    return await RawClient.connect(url, name, opener=functools.partial(open_stream, **open_kw))


async def _refused_status(url: str, **open_kw: Any) -> int:
    """The gRPC status a raw client's stream ends with (negotiation never answered)."""
    with pytest.raises(GrpcError) as info:
        async with asyncio.timeout(5):
            await _raw(url, CAROL, **open_kw)
    return info.value.status


async def _tls_refused(url: str, ctx: ssl.SSLContext) -> None:
    """The handshake (or, with TLS 1.3 client certs, the first read) fails: no link."""

    async def attempt() -> None:
        async with asyncio.timeout(5):
            client = await _raw(url, CAROL, ssl=ctx)
            await client.subscribe()

    with pytest.raises((SlimwireError, OSError, ssl.SSLError)) as info:
        await attempt()
    # refused by TLS itself, not by a gRPC status after a handshake that went through
    assert not isinstance(info.value, GrpcError), info.value


async def _check_link_carries(
    server: Node, linked: Node, url: str | None = None, **open_kw: Any
) -> None:
    """alice on ``server`` (dialled at ``url`` with ``open_kw``) and bob on ``linked`` reach
    each other over the node link."""
    await server.wait_for(lambda n: len(n.connections()) >= 1)
    alice = await _raw(url or server.url, ALICE, **open_kw)
    bob = await RawClient.connect(linked.url, BOB)
    try:
        await alice.subscribe()
        await bob.subscribe()
        await linked.wait_for(lambda n: any(e.strings[2] == "alice" for e in n.subscriptions()))
        await server.wait_for(lambda n: any(e.strings[2] == "bob" for e in n.subscriptions()))
        bob.publish(ALICE, b"over the secured link")
        (msg,) = await alice.received(1)
        assert msg.publish.msg.app_payload.blob == b"over the secured link"
        alice.publish(BOB, b"and back")
        (msg,) = await bob.received(1)
        assert msg.publish.msg.app_payload.blob == b"and back"
    finally:
        await alice.close()
        await bob.close()


def _client_ctx(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert and key:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


# -- config ------------------------------------------------------------------------------


def _node_yaml(server: str = "", client: str = "") -> str:
    srv = f"\n          - endpoint: 127.0.0.1:0\n{server}" if server else ""
    cli = f"\n          - endpoint: http://127.0.0.1:1\n{client}" if client else ""
    return (
        "services:\n  slim/0:\n    dataplane:\n"
        f"      servers:{srv or ' []'}\n      clients:{cli or ' []'}\n"
    )


def test_reference_auth_keys_parse() -> None:
    cfg = parse_config(
        _node_yaml(
            server=(
                "            auth:\n              type: jwt\n"
                "              claims: {audience: [slim], issuer: me}\n"
                "              key: {type: decoding, algorithm: ES256, format: pem,"
                " key: {file: /k.pub}}\n"
            ),
            client=(
                "            auth:\n              type: jwt\n              duration: 10m\n"
                "              claims: {aud: [slim], iss: me, sub: node-b,"
                " custom_claims: {role: relay}}\n"
                "              key: {type: encoding, algorithm: ES256, format: pem,"
                " key: {data: PEM}}\n"
            ),
        )
    )
    s, c = cfg.servers[0].auth, cfg.clients[0].auth
    assert (s.kind, s.audience, s.issuer, s.key_type, s.key_file) == (
        "jwt",
        ("slim",),
        "me",
        "decoding",
        "/k.pub",
    )
    assert (c.kind, c.duration, c.subject, c.key_data, dict(c.custom_claims)) == (
        "jwt",
        600.0,
        "node-b",
        "PEM",
        {"role": "relay"},
    )
    basic = parse_config(
        _node_yaml(
            server="            auth: {type: basic, username: u, password: p}\n",
            client="            auth: {type: static_jwt, file: /t.jwt, duration: 30s}\n",
        )
    )
    assert (basic.servers[0].auth.username, basic.servers[0].auth.password) == ("u", "p")
    assert basic.servers[0].auth_type == "basic"
    assert (basic.clients[0].auth.file, basic.clients[0].auth.duration) == ("/t.jwt", 30.0)


def test_reference_tls_keys_parse() -> None:
    cfg = parse_config(
        _node_yaml(
            server=(
                "            tls:\n              source: {type: file, cert: /s.pem, key: /s.key}\n"
                "              client_ca: {type: pem, data: CAPEM}\n"
                "              tls_version: tls1.2\n"
            ),
            client=(
                "            tls:\n              source: {type: pem, cert: C, key: K}\n"
                "              ca_source: {type: file, path: /ca.pem}\n"
            ),
        )
    )
    s, c = cfg.servers[0].tls, cfg.clients[0].tls
    assert not s.insecure
    assert (s.cert_file, s.key_file, s.client_ca_pem) == (
        "/s.pem",
        "/s.key",
        "CAPEM",
    )
    assert s.requires_client_cert
    assert s.tls_version == "tls1.2"
    assert (c.cert_pem, c.key_pem, c.ca_file) == ("C", "K", "/ca.pem")
    assert c.has_cert
    legacy = parse_config(
        _node_yaml(
            server="            tls: {cert_file: /a, key_file: /b, ca_file: /ca}\n",
        )
    )
    assert legacy.servers[0].tls.client_ca_file == "/ca"


@pytest.mark.parametrize(
    ("server", "client", "needle"),
    [
        ("            auth: {type: spire}\n", "", "'spire' transport auth is not supported"),
        ("            auth: {type: static_jwt, file: /x}\n", "", "'static_jwt'"),
        ("", "            auth: {type: oidc}\n", "'oidc'"),
        ("            auth: {type: basic, username: u}\n", "", "non-empty username and password"),
        ("            auth: {type: basic, username: u, password: p, x: 1}\n", "", "auth.x"),
        ("", "            auth: {type: static_jwt}\n", "token file"),
        (
            "            auth: {type: jwt, key: {type: encoding, algorithm: ES256, format: pem,"
            " key: {file: /k}}}\n",
            "",
            "expected decoding",
        ),
        (
            "            auth: {type: jwt, key: {type: decoding, algorithm: HS256, format: pem,"
            " key: {file: /k}}}\n",
            "",
            "'HS256' is not supported",
        ),
        (
            "            auth: {type: jwt, key: {type: decoding, algorithm: ES256, format: pem,"
            " key: {file: /k, data: x}}}\n",
            "",
            "exactly one of file or data",
        ),
        ("            tls: {source: {type: spire}}\n", "", "'spire' is not supported"),
        ("            tls: {cert_file: /a, key_file: /b, tls_version: ssl3}\n", "", "tls1.2"),
    ],
)
def test_auth_and_tls_config_refusals(server: str, client: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        parse_config(_node_yaml(server=server, client=client))


def test_jwt_key_must_fit_its_algorithm(jwt_keys: dict[str, Path]) -> None:
    cfg = AuthConfig(
        kind="jwt",
        key_type="decoding",
        key_algorithm="EdDSA",
        key_format="pem",
        key_file=str(jwt_keys["public"]),
    )
    with pytest.raises(ConfigError, match="does not fit the key"):
        build_server_auth(cfg)


# -- the auth objects --------------------------------------------------------------------


async def test_basic_server_auth_accepts_only_the_exact_credentials() -> None:
    auth = BasicServerAuth("admin", "s3cret")
    assert await auth.check([("authorization", _basic("admin", "s3cret"))]) is None
    assert await auth.check([("authorization", "basic " + _basic("admin", "s3cret")[6:])]) is None
    for header in (
        _basic("admin", "wrong"),
        _basic("root", "s3cret"),
        _basic("admin", "s3cret2"),
        "Basic " + base64.b64encode(b"admins3cret").decode(),
        "Basic !!!",
        "Bearer abc",
        "",
    ):
        assert await auth.check([("authorization", header)]) is not None, header
    assert await auth.check([]) == "no basic credentials"


_HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["Basic dTpw", "basic  dTpw ", "BASIC dTpw", "Basic dTpx", "Bearer dTpw"]),
    st.builds(
        lambda scheme, user, pw: f"{scheme} " + base64.b64encode(f"{user}:{pw}".encode()).decode(),
        st.sampled_from(["Basic", "basic", "Bearer"]),
        st.sampled_from(["u", "U", "", "uu"]),
        st.sampled_from(["p", "P", "", "p:"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["authorization", "x"]), _HEADER_VALUES), max_size=3))
def test_channel_auth_header_parsers_never_crash(headers: list[tuple[str, str]]) -> None:
    """Whatever a peer sends as headers, the checks answer with a reason or None, never an
    exception, and basic accepts only the configured user and password."""
    basic = BasicServerAuth("u", "p")
    got = asyncio.run(basic.check(headers))
    first = next((v for k, v in headers if k == "authorization"), None)
    exact = first is not None and first.strip().lower().startswith("basic ")
    exact = exact and first is not None and first.split()[-1] == "dTpw"
    assert (got is None) == exact, (headers, got)
    signer = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    jwt = JwtServerAuth(JwtVerifier(StaticKeys([signer.public]), audience="slim"))
    assert isinstance(asyncio.run(jwt.check(headers)), str)


def test_static_jwt_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token.jwt"
    path.write_text("first.token.value\n")
    now = [0.0]
    auth = StaticJwtClientAuth(path, duration=3600, clock=lambda: now[0])
    assert auth.header() == "Bearer first.token.value"
    path.write_text("second.token.value-longer")
    assert auth.header() == "Bearer second.token.value-longer"
    path.unlink()
    with pytest.raises(AuthError, match="cannot read"):
        auth.header()
    path.write_text("")
    with pytest.raises(AuthError, match="empty"):
        auth.header()


def test_signed_jwt_is_refreshed_before_expiry() -> None:
    signer = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    now = [1_000_000.0]
    auth = SignedJwtClientAuth(
        signer, {"sub": "node-b", "aud": ["slim"]}, lifetime=100, clock=lambda: now[0]
    )
    verifier = JwtVerifier(StaticKeys([signer.public]), audience="slim", clock=lambda: now[0])
    first = auth.header()
    claims = verifier.verify(first.removeprefix("Bearer "))
    assert (claims.subject, claims.expires_at) == ("node-b", 1_000_100)
    now[0] += 79
    assert auth.header() == first
    now[0] += 2  # past 80 % of the lifetime: a new token, still valid for the whole lifetime
    second = auth.header()
    assert second != first
    assert verifier.verify(second.removeprefix("Bearer ")).expires_at == 1_000_181


# -- nodes over loopback -----------------------------------------------------------------


async def test_basic_auth_link_and_refusals(caplog: pytest.LogCaptureFixture) -> None:
    good = AuthConfig(kind="basic", username="admin", password="s3cret")
    creds = [("authorization", _basic("admin", "s3cret"))]
    async with Node(_server(auth=good)) as a, Node(_client_node("b", a.url, auth=good)) as b:
        await _check_link_carries(a, b, headers=creds)
        with caplog.at_level(logging.WARNING, "slimwire.dataplane._node"):
            for header in (_basic("admin", "nope"), _basic("eve", "s3cret"), "Bearer x"):
                status = await _refused_status(a.url, headers=[("authorization", header)])
                assert status == UNAUTHENTICATED
            assert await _refused_status(a.url) == UNAUTHENTICATED
        refusals = [r.getMessage() for r in caplog.records if "unauthenticated" in r.message]
        assert len(refusals) == 4
        assert all("rejecting link from 127.0.0.1:" in m for m in refusals)
        # the good link was not disturbed, and a correct client still gets in
        await _check_link_carries(a, b, headers=creds)


async def test_node_with_wrong_password_never_links(caplog: pytest.LogCaptureFixture) -> None:
    server_auth = AuthConfig(kind="basic", username="admin", password="s3cret")
    bad = AuthConfig(kind="basic", username="admin", password="guess")
    with caplog.at_level(logging.WARNING, "slimwire.dataplane._node"):
        async with (
            Node(_server(auth=server_auth)) as a,
            Node(_client_node("b", a.url, auth=bad)),
            asyncio.timeout(10),
        ):
            # the link is refused, re-dials with the same wrong password, is refused again
            while sum("unauthenticated" in r.message for r in caplog.records) < 2:
                await asyncio.sleep(0.05)
            assert a.connections() == []


def _jwt_server(jwt_keys: dict[str, Path]) -> AuthConfig:
    return AuthConfig(
        kind="jwt",
        audience=("slim",),
        issuer="test-issuer",
        key_type="decoding",
        key_algorithm="ES256",
        key_format="pem",
        key_file=str(jwt_keys["public"]),
    )


def _token(key_file: Path, **claims: Any) -> str:
    priv = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(priv, ec.EllipticCurvePrivateKey)
    now = int(time.time())
    body = {"sub": "x", "aud": ["slim"], "iss": "test-issuer", "iat": now, "exp": now + 60}
    body.update(claims)
    return JwtSigner(priv, "k").sign({k: v for k, v in body.items() if v is not None})


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def test_bearer_jwt_link_and_refusals(jwt_keys: dict[str, Path]) -> None:
    client_auth = AuthConfig(
        kind="jwt",
        audience=("slim",),
        issuer="test-issuer",
        subject="node-b",
        duration=120,
        key_type="encoding",
        key_algorithm="ES256",
        key_format="pem",
        key_data=jwt_keys["private"].read_text(),
    )
    async with (
        Node(_server(auth=_jwt_server(jwt_keys))) as a,
        Node(_client_node("b", a.url, auth=client_auth)) as b,
    ):
        good = _bearer(_token(jwt_keys["private"]))
        await _check_link_carries(a, b, headers=good)
        now = int(time.time())
        bad_tokens = {
            "other key": _token(jwt_keys["other_private"]),
            "expired": _token(jwt_keys["private"], iat=now - 600, exp=now - 300),
            "wrong audience": _token(jwt_keys["private"], aud=["elsewhere"]),
            "wrong issuer": _token(jwt_keys["private"], iss="mallory"),
            "no exp": _token(jwt_keys["private"], exp=None),
            "garbage": "not-a-jwt",
        }
        for why, tok in bad_tokens.items():
            assert await _refused_status(a.url, headers=_bearer(tok)) == UNAUTHENTICATED, why
        basic = [("authorization", _basic("u", "p"))]
        assert await _refused_status(a.url, headers=basic) == UNAUTHENTICATED
        await _check_link_carries(a, b, headers=good)


async def test_static_jwt_link_picks_up_a_rotated_token(
    jwt_keys: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A link whose token file holds a bad token is refused and re-dials; once the file holds
    a good token, the next connect presents it and the link comes up."""
    token_file = tmp_path / "token.jwt"
    token_file.write_text(_token(jwt_keys["other_private"]))
    auth = AuthConfig(kind="static_jwt", file=str(token_file))
    with caplog.at_level(logging.WARNING, "slimwire.dataplane._node"):
        async with (
            Node(_server(auth=_jwt_server(jwt_keys))) as a,
            Node(_client_node("b", a.url, auth=auth)) as b,
        ):
            async with asyncio.timeout(10):
                while not any("unauthenticated" in r.message for r in caplog.records):
                    await asyncio.sleep(0.05)
            assert a.connections() == []
            good = _token(jwt_keys["private"], exp=int(time.time()) + 600)
            token_file.write_text(good)
            await _check_link_carries(a, b, headers=_bearer(good))


async def test_tls_link(pki: Pki) -> None:
    tls = TlsConfig(insecure=False, cert_file=str(pki.server_cert), key_file=str(pki.server_key))
    async with Node(_server(tls=tls)) as a:
        link_tls = TlsConfig(insecure=False, ca_file=str(pki.ca))
        async with Node(_client_node("b", _https(a), tls=link_tls)) as b:
            await _check_link_carries(a, b, _https(a), ssl=_client_ctx(pki.ca))
            # a client that trusts another CA refuses our certificate; plain h2c gets nothing
            await _tls_refused(_https(a), _client_ctx(pki.other_ca))
            with pytest.raises((SlimwireError, OSError)):
                await _h2c_attempt(a.url)
            await _check_link_carries(a, b, _https(a), ssl=_client_ctx(pki.ca))


async def _h2c_attempt(url: str) -> None:
    async with asyncio.timeout(5):
        await RawClient.connect(url, CAROL)


async def test_mtls_link_and_refusals(pki: Pki) -> None:
    tls = TlsConfig(
        insecure=False,
        cert_pem=pki.server_cert.read_text(),
        key_pem=pki.server_key.read_text(),
        client_ca_file=str(pki.ca),
    )
    basic = AuthConfig(kind="basic", username="admin", password="s3cret")
    async with Node(_server(tls=tls, auth=basic)) as a:
        link_tls = TlsConfig(
            insecure=False,
            ca_pem=pki.ca.read_text(),
            cert_file=str(pki.client_cert),
            key_file=str(pki.client_key),
        )
        async with Node(_client_node("b", _https(a), tls=link_tls, auth=basic)) as b:
            await a.wait_for(lambda n: len(n.connections()) == 1)
            # no client certificate, and one from the wrong CA: the handshake fails
            await _tls_refused(_https(a), _client_ctx(pki.ca))
            await _tls_refused(_https(a), _client_ctx(pki.ca, pki.rogue_cert, pki.rogue_key))
            # the right certificate but no credentials: TLS is fine, gRPC says UNAUTHENTICATED
            ctx = _client_ctx(pki.ca, pki.client_cert, pki.client_key)
            assert await _refused_status(_https(a), ssl=ctx) == UNAUTHENTICATED
            creds = [("authorization", _basic("admin", "s3cret"))]
            await _check_link_carries(a, b, _https(a), ssl=ctx, headers=creds)
            # the refused clients (carol) never became connections
            assert "client-carol" not in {c.peer_node_id for c in a.connections()}


async def test_link_server_name_is_what_the_certificate_must_carry(pki: Pki) -> None:
    """The server's certificate names 127.0.0.1 and localhost: a link to 127.0.0.1 that expects
    another name refuses it; one that expects localhost links."""
    tls = TlsConfig(insecure=False, cert_file=str(pki.server_cert), key_file=str(pki.server_key))
    link_tls = TlsConfig(insecure=False, ca_file=str(pki.ca))
    wrong = functools.partial(_client_node, "wrong", tls=link_tls, server_name="node-z.example")
    right = functools.partial(_client_node, "right", tls=link_tls, server_name="localhost")
    async with (
        Node(_server(tls=tls)) as a,
        Node(wrong(_https(a))) as w,
        Node(right(_https(a))) as r,
    ):
        # the wrong-name link stays down while the right-name link comes up and carries
        await _check_link_carries(a, r, _https(a), ssl=_client_ctx(pki.ca))
        assert "wrong" not in {c.peer_node_id for c in a.connections()}
        assert w.connections() == []


async def test_node_link_with_rogue_client_cert_never_links(pki: Pki) -> None:
    tls = TlsConfig(
        insecure=False,
        cert_file=str(pki.server_cert),
        key_file=str(pki.server_key),
        client_ca_file=str(pki.ca),
    )
    async with Node(_server(tls=tls)) as a:
        rogue = TlsConfig(
            insecure=False,
            ca_file=str(pki.ca),
            cert_file=str(pki.rogue_cert),
            key_file=str(pki.rogue_key),
        )
        good = TlsConfig(
            insecure=False,
            ca_file=str(pki.ca),
            cert_file=str(pki.client_cert),
            key_file=str(pki.client_key),
        )
        async with (
            Node(_client_node("rogue", _https(a), tls=rogue)),
            Node(_client_node("good", _https(a), tls=good)) as g,
        ):
            ctx = _client_ctx(pki.ca, pki.client_cert, pki.client_key)
            await _check_link_carries(a, g, _https(a), ssl=ctx)
            assert "rogue" not in {c.peer_node_id for c in a.connections()}


def test_client_auth_builders(jwt_keys: dict[str, Path]) -> None:
    assert build_client_auth(AuthConfig()) is None
    assert build_server_auth(AuthConfig()) is None
    basic = build_client_auth(AuthConfig(kind="basic", username="u", password="p"))
    assert basic is not None
    assert basic.header() == _basic("u", "p")
    signed = build_client_auth(
        AuthConfig(
            kind="jwt",
            key_type="encoding",
            key_algorithm="ES256",
            key_format="pem",
            key_file=str(jwt_keys["private"]),
        ),
        default_subject="node-z",
    )
    assert signed is not None
    server = build_server_auth(_jwt_server(jwt_keys))
    assert isinstance(server, JwtServerAuth)
    # no audience/issuer configured on the signer: the pinned server refuses it
    with pytest.raises(AuthError, match="issuer"):
        server.verifier.verify(signed.header().removeprefix("Bearer "))


async def test_yaml_configs_with_mtls_and_jwt_link(pki: Pki, jwt_keys: dict[str, Path]) -> None:
    """The reference's YAML keys, end to end: a server with mTLS (``source``/``client_ca``) and
    JWT auth, and a node whose ``clients`` entry has ``ca_source``/``source`` and signs its JWT."""
    server_yaml = f"""
services:
  slim/0:
    node_id: yaml-a
    dataplane:
      servers:
        - endpoint: 127.0.0.1:0
          tls:
            source: {{type: file, cert: {pki.server_cert}, key: {pki.server_key}}}
            client_ca: {{type: file, path: {pki.ca}}}
          auth:
            type: jwt
            claims: {{audience: [slim], issuer: test-issuer}}
            key:
              {{type: decoding, algorithm: ES256, format: pem, key: {{file: {jwt_keys["public"]}}}}}
"""
    async with Node(parse_config(server_yaml)) as a:
        client_yaml = f"""
services:
  slim/0:
    node_id: yaml-b
    dataplane:
      servers: [{{endpoint: 127.0.0.1:0, tls: {{insecure: true}}}}]
      clients:
        - endpoint: {_https(a)}
          backoff: {{type: fixed_interval, interval: 100ms}}
          tls:
            ca_source: {{type: file, path: {pki.ca}}}
            source: {{type: file, cert: {pki.client_cert}, key: {pki.client_key}}}
          auth:
            type: jwt
            duration: 5m
            claims: {{audience: [slim], issuer: test-issuer, subject: yaml-b}}
            key:
              type: encoding
              algorithm: ES256
              format: pem
              key: {{file: {jwt_keys["private"]}}}
"""
        async with Node(parse_config(client_yaml)) as b:
            ctx = _client_ctx(pki.ca, pki.client_cert, pki.client_key)
            await _check_link_carries(
                a, b, _https(a), ssl=ctx, headers=_bearer(_token(jwt_keys["private"]))
            )
            assert "yaml-b" in {c.peer_node_id for c in a.connections()}
