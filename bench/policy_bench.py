"""Benchmark of PolicyEngine.decide (run by hand: ``python bench/policy_bench.py``).

Benchmarks live in bench/, not in the test suite. It prints µs per decision for
* a full cache hit (same token, same name),
* a decision-cache miss (same token, a new name each time: policy evaluation),
* a token-cache miss with a JWT (ES256 verification + evaluation),
* a shared-secret token per message (HMAC verification + evaluation; the reference's default,
  whose tokens are fresh per message and so never hit the token cache).
"""

from __future__ import annotations

import time

from slimwire.auth import Identity, SharedSecretProvider, SharedSecretVerifier
from slimwire.auth._jwks import JwsAlgorithm
from slimwire.auth._jwt import JwtProvider, JwtSigner, JwtVerifier
from slimwire.names import Name
from slimwire.policy import Action, PolicyEngine, load_policy

SECRET = "abcdefghijklmnopqrstuvwxyz012345"


def _policy_doc(n_rules: int) -> dict[str, object]:
    rules: list[dict[str, object]] = [
        {
            "effect": "allow",
            "subjects": [f"org/ns/team{i}*"],
            "actions": ["publish", "subscribe"],
            "names": [f"org/team{i}/*"],
        }
        for i in range(n_rules)
    ]
    rules.append({"effect": "deny", "subjects": ["*"], "actions": "*", "names": ["org/secret"]})
    rules.append(
        {"effect": "allow", "claims": {"groups": "ops"}, "actions": ["publish"], "names": ["org"]}
    )
    return {"default": "deny", "rules": rules}


def _time(fn: object, n: int) -> float:
    call = fn  # type: ignore[assignment]
    t0 = time.perf_counter()
    for i in range(n):
        call(i)  # type: ignore[operator]
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    policy = load_policy(_policy_doc(20))
    ident = Identity.generate("org/ns/team3")
    signer = JwtSigner.generate(JwsAlgorithm.ES256, "k")
    jwt_provider = JwtProvider(ident, signer, audience="slim", claims={"groups": ["dev"]})
    jwt_verifier = JwtVerifier([signer.public], audience="slim", cache_size=0)
    engine = PolicyEngine(policy, jwt_verifier)
    token = jwt_provider.token()
    key = Name.parse("org/team3/svc").key
    n = 200_000
    hit = _time(lambda _i: engine.decide(token, Action.PUBLISH, key), n)
    keys = [Name("org", "team3", f"s{i}").key for i in range(20_000)]
    miss_decision = _time(lambda i: engine.decide(token, Action.PUBLISH, keys[i]), len(keys))
    tokens = [
        JwtProvider(ident, signer, audience="slim", claims={"n": i}).token() for i in range(2_000)
    ]
    miss_token = _time(lambda i: engine.decide(tokens[i], Action.PUBLISH, key), len(tokens))
    ss = SharedSecretProvider(Identity(ident.token_id, ident.signing_key), SECRET)
    ss_engine = PolicyEngine(policy, SharedSecretVerifier(SECRET))
    ss_tokens = [ss.token() for _ in range(20_000)]
    ss_time = _time(lambda i: ss_engine.decide(ss_tokens[i], Action.PUBLISH, key), len(ss_tokens))
    assert engine.decide(token, Action.PUBLISH, key).allowed
    print(f"policy: {len(policy.rules)} rules")
    print(f"cache hit (token + decision)        {hit:7.2f} us/decision")
    print(f"decision miss (policy evaluation)   {miss_decision:7.2f} us/decision")
    print(f"token miss, JWT ES256 verify        {miss_token:7.2f} us/decision")
    print(f"shared-secret token per message     {ss_time:7.2f} us/decision")


if __name__ == "__main__":
    main()
