"""Registration with a JWT from the authority, end to end over loopback: the authority serves
its JWKS and issues tokens, nodes register with them, the controller checks them with
``JwtVerifier(JwksUrl(...)).averify`` and the domain binding (``name`` claim
``<domain>/.../<node_id>``). Shared-secret domains keep working next to it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire._proto import controller_pb2 as cpb
from slimwire.auth import Identity, JwksUrl, JwtVerifier, TokenClaims, decode_unverified
from slimwire.authority import Authority, AuthorityServer, AuthorityStore, AuthorityTokenProvider
from slimwire.config import NodeConfig, ServerConfig
from slimwire.control._agent import Agent
from slimwire.control._config import load_controller_config
from slimwire.control._controller import CONTROLLER_SERVICE, Controller
from slimwire.control._jwt_registration import check_node_binding, looks_like_jwt
from slimwire.control._store import Store
from slimwire.control._wiring import start_node_control
from slimwire.dataplane import Node
from slimwire.errors import ConfigError, GrpcError, RegistrationRefused
from slimwire.transport import Status, open_stream
from tests.control._cluster import Proc, free_port
from tests.control._fake import FakeMesh
from tests.control.test_controller import S1, token, wait_until

LO = ("127.0.0.1", 0)
CLIENT, SECRET = "ops", "ops-client-secret"


@pytest.fixture
async def authority() -> AsyncIterator[AuthorityServer]:
    store = AuthorityStore()
    # the administrator's grant is what binds: this client may name nodes of d1 only
    store.add_client(CLIENT, secret=SECRET, names=["d1/nodes/*"])
    store.add_client("wide", secret=SECRET, names=["*"])
    async with AuthorityServer(Authority(store, issuer="https://auth.test")) as srv:
        yield srv


@pytest.fixture
async def controller(authority: AuthorityServer) -> AsyncIterator[Controller]:
    verifier = JwtVerifier(
        JwksUrl(authority.url + "/.well-known/jwks.json"),
        audience="slim",
        issuer="https://auth.test",
    )
    c = Controller(
        Store(),
        secrets={"d9": S1},  # a shared-secret domain next to the JWT ones
        jwt_verifier=verifier,
        southbound=LO,
        northbound=LO,
        telemetry_interval=None,
    )
    async with c:
        yield c


async def _token(srv: AuthorityServer, name: str, client: str = CLIENT) -> str:
    provider = AuthorityTokenProvider(
        Identity.generate(name), srv.url, name=name, client_id=client, client_secret=SECRET
    )
    await provider.refresh()
    return provider.token()


async def _register(c: Controller, node_id: str, domain: str, credentials: str) -> None:
    """One raw RegisterNodeRequest; returns on acceptance, raises GrpcError on refusal."""
    stream = await open_stream(f"http://127.0.0.1:{c.southbound_port}", CONTROLLER_SERVICE)
    msg = cpb.ControlMessage(message_id="r1")
    msg.register_node_request.node_id = node_id
    msg.register_node_request.domain_name = domain
    msg.register_node_request.credentials = credentials
    stream.send(msg.SerializeToString())
    try:
        reply = await stream.recv()
        assert cpb.ControlMessage.FromString(reply[0]).HasField("register_node_response")
    finally:
        stream.abort()


async def test_authority_token_accepted_via_agent(
    controller: Controller, authority: AuthorityServer
) -> None:
    provider = AuthorityTokenProvider(
        Identity.generate("n1"),
        authority.url,
        name="d1/nodes/n1",
        client_id=CLIENT,
        client_secret=SECRET,
    )
    mesh = FakeMesh()
    async with provider:
        ag = Agent(
            mesh.node("n1"),  # type: ignore[arg-type]
            f"http://127.0.0.1:{controller.southbound_port}",
            domain="d1",
            credentials=provider.token,
        )
        async with ag:
            await wait_until(lambda: controller.connected_nodes() == {"n1"})
            assert ag.last_error is None
    # the shared-secret domain still registers with its secret
    await _register(controller, "s1", "d9", token("d9", "s1", S1)())


@pytest.mark.parametrize(
    ("node_id", "domain", "name", "client", "why"),
    [
        # a token for d1 presented by a node claiming domain d2
        ("n1", "d2", "d1/nodes/n1", CLIENT, "identity mismatch"),
        # a token naming another node of the right domain
        ("n2", "d1", "d1/nodes/n1", CLIENT, "identity mismatch"),
        # a client allowed any name still cannot pose as another domain's node
        ("n1", "d1", "d2/nodes/n1", "wide", "identity mismatch"),
    ],
)
async def test_wrong_domain_or_node_refused(
    controller: Controller,
    authority: AuthorityServer,
    node_id: str,
    domain: str,
    name: str,
    client: str,
    why: str,
) -> None:
    jwt = await _token(authority, name, client)
    with pytest.raises(GrpcError) as info:
        await _register(controller, node_id, domain, jwt)
    assert info.value.status == Status.PERMISSION_DENIED
    assert why in info.value.grpc_message
    assert controller.connected_nodes() == set()


async def test_expired_and_foreign_tokens_refused(
    controller: Controller, authority: AuthorityServer
) -> None:
    # the same authority keys, but a token issued an hour ago with a 60 s lifetime
    past = Authority(
        authority.authority.store,
        issuer="https://auth.test",
        lifetime=60,
        clock=lambda: time.time() - 3600,
    )
    client = authority.authority.store.client(CLIENT)
    assert client is not None
    from slimwire.authority import TokenRequest

    ident = Identity.generate("n1")
    issued = past.issue(client, TokenRequest.from_json(_req("d1/nodes/n1", ident)))
    with pytest.raises(GrpcError) as info:
        await _register(controller, "n1", "d1", issued.token)
    assert info.value.status == Status.PERMISSION_DENIED
    assert "expired" in info.value.grpc_message

    # a token from another authority (keys not in the JWKS)
    other = Authority(AuthorityStore(), issuer="https://auth.test")
    other.store.add_client(CLIENT, secret=SECRET, names=["d1/nodes/*"])
    oc = other.store.client(CLIENT)
    assert oc is not None
    foreign = other.issue(oc, TokenRequest.from_json(_req("d1/nodes/n1", ident))).token
    with pytest.raises(GrpcError) as info:
        await _register(controller, "n1", "d1", foreign)
    assert "token verification failed" in info.value.grpc_message
    # garbage that is not a JWT goes the shared-secret way and is refused there
    with pytest.raises(GrpcError) as info:
        await _register(controller, "n1", "d1", "not-a-token")
    assert info.value.status == Status.PERMISSION_DENIED
    assert controller.connected_nodes() == set()


def _req(name: str, ident: Identity) -> dict[str, object]:
    import base64

    return {"name": name, "public_key": base64.b64encode(ident.public_key).decode()}


async def test_node_wiring_authority_and_token_file(
    controller: Controller, authority: AuthorityServer, tmp_path: Path
) -> None:
    """``auth: {type: authority, ...}`` and ``{type: jwt, token_file}`` in the node's service
    section register it (what ``slimwire node --config`` uses)."""
    south = f"http://127.0.0.1:{controller.southbound_port}"
    service = {
        "node_id": "w1",
        "domain_name": "d1",
        "auth": {
            "type": "authority",
            "url": authority.url,
            "client_id": CLIENT,
            "client_secret": SECRET,
        },
        "controller": {"clients": [{"endpoint": south}]},
    }
    async with _node("w1") as node:
        control = await start_node_control(node, service)
        try:
            await wait_until(lambda: "w1" in controller.connected_nodes())
        finally:
            await control.aclose()
    path = tmp_path / "node.jwt"
    path.write_text(await _token(authority, "d1/nodes/w2") + "\n")
    service = {**service, "node_id": "w2", "auth": {"type": "jwt", "token_file": str(path)}}
    async with _node("w2") as node:
        control = await start_node_control(node, service)
        try:
            await wait_until(lambda: "w2" in controller.connected_nodes())
        finally:
            await control.aclose()


def _node(node_id: str) -> Node:
    return Node(NodeConfig(node_id=node_id, servers=(ServerConfig(host="127.0.0.1", port=0),)))


def test_binding_rule() -> None:
    def claims(sub: str, name: str | None = None) -> TokenClaims:
        return TokenClaims(sub, 0, 1, {} if name is None else {"name": name})

    check_node_binding(claims("did:key:x", "d1/nodes/n1"), "d1", "n1")
    check_node_binding(claims("d1/n1"), "d1", "n1")  # the shared-secret subject shape
    check_node_binding(claims("d1/n1_replica"), "d1", "n1")
    for bad, domain, node in [
        (claims("d1/nodes/n1"), "d1", "n"),
        (claims("d1/nodes/n10"), "d1", "n1"),
        (claims("n1"), "n1", "n1"),
        (claims("d10/x/n1"), "d1", "n1"),
        (claims("d1/n1", "d2/nodes/n1"), "d1", "n1"),  # the name claim wins over sub
    ]:
        with pytest.raises(RegistrationRefused):
            check_node_binding(bad, domain, node)
    assert not looks_like_jwt(token("d1", "n1", S1)())
    assert not looks_like_jwt("a.b.c")


def test_config_registration_auth_jwt(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "topology:\n  registration_auth:\n"
        "    {type: jwt, jwks: 'http://auth:1/.well-known/jwks.json', audience: slim}\n"
    )
    cfg = load_controller_config(cfg_file)
    assert (cfg.jwks, cfg.jwt_audience, cfg.jwt_issuer) == (
        "http://auth:1/.well-known/jwks.json",
        "slim",
        None,
    )
    assert cfg.require_credentials
    cfg_file.write_text(
        "topology:\n  registration_auth:\n    type: shared_secret\n"
        f"    secrets: {{d9: {S1!r}}}\n    jwt: {{jwks: keys.json, issuer: me}}\n"
    )
    cfg = load_controller_config(cfg_file)
    assert (dict(cfg.secrets), cfg.jwks, cfg.jwt_issuer) == ({"d9": S1}, "keys.json", "me")
    cfg_file.write_text("topology:\n  registration_auth: {type: jwt}\n")
    with pytest.raises(ConfigError, match="jwks"):
        load_controller_config(cfg_file)


async def test_controller_cli_with_jwks_url(authority: AuthorityServer, tmp_path: Path) -> None:
    """``slimwire controller --jwks URL --jwt-audience slim``: an authority token registers, a
    token for another domain is refused."""
    south = f"127.0.0.1:{free_port()}"
    proc = Proc(
        [
            "controller",
            "--db",
            ":memory:",
            "--no-auth",
            "--southbound",
            south,
            "--northbound",
            f"127.0.0.1:{free_port()}",
            "--jwks",
            authority.url + "/.well-known/jwks.json",
            "--jwt-audience",
            "slim",
        ],
        tmp_path / "controller.log",
    )
    try:
        m = await proc.wait_line(r"controller listening southbound=(\d+)")
        c = _Ports(int(m[1]))
        await _register(c, "n1", "d1", await _token(authority, "d1/nodes/n1"))  # type: ignore[arg-type]
        with pytest.raises(GrpcError) as info:
            await _register(c, "n1", "d2", await _token(authority, "d1/nodes/n1"))  # type: ignore[arg-type]
        assert "identity mismatch" in info.value.grpc_message
    finally:
        proc.stop()


class _Ports:
    def __init__(self, south: int) -> None:
        self.southbound_port = south


@given(
    st.text(max_size=200)
    | st.from_regex(
        r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,20}", fullmatch=True
    )
)
def test_looks_like_jwt_never_raises(credentials: str) -> None:
    """It reads what a registering node sends, before anything is verified."""
    if looks_like_jwt(credentials):
        assert "alg" in decode_unverified(credentials)[0]
