"""The ``authorization`` section of the node config: validation at start, the node's reload
(bad file → logged error, old policy kept), counters, verifier lists."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from slimwire.auth import (
    Identity,
    JwsAlgorithm,
    JwtProvider,
    JwtSigner,
    SharedSecretProvider,
    jwks_document,
)
from slimwire.config import parse_config
from slimwire.dataplane import Node
from slimwire.errors import ConfigError
from slimwire.policy import Action, make_verifier

SECRET = "abcdefghijklmnopqrstuvwxyz012345"
RULES = [{"effect": "allow", "subjects": ["org/ns/*"], "actions": "*", "names": ["org/ns"]}]


def _cfg(section: object) -> str:
    return json.dumps({"services": {"slim/0": {"authorization": section}}})


def test_inline_policy_builds_an_enforcing_node() -> None:
    cfg = parse_config(_cfg({"rules": RULES, "verifier": {"shared_secret": SECRET}}))
    assert cfg.authorization is not None
    node = Node(cfg)
    assert node.forwarder.authorizer is node.authorizer
    token = SharedSecretProvider(Identity.generate("org/ns/a"), SECRET).token()
    assert node.authorizer is not None
    assert node.authorizer.decide(token.encode(), Action.PUBLISH, (0, 0, 0, 0)).allowed is False
    assert node.policy_counters()["denied"]["publish"] == 1
    assert node.reload_policy() is None  # inline: nothing to re-read


def test_no_section_no_authorizer() -> None:
    node = Node(parse_config(json.dumps({"services": {"slim/0": {}}})))
    assert node.forwarder.authorizer is None
    assert node.policy_counters() == {}


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"rules": RULES}, "verifier: required"),
        ({"rules": [{"effect": "allow"}], "verifier": {"shared_secret": SECRET}}, r"rules\[0\]"),
        ({"rules": RULES, "verifier": {"shared_secret": "short"}}, "verifier"),
        ({"rules": RULES, "verifier": {"kerberos": 1}}, "unknown verifier"),
        ({"rules": RULES, "verifier": {"jwt": {"audience": "x"}}}, "exactly one of keys"),
        ({"rules": RULES, "verifier": {"shared_secret": SECRET}, "bogus": 1}, "unknown key"),
        ({"file": "/nonexistent/p.yaml", "verifier": {"shared_secret": SECRET}}, "p.yaml"),
        (
            {
                "rules": RULES,
                "verifier": {"shared_secret": SECRET},
                "self_certifying": ["a/b/c/d/e"],
            },
            r"self_certifying\[0\]",
        ),
    ],
)
def test_bad_section_is_a_config_error(section: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(_cfg(section))


def test_reload_keeps_old_policy_on_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"rules": RULES}))
    cfg = parse_config(_cfg({"file": str(path), "verifier": {"shared_secret": SECRET}}))
    node = Node(cfg)
    assert node.policy_store is not None
    before = node.policy_store.policy
    path.write_text("{not json")
    with caplog.at_level(logging.ERROR):
        result = node.reload_policy()
    assert result is not None
    assert not result.ok
    assert node.policy_store.policy is before
    assert any("policy reload failed" in r.message for r in caplog.records)
    path.write_text(json.dumps({"default": "allow", "rules": RULES}))
    result = node.reload_policy()
    assert result is not None
    assert result.ok
    assert result.changed


def test_verifier_list_accepts_shared_secret_and_jwt(tmp_path: Path) -> None:
    signer = JwtSigner.generate(JwsAlgorithm.EDDSA, "k")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(jwks_document([signer.public])))
    v = make_verifier(
        [{"shared_secret": SECRET}, {"jwt": {"jwks_file": str(jwks), "audience": "slim"}}]
    )
    ident = Identity.generate("org/ns/a")
    assert v.verify(SharedSecretProvider(ident, SECRET).token()).subject == ident.token_id
    jwt = JwtProvider(ident, signer, audience="slim").token()
    assert v.verify(jwt).subject == ident.token_id


async def test_running_node_watches_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"rules": RULES}))
    raw = {
        "services": {
            "slim/0": {
                "dataplane": {"servers": [{"endpoint": "127.0.0.1:0", "tls": {"insecure": True}}]},
                "authorization": {
                    "file": str(path),
                    "verifier": {"shared_secret": SECRET},
                    "watch_interval": "50ms",
                },
            }
        }
    }
    async with Node(parse_config(json.dumps(raw))) as node:
        store = node.policy_store
        assert store is not None
        path.write_text(json.dumps({"default": "allow", "rules": RULES}))
        async with asyncio.timeout(10):
            while store.generation == 0:
                await asyncio.sleep(0.02)
        assert store.policy.default.value == "allow"
