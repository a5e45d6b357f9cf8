"""Credentials from the authority carry a slimwire MLS group session; a member whose credential
the authority refuses cannot join (issue acceptance: identity and authorization, point 3)."""

from __future__ import annotations

import contextlib
import logging

import pytest

from slimwire.auth import (
    Identity,
    JwsAlgorithm,
    JwtProvider,
    JwtSigner,
    JwtVerifier,
    KeyAlgorithm,
    StaticKeys,
    parse_jwks,
)
from slimwire.authority import (
    Authority,
    AuthorityServer,
    AuthorityStore,
    AuthorityTokenProvider,
    http_request,
)
from slimwire.client import connect
from slimwire.dataplane import run_node
from slimwire.errors import AuthError, SlimwireTimeout
from slimwire.names import Name

ISSUER = "https://authority.test"
SECRETS = {"mod": "moderator client secret", "alice": "alice client secret", "mallory": "m"}


def _store() -> AuthorityStore:
    store = AuthorityStore(":memory:")
    store.add_client("mod", secret=SECRETS["mod"], names=["org/ns/mod"])
    store.add_client("alice", secret=SECRETS["alice"], names=["org/ns/alice"])
    store.add_client("mallory", secret=SECRETS["mallory"], names=["org/other/*"])
    return store


def _provider(url: str, client: str, name: str) -> AuthorityTokenProvider:
    ident = Identity.generate(name, KeyAlgorithm.P256)
    return AuthorityTokenProvider(
        ident, url, name=name, client_id=client, client_secret=SECRETS[client]
    )


async def test_authority_credentials_in_an_mls_group(caplog: pytest.LogCaptureFixture) -> None:
    authority = Authority(_store(), issuer=ISSUER, lifetime=600)
    async with AuthorityServer(authority) as srv, run_node() as node:
        # The verifier trusts the authority's published keys (fetched from its JWKS endpoint).
        status, document = await http_request("GET", srv.url + "/.well-known/jwks.json")
        assert status == 200
        keys = StaticKeys(parse_jwks(document))
        verifier = JwtVerifier(keys, audience="slim", issuer=ISSUER, require_pubkey=True)
        async with contextlib.AsyncExitStack() as stack:
            mod_tokens = await stack.enter_async_context(_provider(srv.url, "mod", "org/ns/mod"))
            alice_tokens = await stack.enter_async_context(
                _provider(srv.url, "alice", "org/ns/alice")
            )

            # The authority refuses mallory a credential for a name it is not allowed ...
            refused = _provider(srv.url, "mallory", "org/ns/mallory")
            with pytest.raises(AuthError, match="may not"):
                await refused.refresh()
            # ... so mallory can only sign its own, which nobody trusts.
            signer = JwtSigner.generate(JwsAlgorithm.ES256, kid="mallory")
            forged = JwtProvider(refused.identity, signer, audience="slim", issuer=ISSUER)

            mod = await connect(node.url, name="org/ns/mod", provider=mod_tokens, verifier=verifier)
            alice = await connect(
                node.url, name="org/ns/alice", provider=alice_tokens, verifier=verifier
            )
            mallory = await connect(
                node.url, name="org/ns/mallory", provider=forged, verifier=verifier
            )
            for app in (mod, alice, mallory):
                stack.push_async_callback(app.close)

            group = mod.create_group("org/ns/room", reliable=True, mls=True)
            assert await group.invite("org/ns/alice", timeout=15) == alice.name
            theirs = await alice.accept(timeout=10)
            await group.publish(b"members only", wait=True)
            assert (await theirs.receive(timeout=10)).payload == b"members only"

            # The moderator drops every reply signed with mallory's untrusted key, so the invite
            # never completes.
            with caplog.at_level(logging.WARNING), pytest.raises(SlimwireTimeout):
                await group.invite("org/ns/mallory", timeout=5)
            assert "dropping an unverifiable control message: JWT" in caplog.text
            assert set(group.participants) == {mod.name, alice.name}
            assert Name.parse("org/ns/mallory") not in {p.without_id() for p in group.participants}
            with pytest.raises(SlimwireTimeout):
                await mallory.accept(timeout=1)

            await theirs.publish(b"still private", wait=True)
            assert (await group.receive(timeout=10)).payload == b"still private"
            await group.close()
