"""JWT identities across implementations, with real reference apps (``slim-bindings``).

* A reference app with a JWT identity provider opens a session to us: its token (ES256 / EdDSA,
  PEM key) verifies with our :class:`JwtVerifier`, carries ``pubkey``, and the e2e signature of
  its DiscoveryRequest verifies against that key (``verify_header``).
* Our app with a :class:`JwtProvider` opens a session to a reference app whose verifier is the
  same key: the reference checks our token and header signature on the DiscoveryRequest
  (slim-wire.md §3.7: always checked pre-session) and echoes our message.

The reference app runs as a subprocess (its runtime is per process), driven by a small script
written to a temporary file; everything has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from slimwire.auth import Identity, verify_header
from slimwire.auth._jwks import JwksFile, JwsAlgorithm, jwks_document
from slimwire.auth._jwt import JwtProvider, JwtSigner, JwtVerifier, decode_unverified
from slimwire.client import connect
from slimwire.dataplane import NodeProcess
from slimwire.errors import SlimwireTimeout
from slimwire.names import Name

from ..dataplane._client import RawClient

pytest.importorskip("slim_bindings")

REF_SCRIPT = r"""
import asyncio, datetime, sys
import slim_bindings as slim

async def main() -> None:
    mode, endpoint, private_pem, public_pem, alg, name, target = sys.argv[1:8]
    algorithm = {"ES256": slim.JwtAlgorithm.ES256, "EdDSA": slim.JwtAlgorithm.ED_DSA}[alg]
    tracing = slim.new_tracing_config()
    tracing.log_level = "error"
    slim.initialize_with_configs(runtime_config=slim.new_runtime_config(),
                                 tracing_config=tracing,
                                 service_config=[slim.new_service_config()])
    service = slim.get_global_service()
    def key(path):
        fmt = slim.JwtKeyFormat.JWKS if path.endswith(".json") else slim.JwtKeyFormat.PEM
        return slim.JwtKeyConfig(algorithm=algorithm, format=fmt,
                                 key=slim.JwtKeyData.FILE(path=path))
    ttl = datetime.timedelta(seconds=600)
    provider = slim.IdentityProviderConfig.JWT(config=slim.ClientJwtAuth(
        key=slim.JwtKeyType.ENCODING(key=key(private_pem)), audience=["slim"],
        issuer="iss", subject=name, duration=ttl))
    verifier = slim.IdentityVerifierConfig.JWT(config=slim.JwtAuth(
        key=slim.JwtKeyType.DECODING(key=key(public_pem)), audience=["slim"],
        issuer="iss", subject=None, duration=ttl))
    app = service.create_app(slim.Name.from_string(name), provider, verifier)
    conn = await service.connect_async(slim.new_insecure_client_config(endpoint))
    await app.subscribe_async(app.name(), conn)
    print("READY", flush=True)
    if mode == "initiate":
        cfg = slim.SessionConfig(session_type=slim.SessionType.POINT_TO_POINT, max_retries=None,
                                 interval=None, metadata={}, mls_settings=None)
        try:
            created = await app.create_session_async(cfg, slim.Name.from_string(target))
            await created.completion.wait_for_async(datetime.timedelta(seconds=5))
        except Exception as exc:
            print("SESSION-ERROR", type(exc).__name__, flush=True)
        return
    session = await app.listen_for_session_async(datetime.timedelta(seconds=20))
    msg = await session.get_message_async(datetime.timedelta(seconds=20))
    payload = bytes(msg.payload).decode()
    handle = await session.publish_to_async(msg.context, ("echo:" + payload).encode(), "msg", {})
    await handle.wait_for_async(datetime.timedelta(seconds=10))
    print("ECHOED", payload, flush=True)
    await asyncio.sleep(1.0)

asyncio.run(main())
"""


def _keys(tmp_path: Path, alg: JwsAlgorithm) -> tuple[JwtSigner, str, str]:
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if alg is JwsAlgorithm.ES256
        else ed25519.Ed25519PrivateKey.generate()
    )
    private_pem, public_pem = tmp_path / "key.pem", tmp_path / "pub.pem"
    private_pem.write_bytes(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    )
    public_pem.write_bytes(
        key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    )
    return JwtSigner(key, "unused"), str(private_pem), str(public_pem)


def _start_ref(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "ref_jwt_app.py"
    script.write_text(REF_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=20)
    return out


@pytest.mark.parametrize("alg", [JwsAlgorithm.ES256, JwsAlgorithm.EDDSA], ids=lambda a: a.value)
async def test_reference_jwt_verifies_here(tmp_path: Path, alg: JwsAlgorithm) -> None:
    signer, private_pem, public_pem = _keys(tmp_path, alg)
    node = await asyncio.to_thread(NodeProcess().start)
    proc = None
    try:
        catcher = await RawClient.connect(node.url, Name("org", "ns", "catcher", 5))
        await catcher.subscribe()
        proc = _start_ref(
            tmp_path,
            "initiate",
            node.url,
            private_pem,
            public_pem,
            alg.value,
            "org/ns/refjwt",
            "org/ns/catcher",
        )
        (msg,) = await catcher.received(1, timeout=30)
    finally:
        if proc is not None:
            await asyncio.to_thread(_stop, proc)
        await asyncio.to_thread(node.stop)
    token = msg.publish.header.identity
    header, raw_claims, _, _ = decode_unverified(token)
    assert header["alg"] == alg.value
    assert header["kid"] == "org/ns/refjwt"  # the reference stamps kid = sub
    assert "pubkey" in raw_claims  # flattened custom claims: top level
    verifier = JwtVerifier([signer.public.key], audience="slim", issuer="iss", require_pubkey=True)
    claims = verifier.verify(token)
    assert claims.subject == "org/ns/refjwt"
    assert claims.public_key is not None
    assert len(claims.public_key) == 65  # the reference's default MLS key: P-256
    # The DiscoveryRequest is a command message: its e2e header signature is made with the key
    # the token binds.
    assert msg.publish.header.HasField("e2e_header_sig")
    assert verify_header(msg.publish, verifier).subject == "org/ns/refjwt"


@pytest.mark.parametrize(
    ("alg", "jwks"),
    [(JwsAlgorithm.ES256, False), (JwsAlgorithm.EDDSA, False), (JwsAlgorithm.ES256, True)],
    ids=["ES256-pem", "EdDSA-pem", "ES256-our-jwks"],
)
async def test_our_jwt_accepted_by_reference(tmp_path: Path, alg: JwsAlgorithm, jwks: bool) -> None:
    signer, private_pem, public_pem = _keys(tmp_path, alg)
    if jwks:
        # The reference verifier reads our JWKS document (the authority's format) instead.
        other = JwtSigner.generate(JwsAlgorithm.ES256, "other-key")
        path = tmp_path / "jwks.json"
        path.write_text(
            json.dumps(jwks_document([other.public, JwtSigner(signer.private_key, "k1").public]))
        )
        public_pem = str(path)
    node = await asyncio.to_thread(NodeProcess().start)
    proc = None
    try:
        proc = _start_ref(
            tmp_path,
            "echo",
            node.url,
            private_pem,
            public_pem,
            alg.value,
            "org/ns/refecho",
            "-",
        )
        assert proc.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert ready.strip() == "READY"
        ident = Identity.generate("org/ns/ours")
        kid = "k1" if jwks else ident.token_id  # kid = sub, as the reference does, or the JWKS kid
        jwt_signer = JwtSigner(signer.private_key, kid)
        provider = JwtProvider(ident, jwt_signer, audience="slim", issuer="iss")
        verifier = JwtVerifier(
            [signer.public.key], audience="slim", issuer="iss", require_pubkey=True
        )
        app = await connect(node.url, name="org/ns/ours", provider=provider, verifier=verifier)
        try:
            async with app.open_session("org/ns/refecho", timeout=20) as session:
                await session.publish(b"hello-jwt")
                reply = await session.receive(timeout=20)
                assert reply.text == "echo:hello-jwt"
        finally:
            await app.close()
        out = await asyncio.to_thread(_stop, proc)
        proc = None
        assert "ECHOED hello-jwt" in out
    finally:
        if proc is not None:
            await asyncio.to_thread(_stop, proc)
        await asyncio.to_thread(node.stop)


async def test_reference_refuses_our_jwt_signed_by_another_key(tmp_path: Path) -> None:
    # The negative control of the test above: same setup, but our token is signed by a key the
    # reference does not trust, so it must not answer the discovery and no session forms.
    _, private_pem, public_pem = _keys(tmp_path, JwsAlgorithm.ES256)
    node = await asyncio.to_thread(NodeProcess().start)
    proc = None
    try:
        proc = _start_ref(
            tmp_path, "echo", node.url, private_pem, public_pem, "ES256", "org/ns/refecho", "-"
        )
        assert proc.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert ready.strip() == "READY"
        ident = Identity.generate("org/ns/ours")
        rogue = JwtSigner.generate(JwsAlgorithm.ES256, ident.token_id)
        provider = JwtProvider(ident, rogue, audience="slim", issuer="iss")
        verifier = JwtVerifier([rogue.public], audience="slim", issuer="iss")
        app = await connect(node.url, name="org/ns/ours", provider=provider, verifier=verifier)
        try:
            # The reference drops a discovery whose token it cannot verify: no reply comes.
            with pytest.raises(SlimwireTimeout):
                await app.open_session("org/ns/refecho", timeout=4)
        finally:
            await app.close()
        out = await asyncio.to_thread(_stop, proc)
        proc = None
        assert "ECHOED" not in out
    finally:
        if proc is not None:
            await asyncio.to_thread(_stop, proc)
        await asyncio.to_thread(node.stop)


async def test_authority_tokens_accepted_by_reference(tmp_path: Path) -> None:
    # The whole chain: our authority issues the app's token (sub = did:key, kid = authority key);
    # the reference app trusts the authority's JWKS (as a file) and echoes our message.
    from slimwire.authority import (
        Authority,
        AuthorityServer,
        AuthorityStore,
        AuthorityTokenProvider,
    )

    store = AuthorityStore(":memory:")
    store.add_client("ours", secret="a-client-secret-value", names=["org/ns/*"])
    authority = Authority(store, issuer="iss", audience="slim")
    jwks_path = tmp_path / "jwks.json"
    jwks_path.write_text(json.dumps(authority.jwks()))
    _, private_pem, _ = _keys(tmp_path, JwsAlgorithm.ES256)  # the reference's own signing key
    node = await asyncio.to_thread(NodeProcess().start)
    proc = None
    try:
        proc = _start_ref(
            tmp_path, "echo", node.url, private_pem, str(jwks_path), "ES256", "org/ns/refecho", "-"
        )
        assert proc.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert ready.strip() == "READY"
        ident = Identity.generate("org/ns/ours")
        async with AuthorityServer(authority) as srv:
            provider = AuthorityTokenProvider(
                ident,
                srv.url,
                name="org/ns/ours",
                client_id="ours",
                client_secret="a-client-secret-value",
            )
            async with provider:
                verifier = JwtVerifier(
                    JwksFile(jwks_path), audience="slim", issuer="iss", require_pubkey=True
                )
                app = await connect(
                    node.url, name="org/ns/ours", provider=provider, verifier=verifier
                )
                try:
                    async with app.open_session("org/ns/refecho", timeout=20) as session:
                        await session.publish(b"via-authority")
                        reply = await session.receive(timeout=20)
                        assert reply.text == "echo:via-authority"
                finally:
                    await app.close()
        out = await asyncio.to_thread(_stop, proc)
        proc = None
        assert "ECHOED via-authority" in out
    finally:
        if proc is not None:
            await asyncio.to_thread(_stop, proc)
        await asyncio.to_thread(node.stop)
