"""Acceptance: a ``slimwire node`` process with an authorization policy, over real sockets.

Allowed apps (shared-secret and JWT identities; slimwire apps and reference apps) exchange
messages; a denied subscribe fails with the reason in the ack (our client raises
SubscriptionError with it); a denied publish reaches nobody (a subscriber proves it) and the
sender gets the denial notice; SIGHUP reloads the policy file and changes decisions without a
restart; forged and expired tokens are denied; a self-certifying source whose id is not derived
from its token's key is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import slimwire
from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import (
    Identity,
    JwsAlgorithm,
    JwtProvider,
    JwtSigner,
    JwtVerifier,
    SharedSecretProvider,
    SharedSecretVerifier,
    StaticKeys,
    jwks_document,
    name_id_from_public_key,
)
from slimwire.errors import SubscriptionError
from slimwire.names import Name
from slimwire.policy import parse_denial_notice
from tests.dataplane._client import RawClient
from tests.interop._harness import AppSpec, NodeInfo, run_apps, slimwire_node, unique
from tests.interop._ref_app import DEFAULT_SECRET
from tests.interop._scenarios import check_group, check_p2p, group, p2p

SECRET = DEFAULT_SECRET


def _policy(bob_may_publish_to_box: bool) -> dict[str, object]:
    rules: list[dict[str, object]] = [
        {"id": "blocked", "effect": "deny", "subjects": ["*"], "actions": ["publish"],
         "names": ["org/ns/blocked"]},
        {"id": "ns", "effect": "allow", "subjects": ["org/ns/*"], "actions": "*",
         "names": ["org/ns"]},
        {"id": "jwt-apps", "effect": "allow", "claims": {"groups": ["ops"]}, "actions": "*",
         "names": ["org/ns"]},
        {"id": "box-reader", "effect": "allow", "subjects": ["org/box/reader*"],
         "actions": ["subscribe"], "names": ["org/box"]},
        {"id": "groups", "effect": "allow", "subjects": ["org/g-*"], "actions": "*",
         "names": ["org"]},
        {"id": "agents", "effect": "allow", "subjects": ["org/agents/*"], "actions": "*",
         "names": ["org/agents"]},
    ]  # fmt: skip
    if bob_may_publish_to_box:
        rules.append(
            {"id": "bob-writes-box", "effect": "allow", "subjects": ["org/box/bob*"],
             "actions": ["publish"], "names": ["org/box/reader"]}
        )  # fmt: skip
    return {"default": "deny", "rules": rules}


class PolicyNode:
    def __init__(self, info: NodeInfo, policy_path: Path, signer: JwtSigner) -> None:
        self.info = info
        self.url = info.endpoint
        self.policy_path = policy_path
        self.signer = signer

    def write_policy(self, policy: dict[str, object]) -> None:
        tmp = self.policy_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(policy))
        os.replace(tmp, self.policy_path)

    def sighup(self) -> None:
        os.kill(self.info.pid, signal.SIGHUP)  # our own node process, by PID


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyNode]:
    tmp = tmp_path_factory.mktemp("policy-node")
    signer = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps(jwks_document([signer.public])))
    policy_path = tmp / "policy.json"
    policy_path.write_text(json.dumps(_policy(False)))
    cfg = {
        "services": {
            "slim/0": {
                "authorization": {
                    "file": str(policy_path),
                    "verifier": [
                        {"shared_secret": SECRET},
                        {"jwt": {"jwks_file": str(jwks), "audience": "slim"}},
                    ],
                    "self_certifying": ["org/agents"],
                    "watch_interval": 0,  # reloads come from SIGHUP in these tests
                },
            }
        }
    }
    cfg_path = tmp / "node.yaml"
    cfg_path.write_text(json.dumps(cfg))
    with slimwire_node(tmp, extra_args=["--config", str(cfg_path)]) as info:
        yield PolicyNode(info, policy_path, signer)


def _token(base: str, *, secret: str = SECRET, clock: float | None = None) -> tuple[Identity, str]:
    ident = Identity.generate(base)
    kw = {} if clock is None else {"clock": lambda: clock}
    return ident, SharedSecretProvider(ident, secret, **kw).token()  # type: ignore[arg-type]


def _subscribe_msg(src: Name, dst: Name, sid: int, token: str) -> pb.Message:
    msg = pb.Message()
    s = msg.subscribe
    s.subscription_id = sid
    src.fill_proto(s.header.source)
    dst.fill_proto(s.header.destination)
    s.header.fanout = 1
    s.header.ttl = 8
    s.header.identity = token
    return msg


def _publish_msg(src: Name, dst: Name, token: str, payload: bytes, sid: int) -> pb.Message:
    msg = pb.Message()
    p = msg.publish
    src.fill_proto(p.header.source)
    dst.fill_proto(p.header.destination)
    p.header.fanout = 1
    p.header.ttl = 8
    p.header.identity = token
    p.session.session_id = sid
    p.session.message_id = 1
    p.msg.app_payload.blob = payload
    return msg


async def _ack(client: RawClient, sid: int) -> pb.SubscriptionAck:
    def has(c: RawClient) -> bool:
        return any(
            m.subscription_ack.subscription_id == sid
            for m in c.inbox
            if m.WhichOneof("message_type") == "subscription_ack"
        )

    await client.wait(has, timeout=10)
    acks = [m.subscription_ack for m in client.take("subscription_ack")]
    return next(a for a in acks if a.subscription_id == sid)


async def _raw(url: str, name: Name, token: str, sid: int) -> tuple[RawClient, pb.SubscriptionAck]:
    client = await RawClient.connect(url, name)
    client.send(_subscribe_msg(name, name, sid, token))
    return client, await _ack(client, sid)


async def test_reference_apps_allowed(node: PolicyNode, tmp_path: Path) -> None:
    initiator, responder = await p2p(
        tmp_path,
        initiator_endpoint=node.url,
        responder_endpoint=node.url,
        mls=True,
        reliable=False,
        direction="forward",
        count=3,
    )
    check_p2p(initiator, responder, mls=True, direction="forward", count=3)


async def test_reference_app_ignores_denial_notices(node: PolicyNode, tmp_path: Path) -> None:
    """A reference app whose publishes are refused gets denial notices (SubscriptionAcks with
    id 0) and carries on: it neither crashes nor loses its link; its peer receives nothing."""
    alice = f"org/ns/{unique('alice')}"
    responder = AppSpec("p2p-responder", "org/ns/blocked", node.url, ("--count", "1"), 8.0)
    initiator = AppSpec("p2p-initiator", alice, node.url, ("--count", "1", "--peer",
                        "org/ns/blocked"), 6.0)  # fmt: skip
    results = await run_apps(tmp_path, [responder], [initiator], cap=30)
    init, resp = results[alice], results["org/ns/blocked"]
    assert not init.ok  # its session never opened: every discovery was refused
    # a clean SLIM timeout of the session setup, reported by the app itself, not a link error
    assert str(init.report.get("error", "")).startswith("Timeout"), init.explain()
    app_log = init.log.read_text()
    assert "panic" not in app_log.lower()
    assert app_log.count("client connected") == 1, app_log[-3000:]
    assert resp.report.get("received", []) == [], resp.explain()
    log = node.info.log.read_text()
    refused = [ln for ln in log.splitlines() if "publish denied by rule 'blocked'" in ln]
    assert any(alice in ln for ln in refused), log[-3000:]


async def test_reference_group_allowed(node: PolicyNode, tmp_path: Path) -> None:
    """Reference apps subscribe to the group channel without a token: the node judges those
    subscribes as the identity the link proved with its first subscribe."""
    moderator, participants = await group(
        tmp_path, moderator_endpoint=node.url, participant_endpoints=[node.url, node.url]
    )
    check_group(moderator, participants)


async def test_slimwire_apps_shared_secret_and_jwt_allowed(node: PolicyNode) -> None:
    ident = Identity.generate(f"org/ns/{unique('jwt')}")
    provider = JwtProvider(ident, node.signer, audience="slim", claims={"groups": ["ops"]})
    verifier = JwtVerifier(StaticKeys([node.signer.public]), audience="slim")
    bob_name = f"org/ns/{unique('bob')}"
    both = _Both(verifier, SharedSecretVerifier(SECRET))
    async with asyncio.timeout(30):
        bob = await slimwire.connect(
            node.url,
            name=bob_name,
            provider=SharedSecretProvider(Identity.generate(bob_name), SECRET),
            verifier=both,
        )
        # the JWT app talks to a shared-secret app: each verifies the other's token
        alice = await slimwire.connect(
            node.url,
            name=str(ident.token_id.rsplit("_", 1)[0]),
            provider=provider,
            verifier=both,
        )
        try:
            async with alice.open_session(bob.name.without_id(), reliable=True) as s:
                await s.publish(b"ping")
                incoming = await bob.accept(timeout=10)
                got = await incoming.receive(timeout=10)
                assert got.payload == b"ping"
        finally:
            await alice.close()
            await bob.close()


class _Both:
    def __init__(self, *verifiers: object) -> None:
        self.verifiers = verifiers

    def verify(self, token: str):  # type: ignore[no-untyped-def]
        first = None
        for v in self.verifiers:
            try:
                return v.verify(token)  # type: ignore[attr-defined]
            except Exception as exc:
                first = first or exc
        raise first  # type: ignore[misc]


async def test_denied_subscribe_raises_subscription_error_with_reason(node: PolicyNode) -> None:
    with pytest.raises(SubscriptionError, match="subscribe denied: no rule allows it"):
        async with asyncio.timeout(20):
            await slimwire.connect(node.url, name=f"org/guest/{unique('g')}", secret=SECRET)


async def test_denied_publish_reaches_nobody_then_reload_allows_it(node: PolicyNode) -> None:
    reader = Name("org", "box", "reader", 1)
    bob_name = Name("org", "box", "bob", 2)
    _, reader_token = _token("org/box/reader")
    _, bob_token = _token("org/box/bob")
    sub, ack = await _raw(node.url, reader, reader_token, 101)
    assert ack.success, ack.error
    pub = await RawClient.connect(node.url, bob_name)
    try:
        node.write_policy(_policy(False))
        pub.send(_publish_msg(bob_name, reader, bob_token, b"denied", 4242))
        notice_ack = await _ack(pub, 0)
        notice = parse_denial_notice(notice_ack)
        assert notice is not None
        assert notice.session_id == 4242
        assert "publish denied" in notice.error
        # the subscriber proves nothing arrived: a later allowed message is the first it gets
        node.write_policy(_policy(True))
        node.sighup()
        deadline = time.monotonic() + 15
        received: list[pb.Message] = []
        while not received and time.monotonic() < deadline:
            pub.send(_publish_msg(bob_name, reader, bob_token, b"allowed", 4243))
            with_timeout = asyncio.timeout(0.5)
            try:
                async with with_timeout:
                    received = await sub.received(1, timeout=0.5)
            except TimeoutError:
                pub.take("subscription_ack")  # denial notices from before the reload
        assert received, "the reloaded policy never let bob's publish through"
        assert all(m.publish.msg.app_payload.blob == b"allowed" for m in received)
    finally:
        node.write_policy(_policy(False))
        node.sighup()
        await pub.close()
        await sub.close()


async def test_forged_and_expired_tokens_denied(node: PolicyNode) -> None:
    name = Name("org", "ns", unique("f"), 7)
    _, forged = _token(f"org/ns/{name.service}", secret="not-the-node-secret-but-32-bytes-long")
    c1, ack = await _raw(node.url, name, forged, 201)
    await c1.close()
    assert not ack.success
    assert "invalid identity" in ack.error
    _, old = _token(f"org/ns/{name.service}", clock=time.time() - 7200)
    c2, ack = await _raw(node.url, name, old, 202)
    await c2.close()
    assert not ack.success
    assert "invalid identity" in ack.error


async def test_self_certifying_source_with_foreign_key_refused(node: PolicyNode) -> None:
    ident, token = _token("org/agents/a")
    own = Name("org", "agents", "a", name_id_from_public_key(ident.public_key))
    c1, ack = await _raw(node.url, own, token, 301)
    await c1.close()
    assert ack.success, ack.error
    other = Identity.generate("org/agents/a")
    forged = Name("org", "agents", "a", name_id_from_public_key(other.public_key))
    c2, ack = await _raw(node.url, forged, token, 302)
    await c2.close()
    assert not ack.success
    assert "not derived from the identity's key" in ack.error
