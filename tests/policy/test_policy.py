"""Policy engine: loading and validation, rule semantics, caching, reload, watcher, fuzz."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.auth import Identity, SharedSecretProvider, SharedSecretVerifier
from slimwire.auth._jwks import JwsAlgorithm
from slimwire.auth._jwt import JwtProvider, JwtSigner, JwtVerifier
from slimwire.auth._ni import name_id_from_public_key
from slimwire.errors import ConfigError
from slimwire.names import Name, app_id_from_token_id
from slimwire.policy import (
    Action,
    Decision,
    PolicyEngine,
    PolicyFileWatcher,
    PolicyStore,
    Principal,
    load_policy,
    load_policy_file,
    policy_from_config,
)

SECRET = "abcdefghijklmnopqrstuvwxyz012345"
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


POLICY = """
default: deny
rules:
  - id: everyone-reads-public
    effect: allow
    subjects: ["*"]
    actions: [subscribe]
    names: ["org/public"]
  - id: ops
    effect: allow
    claims: {groups: [ops, admins]}
    actions: "*"
    names: ["org"]
  - id: no-secrets
    effect: deny
    subjects: ["org/ns/guest*"]
    actions: [publish, subscribe]
    names: ["org/*/secrets"]
  - id: guests-publish
    effect: allow
    subjects: ["org/ns/guest*"]
    actions: [publish]
    names: ["org/ns/*"]
  - id: own-inbox
    effect: allow
    subjects: ["*"]
    actions: [subscribe]
    names: ["org/inbox/*/@self"]
"""


def _principal(subject: str, **claims: Any) -> Principal:
    from slimwire.policy._model import own_ids_for

    return Principal(subject, None, claims, own_ids_for(subject, None))


def _engine(policy: str = POLICY) -> PolicyEngine:
    return PolicyEngine(load_policy(policy), SharedSecretVerifier(SECRET, clock=Clock()))


@pytest.mark.parametrize(
    ("subject", "claims", "action", "name", "allowed", "reason"),
    [
        ("org/ns/guest_1", {}, Action.SUBSCRIBE, "org/public/feed", True, "everyone-reads-public"),
        ("org/ns/guest_1", {}, Action.PUBLISH, "org/ns/chat", True, "guests-publish"),
        ("org/ns/guest_1", {}, Action.PUBLISH, "org/ns/secrets", False, "no-secrets"),
        ("org/ns/guest_1", {}, Action.SUBSCRIBE, "org/ns/chat", False, "default deny"),
        ("org/ns/guest_1", {}, Action.INVITE, "org/ns/chat", False, "default deny"),
        # deny wins over an allow that also applies (ops is allowed everything in org)
        ("org/ns/guest_2", {"groups": ["ops"]}, Action.PUBLISH, "org/x/secrets", False, "no-"),
        ("org/ns/alice", {"groups": ["ops"]}, Action.PUBLISH, "org/x/secrets", True, "ops"),
        ("org/ns/alice", {"groups": "admins"}, Action.INVITE, "org/a/b", True, "ops"),
        ("org/ns/alice", {"groups": ["dev"]}, Action.INVITE, "org/a/b", False, "default"),
        ("org/ns/alice", {"groups": ["ops"]}, Action.PUBLISH, "other/a/b", False, "default"),
    ],
)
def test_rule_semantics(
    subject: str, claims: dict[str, Any], action: Action, name: str, allowed: bool, reason: str
) -> None:
    engine = _engine()
    d = engine.decide_principal(_principal(subject, **claims), action, name)
    assert d.allowed is allowed
    assert reason in d.reason


def test_self_id_pattern() -> None:
    engine = _engine()
    alice = _principal("org/ns/alice")
    mine = Name("org", "inbox", "x", app_id_from_token_id("org/ns/alice"))
    theirs = Name("org", "inbox", "x", app_id_from_token_id("org/ns/bob"))
    assert engine.decide_principal(alice, Action.SUBSCRIBE, mine).allowed
    assert not engine.decide_principal(alice, Action.SUBSCRIBE, theirs).allowed


def test_default_allow_and_empty_policy() -> None:
    assert load_policy("default: allow").evaluate(
        _principal("x"), Action.PUBLISH, Name.parse("a/b/c").key
    ) == Decision(True, "publish allowed by default")
    assert not load_policy("").evaluate(_principal("x"), Action.PUBLISH, Name.parse("a/b/c").key)[0]


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (
            {
                "rules": [
                    {"effect": "allow", "subjects": ["*"], "actions": ["publsh"], "names": ["a"]}
                ]
            },
            r"rules\[0\]\.actions\[0\]: unknown action 'publsh'",
        ),
        (
            {
                "rules": [
                    {"effect": "maybe", "subjects": ["*"], "actions": ["publish"], "names": ["a"]}
                ]
            },
            r"rules\[0\]\.effect",
        ),
        (
            {"rules": [{"effect": "allow", "actions": ["publish"], "names": ["a"]}]},
            r"rules\[0\]: no subjects, dids or claims",
        ),
        (
            {"rules": [{"effect": "allow", "subjects": ["*"], "actions": ["publish"]}]},
            r"rules\[0\]\.names: missing",
        ),
        (
            {
                "rules": [
                    {
                        "effect": "allow",
                        "subjects": ["*"],
                        "actions": ["publish"],
                        "names": ["a//b"],
                    }
                ]
            },
            r"rules\[0\]\.names\[0\]",
        ),
        (
            {
                "rules": [
                    {
                        "effect": "allow",
                        "subjects": ["*"],
                        "actions": ["publish"],
                        "names": ["a/b/c/not-a-uuid"],
                    }
                ]
            },
            r"names\[0\]: not a name id",
        ),
        (
            {
                "rules": [
                    {"effect": "allow", "subjects": ["*"], "action": ["publish"], "names": ["a"]}
                ]
            },
            r"unknown key\(s\) \['action'\]",
        ),
        ({"rulez": []}, r"unknown key"),
        ({"default": "perhaps"}, "default"),
        ({"rules": {"a": 1}}, "rules must be a list"),
        (
            {
                "rules": [
                    {
                        "effect": "allow",
                        "claims": {"groups": [{"x": 1}]},
                        "actions": ["publish"],
                        "names": ["a"],
                    }
                ]
            },
            r"claims\.groups",
        ),
    ],
)
def test_validation_errors_name_the_bad_value(doc: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_policy(doc, "policy.yaml")


def test_invalid_yaml_is_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_policy("rules: [", "p.yaml")


def test_files_json_and_yaml_and_node_config(tmp_path: Path) -> None:
    doc = {
        "default": "deny",
        "rules": [{"effect": "allow", "subjects": ["a"], "actions": ["publish"], "names": ["x"]}],
    }
    (tmp_path / "p.json").write_text(json.dumps(doc))
    (tmp_path / "p.yaml").write_text(POLICY)
    assert load_policy_file(tmp_path / "p.json").rules[0].subjects == ("a",)
    assert len(load_policy_file(tmp_path / "p.yaml").rules) == 5
    assert policy_from_config({"file": str(tmp_path / "p.json")}).rules[0].subjects == ("a",)
    assert policy_from_config(doc).default.value == "deny"
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot be combined"):
        policy_from_config({"file": "x", "rules": []})


# ---- engine with real verifiers ---------------------------------------------------------------


def test_engine_with_shared_secret_tokens() -> None:
    clock = Clock()
    ident = Identity("org/ns/guest_a", Identity.generate("x").signing_key)
    provider = SharedSecretProvider(ident, SECRET, clock=clock)
    engine = PolicyEngine(
        load_policy(POLICY), SharedSecretVerifier(SECRET, clock=clock), clock=clock
    )
    assert engine.decide(provider.token(), Action.PUBLISH, "org/ns/chat").allowed
    denied = engine.decide(provider.token(), Action.PUBLISH, "org/ns/secrets")
    assert denied == Decision(False, "publish denied by rule 'no-secrets'")
    forged = SharedSecretProvider(ident, SECRET[::-1], clock=clock).token()
    bad = engine.decide(forged, Action.PUBLISH, "org/ns/chat")
    assert not bad.allowed
    assert "invalid identity" in bad.reason
    assert not engine.decide("", Action.PUBLISH, "org/ns/chat").allowed


def test_engine_with_jwt_caches_by_token_and_decision() -> None:
    clock = Clock()
    signer = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    ident = Identity.generate("org/ns/alice")
    provider = JwtProvider(
        ident, signer, audience="slim", claims={"groups": ["ops"]}, lifetime=100, clock=clock
    )
    calls = []

    class CountingVerifier(JwtVerifier):
        def verify(self, token: str):  # type: ignore[no-untyped-def]
            calls.append(token)
            return super().verify(token)

    verifier = CountingVerifier([signer.public], audience="slim", clock=clock)
    engine = PolicyEngine(load_policy(POLICY), verifier, clock=clock)
    key = Name.parse("org/a/b").key
    token = provider.token()
    for _ in range(10):
        assert engine.decide(token, Action.INVITE, key).allowed
    assert len(calls) == 1
    stats = engine.stats
    assert (stats.token_misses, stats.token_hits) == (1, 9)
    assert (stats.decision_misses, stats.decision_hits) == (1, 9)
    # Expiry: the cached principal stops working when its token expires.
    clock.now = NOW + 101
    expired = engine.decide(token, Action.INVITE, key)
    assert not expired.allowed
    assert "expired" in expired.reason
    # The provider's fresh token works again.
    assert engine.decide(provider.token(), Action.INVITE, key).allowed


def test_self_certifying_principal_owns_its_key_id() -> None:
    clock = Clock()
    signer = JwtSigner.generate(JwsAlgorithm.EDDSA, "k")
    ident = Identity.generate("org/ns/carol")
    token = JwtProvider(ident, signer, audience="slim", clock=clock).token()
    engine = PolicyEngine(
        load_policy(POLICY), JwtVerifier([signer.public], audience="slim", clock=clock), clock=clock
    )
    by_key = Name("org", "inbox", "x", name_id_from_public_key(ident.public_key))
    assert engine.decide(token, Action.SUBSCRIBE, by_key).allowed
    assert not engine.decide(token, Action.SUBSCRIBE, by_key.with_id(12345)).allowed


def test_token_cache_is_bounded() -> None:
    clock = Clock()
    ident = Identity.generate("org/ns/guest")
    provider = SharedSecretProvider(ident, SECRET, clock=clock)
    engine = PolicyEngine(
        load_policy(POLICY),
        SharedSecretVerifier(SECRET, clock=clock),
        token_cache_size=4,
        decision_cache_size=4,
        clock=clock,
    )
    for i in range(20):
        engine.decide(provider.token(), Action.PUBLISH, f"org/ns/s{i}")
    assert len(engine._tokens) <= 4
    assert len(engine._decisions) <= 4


# ---- reload -----------------------------------------------------------------------------------


def test_reload_keeps_old_policy_on_error_and_flushes_caches(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    store = PolicyStore(path=path)
    clock = Clock()
    ident = Identity("org/ns/guest_z", Identity.generate("x").signing_key)
    token = SharedSecretProvider(ident, SECRET, clock=clock).token()
    engine = PolicyEngine(store, SharedSecretVerifier(SECRET, clock=clock), clock=clock)
    assert engine.decide(token, Action.PUBLISH, "org/ns/chat").allowed

    path.write_text(POLICY.replace("actions: [publish]\n", "actions: [pubish]\n"))
    result = store.reload()
    assert not result.ok
    assert "pubish" in (result.error or "")
    assert result.generation == 0
    assert engine.decide(token, Action.PUBLISH, "org/ns/chat").allowed  # old policy in force

    path.write_text(POLICY.replace('names: ["org/ns/*"]', 'names: ["org/other/*"]'))
    result = store.reload()
    assert result.ok
    assert result.changed
    assert result.generation == 1
    assert not engine.decide(token, Action.PUBLISH, "org/ns/chat").allowed  # cache flushed
    assert store.reload().changed is False


def test_startup_with_bad_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rules: 3")
    with pytest.raises(ConfigError, match="rules must be a list"):
        PolicyStore(path=path)


async def test_file_watcher_polls_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("default: deny")
    store = PolicyStore(path=path)
    seen = []
    watcher = PolicyFileWatcher(store, interval=0.01, on_reload=seen.append)
    assert watcher.poll() is None
    path.write_text("default: allow")
    os.utime(path, ns=(1, 10**9))
    watcher.start()
    try:
        async with asyncio.timeout(5):
            while not seen:
                await asyncio.sleep(0.01)
    finally:
        await watcher.stop()
    assert seen[0].ok
    assert store.policy.default.value == "allow"


# ---- hypothesis ------------------------------------------------------------------------------

_COMPONENTS = ["a", "b", "c"]
_NAMES = st.tuples(*[st.sampled_from(_COMPONENTS)] * 3)
_PATTERNS = st.lists(st.sampled_from([*_COMPONENTS, "*"]), min_size=1, max_size=3).map("/".join)
_RULES = st.lists(
    st.fixed_dictionaries(
        {
            "effect": st.sampled_from(["allow", "deny"]),
            "subjects": st.lists(st.sampled_from(["u1", "u2", "u*", "*"]), min_size=1, max_size=2),
            "actions": st.lists(st.sampled_from([a.value for a in Action]), min_size=1),
            "names": st.lists(_PATTERNS, min_size=1, max_size=2),
        }
    ),
    max_size=5,
)


def _brute_force(
    rules: list[dict[str, Any]], default: str, subject: str, action: str, name: tuple[str, str, str]
) -> bool:
    import fnmatch

    def name_ok(pattern: str) -> bool:
        parts = pattern.split("/")
        return all(p in ("*", name[i]) for i, p in enumerate(parts))

    hits = [
        r["effect"]
        for r in rules
        if action in r["actions"]
        and any(fnmatch.fnmatchcase(subject, s) for s in r["subjects"])
        and any(name_ok(p) for p in r["names"])
    ]
    if "deny" in hits:
        return False
    return "allow" in hits or default == "allow"


@settings(max_examples=300, deadline=None)
@given(
    _RULES,
    st.sampled_from(["allow", "deny"]),
    st.sampled_from(["u1", "u2", "v"]),
    st.sampled_from([a.value for a in Action]),
    _NAMES,
)
def test_engine_matches_a_brute_force_model(
    rules: list[dict[str, Any]],
    default: str,
    subject: str,
    action: str,
    name: tuple[str, str, str],
) -> None:
    policy = load_policy({"default": default, "rules": rules})
    principal = _principal(subject)
    got = policy.evaluate(principal, Action(action), Name(*name).key)
    assert got.allowed is _brute_force(rules, default, subject, action, name)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["effect", "subjects", "actions", "names", "claims", "dids", "id", "x"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"rules": st.lists(_JSONISH, max_size=3)}) | _JSONISH)
def test_fuzz_loader_raises_only_config_error(doc: Any) -> None:
    with contextlib.suppress(ConfigError):
        load_policy(doc if isinstance(doc, dict) else {"rules": doc})


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["u1", "u2"]), st.sampled_from(list(Action)), _NAMES), max_size=30
    )
)
def test_cached_decisions_equal_uncached(
    queries: list[tuple[str, Action, tuple[str, ...]]],
) -> None:
    engine = _engine()
    fresh = load_policy(POLICY)
    clock = Clock()
    providers = {
        s: SharedSecretProvider(
            Identity(f"org/ns/{s}", Identity.generate("x").signing_key), SECRET, clock=clock
        )
        for s in ("u1", "u2")
    }
    tokens = {s: p.token() for s, p in providers.items()}
    engine.verifier = SharedSecretVerifier(SECRET, clock=clock)
    for subject, action, name in queries:
        key = Name(*name).key
        got = engine.decide(tokens[subject], action, key)
        want = fresh.evaluate(_principal(f"org/ns/{subject}"), action, key)
        assert got == want


def test_token_as_raw_bytes() -> None:
    clock = Clock()
    ident = Identity("org/ns/guest_b", Identity.generate("x").signing_key)
    token = SharedSecretProvider(ident, SECRET, clock=clock).token()
    engine = PolicyEngine(
        load_policy(POLICY), SharedSecretVerifier(SECRET, clock=clock), clock=clock
    )
    assert engine.decide(token.encode(), Action.PUBLISH, "org/ns/chat").allowed
    assert engine.decide(token.encode(), Action.PUBLISH, "org/ns/chat").allowed
    assert engine.stats.token_hits == 1
    bad = engine.decide(b"\xff\xfe", Action.PUBLISH, "org/ns/chat")
    assert not bad.allowed
    assert "UTF-8" in bad.reason
