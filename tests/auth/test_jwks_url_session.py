"""End to end: apps whose verifiers use a JWKS URL, through a node, across a key rotation.

The session layer verifies tokens synchronously on the event loop. When a peer's token names a
kid the verifier has not fetched yet, the message is dropped at once ("JWKS refresh
scheduled"), the keys arrive in the background, and the session's retransmission goes through.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

import pytest

from slimwire.auth import (
    Identity,
    JwksUrl,
    JwsAlgorithm,
    JwtProvider,
    JwtSigner,
    JwtVerifier,
    KeyAlgorithm,
)
from slimwire.client import connect
from slimwire.dataplane import run_node
from tests.auth._jwks_server import JwksServer, running

ISSUER = "https://issuer.test"


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with running() as srv:
        yield srv


def _provider(name: str, signer: JwtSigner) -> JwtProvider:
    ident = Identity.generate(name, KeyAlgorithm.P256)
    return JwtProvider(ident, signer, audience="slim", issuer=ISSUER)


async def test_a_rotated_kid_is_fetched_behind_the_loop_and_the_invite_goes_through(
    jwks: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    old = JwtSigner.generate(JwsAlgorithm.ES256, "old")
    new = JwtSigner.generate(JwsAlgorithm.ES256, "new")
    jwks.publish(old)
    mod_keys = JwksUrl(jwks.url, min_interval=0.2)
    mod_verifier = JwtVerifier(mod_keys, audience="slim", issuer=ISSUER, require_pubkey=True)
    alice_verifier = JwtVerifier(
        JwksUrl(jwks.url), audience="slim", issuer=ISSUER, require_pubkey=True
    )
    async with run_node() as node, contextlib.AsyncExitStack() as stack:
        mod = await connect(
            node.url,
            name="org/ns/mod",
            provider=_provider("org/ns/mod", old),
            verifier=mod_verifier,
        )
        stack.push_async_callback(mod.close)
        assert jwks.hits == 1  # connect() fetched the moderator's keys
        # The issuer rotates after the moderator started; alice, started later, is issued a
        # token under the new kid, which the moderator's verifier has never seen.
        jwks.publish(old, new)
        alice = await connect(
            node.url,
            name="org/ns/alice",
            provider=_provider("org/ns/alice", new),
            verifier=alice_verifier,
        )
        stack.push_async_callback(alice.close)
        assert jwks.hits == 2
        with caplog.at_level(logging.WARNING):
            # MLS: every control message carries a token that the receiver verifies.
            group = mod.create_group("org/ns/room", reliable=True, mls=True)
            assert await group.invite("org/ns/alice", timeout=15) == alice.name
            theirs = await alice.accept(timeout=10)
            await group.publish(b"after rotation", wait=True)
            assert (await theirs.receive(timeout=10)).payload == b"after rotation"
            await theirs.publish(b"and back", wait=True)
            assert (await group.receive(timeout=10)).payload == b"and back"
        await group.close()
    # The moderator's verifier met the new kid on its loop, refused alice's reply at once and
    # fetched the JWKS in the background; a retransmission then went through.
    assert "unknown key id 'new' (no ES256 key); JWKS refresh scheduled" in caplog.text
    assert [k.kid for k in mod_keys.keys("new")] == ["new"]
    assert jwks.hits == 3


async def test_connect_fetches_the_jwks_before_the_first_token(jwks: JwksServer) -> None:
    signer = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    jwks.publish(signer)
    keys = JwksUrl(jwks.url)
    verifier = JwtVerifier(keys, audience="slim", issuer=ISSUER)
    async with run_node() as node:
        app = await connect(
            node.url, name="org/ns/a", provider=_provider("org/ns/a", signer), verifier=verifier
        )
        try:
            assert jwks.hits == 1  # no peer yet: connect() loaded the keys itself
            assert [k.kid for k in keys.keys("k1")] == ["k1"]
        finally:
            await app.close()


async def test_node_start_fetches_its_policy_verifiers_jwks(
    jwks: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a verifier list (shared secret + JWT): the list passes the prefetch on."""
    from slimwire.config import parse_config

    jwks.publish(JwtSigner.generate(JwsAlgorithm.ES256, "k1"))
    verifiers = [
        {"shared_secret": "abcdefghijklmnopqrstuvwxyz012345"},
        {"jwt": {"jwks_url": jwks.url, "audience": "slim"}},
    ]
    rules = [{"effect": "allow", "subjects": ["*"], "actions": "*", "names": ["org"]}]
    section = {"rules": rules, "verifier": verifiers}
    server = {"servers": [{"endpoint": "127.0.0.1:0", "tls": {"insecure": True}}]}
    service = {"authorization": section, "dataplane": server}
    config = parse_config(json.dumps({"services": {"slim/0": service}}))
    async with run_node(config) as node:
        assert node.addresses
        assert jwks.hits == 1
    # an issuer that cannot be reached does not stop the node: it logs and starts
    unreachable = [{"jwt": {"jwks_url": "http://127.0.0.1:9/jwks.json", "audience": "slim"}}]
    section["verifier"] = unreachable
    config = parse_config(json.dumps({"services": {"slim/0": service}}))
    with caplog.at_level(logging.WARNING):
        async with run_node(config) as node:
            assert node.addresses
    assert "starting anyway" in caplog.text
