"""Link negotiation: both roles against each other, and every rejection path."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire._constants import SLIM_VERSION
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import LinkNegotiationError, LocalProtocolError
from slimwire.link import (
    HKDF_INFO,
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_PUBLIC_KEY_LEN,
    NEGOTIATION_TIMEOUT_S,
    ClientNegotiation,
    ClientState,
    HeaderMac,
    LinkConnectionType,
    ServerNegotiation,
    ServerState,
    derive_link_key,
    is_semver,
)
from slimwire.names import Name

from ..conftest import CAPTURES
from ._spec import spec_tag


def _pair(
    client: ClientNegotiation, server: ServerNegotiation
) -> tuple[pb.Message, pb.Message, object, object]:
    req = client.request()
    reply, sinfo = server.receive(req)
    cinfo = client.receive(reply)
    return req, reply, cinfo, sinfo


def _header() -> pb.SLIMHeader:
    h = pb.SLIMHeader()
    Name("org", "ns", "a", 1).fill_proto(h.source)
    Name("org", "ns", "b").fill_proto(h.destination)
    h.fanout, h.ttl, h.identity = 1, 8, "tok"
    return h


def _payload(msg: pb.Message) -> pb.LinkNegotiationPayload:
    return msg.link.link_negotiation


@pytest.mark.parametrize("ctype", list(LinkConnectionType))
def test_both_roles_agree_on_a_key(ctype: LinkConnectionType) -> None:
    client = ClientNegotiation(node_id="client-node", connection_type=ctype, deployment_name="d")
    server = ServerNegotiation("server-node", deployment_name="d")
    req, reply, cinfo, sinfo = _pair(client, server)
    p, r = _payload(req), _payload(reply)
    assert not p.is_reply
    assert r.is_reply
    assert r.link_id == p.link_id == client.link_id
    assert len(p.link_ecdh_public_key) == len(r.link_ecdh_public_key) == 32
    assert p.slim_version == r.slim_version == SLIM_VERSION
    assert r.connection_type == p.connection_type == ctype
    assert (p.node_id, r.node_id) == ("client-node", "server-node")
    assert not p.HasField("link_kem_payload")
    assert not r.HasField("link_kem_payload")
    assert client.state is ClientState.DONE
    assert server.state is ServerState.DONE
    from slimwire.link import LinkInfo

    assert isinstance(cinfo, LinkInfo)
    assert isinstance(sinfo, LinkInfo)
    assert cinfo.link_id == sinfo.link_id
    assert (cinfo.peer_node_id, sinfo.peer_node_id) == ("server-node", "client-node")
    assert cinfo.connection_type is sinfo.connection_type is ctype
    assert cinfo.deployment_name == sinfo.deployment_name == "d"
    assert cinfo.peer_version == sinfo.peer_version == SLIM_VERSION
    assert cinfo.mac is not None
    assert sinfo.mac is not None
    assert cinfo.needs_mac == (ctype is not LinkConnectionType.PEER)
    h = _header()
    cinfo.mac.sign(h)
    assert sinfo.mac.verify(h)
    sinfo.mac.sign(h)
    assert cinfo.mac.verify(h)


def test_default_link_id_is_a_fresh_uuid4_and_an_explicit_one_is_kept() -> None:
    a, b = ClientNegotiation(node_id="n"), ClientNegotiation(node_id="n")
    assert a.link_id != b.link_id
    assert len(a.link_id) == 36
    assert a.link_id[14] == "4"
    c = ClientNegotiation("my-link", node_id="n")
    assert _payload(c.request()).link_id == "my-link"
    with pytest.raises(ValueError, match="link_id"):
        ClientNegotiation("", node_id="n")


def test_key_is_hkdf_of_the_x25519_secret() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    # Play the client by hand with a known private key and check the server's MAC key.
    sk = X25519PrivateKey.generate()
    req = pb.Message()
    p = req.link.link_negotiation
    p.link_id, p.slim_version, p.node_id = "L-1", "1.0.0", "c"
    p.link_ecdh_public_key = sk.public_key().public_bytes_raw()
    p.connection_type = pb.LINK_CONNECTION_TYPE_EDGE
    reply, info = ServerNegotiation("s").receive(req)
    shared = sk.exchange(X25519PublicKey.from_public_bytes(_payload(reply).link_ecdh_public_key))
    key = HKDF(algorithm=SHA256(), length=32, salt=b"L-1", info=HKDF_INFO).derive(shared)
    assert key == derive_link_key(shared, "L-1")
    h = _header()
    h.header_mac = spec_tag(key, h, "L-1")
    assert info.mac is not None
    assert info.mac.verify(h)


def test_hybrid_mlkem_when_the_client_enforces_pqc() -> None:
    client = ClientNegotiation(node_id="c", enforce_pqc=True)
    req = client.request()
    assert len(_payload(req).link_kem_payload) == MLKEM768_PUBLIC_KEY_LEN
    reply, sinfo = ServerNegotiation("s").receive(req)
    assert len(_payload(reply).link_kem_payload) == MLKEM768_CIPHERTEXT_LEN
    cinfo = client.receive(reply)
    assert cinfo.mac is not None
    assert sinfo.mac is not None
    h = _header()
    cinfo.mac.sign(h)
    assert sinfo.mac.verify(h)


def test_hybrid_key_differs_from_classical() -> None:
    assert derive_link_key(bytes(64), "l", hybrid=True) != derive_link_key(bytes(64), "l")


def test_pqc_mismatches_are_rejected() -> None:
    with pytest.raises(LinkNegotiationError, match="ML-KEM-768 public key"):
        ServerNegotiation("s", enforce_pqc=True).receive(ClientNegotiation(node_id="c").request())
    client = ClientNegotiation(node_id="c", enforce_pqc=True)
    req = client.request()
    classical = pb.Message()
    classical.CopyFrom(req)
    classical.link.link_negotiation.ClearField("link_kem_payload")
    reply, _ = ServerNegotiation("s").receive(classical)
    with pytest.raises(LinkNegotiationError, match="ciphertext"):
        client.receive(reply)
    assert client.state is ClientState.FAILED


def test_non_strict_server_gives_a_keyless_client_a_keyless_link() -> None:
    req = ClientNegotiation(node_id="c", require_mac=False).request()
    req.link.link_negotiation.ClearField("link_ecdh_public_key")
    reply, info = ServerNegotiation("s", require_mac=False).receive(req)
    assert info.mac is None
    assert not info.needs_mac
    assert _payload(reply).link_ecdh_public_key == b""


def test_non_strict_client_accepts_a_keyless_reply() -> None:
    client = ClientNegotiation(node_id="c", require_mac=False)
    req = client.request()
    req.link.link_negotiation.ClearField("link_ecdh_public_key")
    reply, _ = ServerNegotiation("s", require_mac=False).receive(req)
    info = client.receive(reply)
    assert info.mac is None


def test_strict_client_rejects_a_keyless_reply() -> None:
    client = ClientNegotiation(node_id="c")
    req = client.request()
    req.link.link_negotiation.ClearField("link_ecdh_public_key")
    reply, _ = ServerNegotiation("s", require_mac=False).receive(req)
    with pytest.raises(LinkNegotiationError, match="public key length is invalid"):
        client.receive(reply)


def test_low_order_key_fails_strict_and_is_keyless_otherwise() -> None:
    req = ClientNegotiation(node_id="c").request()
    req.link.link_negotiation.link_ecdh_public_key = bytes(32)
    with pytest.raises(LinkNegotiationError, match="key agreement"):
        ServerNegotiation("s").receive(req)
    reply, info = ServerNegotiation("s", require_mac=False).receive(req)
    assert info.mac is None
    assert _payload(reply).link_ecdh_public_key == b""


# --- server rejections --------------------------------------------------------------------


def _request(**changes: object) -> pb.Message:
    req = ClientNegotiation(node_id="c", deployment_name="d").request()
    p = req.link.link_negotiation
    for field, value in changes.items():
        setattr(p, field, value)
    return req


def _not_link() -> pb.Message:
    m = pb.Message()
    m.publish.header.CopyFrom(_header())
    return m


def _empty_link() -> pb.Message:
    m = pb.Message()
    m.link.SetInParent()
    return m


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_not_link, "not a link negotiation"),
        (_empty_link, "missing link negotiation payload"),
        (lambda: _request(is_reply=True), "reply on incoming connection"),
        (lambda: _request(link_id=""), "empty link_id"),
        (lambda: _request(slim_version="v3.4.6"), "not semver"),
        (lambda: _request(slim_version=""), "not semver"),
        (lambda: _request(link_ecdh_public_key=bytes(16)), "public key length is invalid"),
        (lambda: _request(link_ecdh_public_key=b""), "public key length is invalid"),
        (lambda: _request(connection_type=1, node_id="s"), "own node_id"),
        (lambda: _request(connection_type=1, deployment_name="other"), "deployment"),
    ],
)
def test_server_rejections(msg: Callable[[], pb.Message], reason: str) -> None:
    server = ServerNegotiation("s", deployment_name="d")
    with pytest.raises(LinkNegotiationError, match=reason):
        server.receive(msg())
    assert server.state is ServerState.FAILED
    with pytest.raises(LocalProtocolError):
        server.receive(_request())


def test_server_accepts_a_peer_of_its_deployment() -> None:
    _, info = ServerNegotiation("s", deployment_name="d").receive(_request(connection_type=1))
    assert info.connection_type is LinkConnectionType.PEER
    assert not info.needs_mac


def test_client_keeps_the_connection_type_it_asked_for() -> None:
    client = ClientNegotiation(node_id="c")
    reply = _reply_for(client, connection_type=pb.LINK_CONNECTION_TYPE_PEER)
    info = client.receive(reply)
    assert info.connection_type is LinkConnectionType.EDGE
    assert info.needs_mac


def test_unknown_connection_type_is_remote() -> None:
    reply, info = ServerNegotiation("s").receive(_request(connection_type=7))
    assert info.connection_type is LinkConnectionType.REMOTE
    assert _payload(reply).connection_type == pb.LINK_CONNECTION_TYPE_REMOTE


def test_server_receives_only_once() -> None:
    server = ServerNegotiation("s")
    server.receive(_request())
    with pytest.raises(LocalProtocolError):
        server.receive(_request())


# --- client rejections --------------------------------------------------------------------


def _reply_for(client: ClientNegotiation, **changes: object) -> pb.Message:
    reply, _ = ServerNegotiation("s").receive(client.request())
    p = reply.link.link_negotiation
    for field, value in changes.items():
        setattr(p, field, value)
    return reply


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"is_reply": False}, "request on outgoing connection"),
        ({"link_id": "someone-else"}, "link_id"),
        ({"link_id": ""}, "link_id"),
        ({"slim_version": "3.4"}, "not semver"),
        ({"link_ecdh_public_key": bytes(31)}, "public key length is invalid"),
        ({"link_ecdh_public_key": bytes(32)}, "key agreement"),
    ],
)
def test_client_rejections(changes: dict[str, object], reason: str) -> None:
    client = ClientNegotiation(node_id="c")
    reply = _reply_for(client, **changes)
    with pytest.raises(LinkNegotiationError, match=reason):
        client.receive(reply)
    assert client.state is ClientState.FAILED


@pytest.mark.parametrize("bad", [_not_link, _empty_link])
def test_client_rejects_non_negotiation_first(bad: Callable[[], pb.Message]) -> None:
    client = ClientNegotiation(node_id="c")
    client.request()
    with pytest.raises(LinkNegotiationError):
        client.receive(bad())


def test_client_misuse() -> None:
    client = ClientNegotiation(node_id="c")
    with pytest.raises(LocalProtocolError):
        client.receive(pb.Message())
    reply = _reply_for(client)
    with pytest.raises(LocalProtocolError):
        client.request()
    client.receive(reply)
    with pytest.raises(LocalProtocolError):
        client.receive(reply)


def test_timeout_constant() -> None:
    assert NEGOTIATION_TIMEOUT_S == 5.0


# --- semver -------------------------------------------------------------------------------

GOOD = ["0.0.0", "3.4.6", "1.2.3-alpha.1", "1.2.3-0.a-b", "1.2.3+build.007", "1.0.0-rc.1+x"]
GOOD += [f"{2**64 - 1}.0.0"]
BAD = ["", "1", "1.2", "1.2.3.4", "v1.2.3", " 1.2.3", "1.2.3 ", "1.2.3\n", "01.2.3", "1.02.3"]
BAD += ["1.2.3-", "1.2.3-01", "1.2.3-a..b", "1.2.3+", "1.2.3+a+b", "1.2.3-é", f"{2**64}.0.0"]
BAD += ["\u0661.\u0662.\u0663"]  # non-ASCII digits


@pytest.mark.parametrize("text", GOOD)
def test_semver_accepts(text: str) -> None:
    assert is_semver(text)


@pytest.mark.parametrize("text", BAD)
def test_semver_rejects(text: str) -> None:
    assert not is_semver(text)


_CORE = st.integers(0, 20).map(str) | st.sampled_from(["01", "00", "x", "", "1a", str(2**64)])
_IDENT = st.sampled_from(["alpha", "0", "01", "1", "a-b", "", "x.y", "é", "-"])


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(_CORE, _CORE, _CORE),
    st.none() | st.lists(_IDENT, max_size=3),
    st.none() | st.lists(_IDENT, max_size=3),
)
def test_semver_against_the_grammar(
    core: tuple[str, str, str], pre: list[str] | None, build: list[str] | None
) -> None:
    # An independent, token-by-token reading of SemVer 2.0.0 (items 2, 9 and 10).
    def ident_ok(i: str) -> bool:
        return bool(i) and all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in i)

    text = ".".join(core)
    ok = all(c.isascii() and c.isdigit() and (c == "0" or c[0] != "0") for c in core)
    ok = ok and all(int(c) < 2**64 for c in core if c.isdigit())
    if pre is not None:
        text += "-" + ".".join(pre)
        ids = ".".join(pre).split(".")
        ok = ok and all(
            ident_ok(i) and not (i.isdigit() and len(i) > 1 and i[0] == "0") for i in ids
        )
    if build is not None:
        text += "+" + ".".join(build)
        ok = ok and all(ident_ok(i) for i in ".".join(build).split("."))
    assert is_semver(text) == ok, text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_semver_never_crashes(text: str) -> None:
    # Arbitrary text: a clean yes or no, and a yes always has three numeric core parts.
    if is_semver(text):
        core = text.split("+", 1)[0].split("-", 1)[0].split(".")
        assert len(core) == 3
        assert all(c.isdigit() for c in core)


# --- real reference traffic ---------------------------------------------------------------


def _first_messages() -> list[tuple[pb.Message, pb.Message]]:
    rows = [json.loads(line) for line in (CAPTURES / "wire_nomls.jsonl").read_text().splitlines()]
    pairs = []
    for stream in sorted({r["stream"] for r in rows}):
        mine = [r for r in rows if r["stream"] == stream]
        c2s = next(r for r in mine if r["dir"] == "c2s")
        s2c = next(r for r in mine if r["dir"] == "s2c")
        pairs.append(
            (
                pb.Message.FromString(base64.b64decode(c2s["b64"])),
                pb.Message.FromString(base64.b64decode(s2c["b64"])),
            )
        )
    return pairs


def test_captured_reference_negotiations_are_accepted() -> None:
    pairs = _first_messages()
    assert len(pairs) == 2
    for request, reply in pairs:
        link_id = _payload(request).link_id
        # Our server accepts the reference client's request, strictly.
        our_reply, sinfo = ServerNegotiation("our-node").receive(request)
        assert sinfo.link_id == link_id
        assert sinfo.peer_version == "3.4.6"
        assert sinfo.connection_type is LinkConnectionType.EDGE
        assert sinfo.peer_node_id.startswith("node-")
        assert sinfo.mac is not None
        assert _payload(our_reply).link_id == link_id
        # Our client accepts the reference node's reply to that request. (The captured
        # ephemeral keys are gone, so the derived key is ours alone; only parsing is checked.)
        client = ClientNegotiation(link_id, node_id="our-app")
        client.request()
        cinfo = client.receive(reply)
        assert cinfo.link_id == link_id
        assert cinfo.peer_version == "3.4.6"
        assert cinfo.connection_type is LinkConnectionType.EDGE
        assert cinfo.peer_node_id.startswith("node-")
        assert cinfo.mac is not None
        assert isinstance(cinfo.mac, HeaderMac)


# --- fuzz: whatever arrives first, negotiation answers or refuses cleanly --------------------

_payloads = st.builds(
    pb.LinkNegotiationPayload,
    link_id=st.sampled_from(["L", ""]) | st.text(max_size=40),
    slim_version=st.sampled_from(["3.4.6", "0.1.0-rc.1"]) | st.text(max_size=12),
    is_reply=st.booleans(),
    link_ecdh_public_key=st.sampled_from([b"", bytes(32), bytes(31)]) | st.binary(max_size=40),
    connection_type=st.integers(0, 5),
    node_id=st.sampled_from(["s", "c"]) | st.text(max_size=8),
    deployment_name=st.sampled_from(["", "d"]) | st.text(max_size=8),
)


def _wrap(payload: pb.LinkNegotiationPayload, kem: bytes | None) -> pb.Message:
    m = pb.Message()
    m.link.link_negotiation.CopyFrom(payload)
    if kem is not None:
        m.link.link_negotiation.link_kem_payload = kem
    return m


_kem = st.none() | st.sampled_from([b"", bytes(1184), bytes(1088)]) | st.binary(max_size=64)


@settings(max_examples=150, deadline=None)
@given(_payloads, _kem, st.booleans(), st.booleans())
def test_fuzz_server(
    payload: pb.LinkNegotiationPayload, kem: bytes | None, strict: bool, pqc: bool
) -> None:
    server = ServerNegotiation("s", require_mac=strict, deployment_name="d", enforce_pqc=pqc)
    try:
        reply, info = server.receive(_wrap(payload, kem))
    except LinkNegotiationError:
        assert server.state is ServerState.FAILED
        return
    assert server.state is ServerState.DONE
    assert _payload(reply).is_reply
    assert _payload(reply).link_id == payload.link_id == info.link_id != ""
    assert is_semver(info.peer_version)
    assert (info.mac is not None) == (len(_payload(reply).link_ecdh_public_key) == 32)
    if strict:
        assert info.mac is not None


@settings(max_examples=150, deadline=None)
@given(_payloads, _kem, st.booleans(), st.booleans())
def test_fuzz_client(
    payload: pb.LinkNegotiationPayload, kem: bytes | None, strict: bool, pqc: bool
) -> None:
    client = ClientNegotiation("L", node_id="c", require_mac=strict, enforce_pqc=pqc)
    client.request()
    try:
        info = client.receive(_wrap(payload, kem))
    except LinkNegotiationError:
        assert client.state is ClientState.FAILED
        return
    assert client.state is ClientState.DONE
    assert payload.is_reply
    assert info.link_id == payload.link_id == "L"
    if strict:
        assert info.mac is not None
