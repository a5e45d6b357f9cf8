"""The per-message authorization decision a node asks for (sans-IO).

``decide(identity_token, action, name)`` verifies the token with the configured verifier
(shared secret, JWT/JWKS, SPIFFE - anything with ``verify(token) -> TokenClaims``), turns the
claims into a :class:`Principal`, and evaluates the policy. Two caches make the common case a
couple of dict lookups:

* verified tokens, **by token string**, until the token expires: a JWT is reused by its app for
  most of its lifetime, so a node verifies each distinct token once (shared-secret tokens are
  fresh per message in the reference, so they miss this cache and cost one HMAC each);
* decisions, by (principal key, action, routing key), where the principal key holds only what
  the policy can look at (subject, DID, the claims its rules name). Any policy change (a new
  store generation) empties both.

Both caches are bounded; when full, the oldest entry goes (insertion order), which is cheaper
than an LRU on this path and good enough for a working set that is mostly stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from slimwire.auth._shared_secret import TokenClaims
from slimwire.auth._types import TokenVerifier
from slimwire.errors import AuthError
from slimwire.names import Name
from slimwire.policy._model import (
    Action,
    Decision,
    NameKey,
    Policy,
    Principal,
    Rule,
    own_ids_for,
)
from slimwire.policy._store import PolicyStore

__all__ = ["EngineStats", "PolicyEngine", "principal_from_claims"]


class EngineStats(NamedTuple):
    token_hits: int
    token_misses: int
    decision_hits: int
    decision_misses: int
    refused_tokens: int


def principal_from_claims(claims: TokenClaims) -> Principal:
    """The policy view of verified claims: ``did`` is the ``did`` claim, else the subject when
    it is a DID; ``own_ids`` are the ids ``@self`` patterns accept."""
    did = claims.custom.get("did")
    if not isinstance(did, str):
        did = claims.subject if claims.subject.startswith("did:") else None
    return Principal(
        subject=claims.subject,
        did=did,
        claims=claims.custom,
        own_ids=own_ids_for(claims.subject, claims.public_key),
        expires_at=float(claims.expires_at),
    )


def _name_key(name: Name | NameKey | str) -> NameKey:
    if isinstance(name, tuple):
        return name
    if isinstance(name, str):
        name = Name.parse(name)
    return name.key


class PolicyEngine:
    """Authorization decisions against a :class:`PolicyStore` (or a fixed :class:`Policy`)."""

    __slots__ = (
        "_clock",
        "_decision_max",
        "_decisions",
        "_generation",
        "_stats",
        "_token_max",
        "_tokens",
        "store",
        "verifier",
    )

    def __init__(
        self,
        policy: PolicyStore | Policy,
        verifier: TokenVerifier,
        *,
        token_cache_size: int = 65536,
        decision_cache_size: int = 65536,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = policy if isinstance(policy, PolicyStore) else PolicyStore(policy)
        self.verifier = verifier
        self._clock = clock
        self._token_max = token_cache_size
        self._decision_max = decision_cache_size
        self._tokens: dict[str | bytes, tuple[Principal, tuple[object, ...], tuple[Rule, ...]]] = {}
        self._decisions: dict[tuple[object, ...], Decision] = {}
        self._generation = self.store.generation
        # token hits, token misses, decision hits, decision misses, refused tokens
        self._stats = [0, 0, 0, 0, 0]

    @property
    def stats(self) -> EngineStats:
        return EngineStats(*self._stats)

    def clear_caches(self) -> None:
        self._tokens.clear()
        self._decisions.clear()

    def _sync_generation(self) -> None:
        if self.store.generation != self._generation:
            self._generation = self.store.generation
            self.clear_caches()

    def principal(
        self, identity_token: str | bytes
    ) -> tuple[Principal, tuple[object, ...], tuple[Rule, ...]]:
        """The verified principal of a token (cached), its decision-cache key and the rules that
        apply to it.

        Raises :class:`AuthError` when the token is refused or has expired since it was cached.
        """
        entry = self._tokens.get(identity_token)
        if entry is not None:
            if self._clock() > entry[0].expires_at:
                del self._tokens[identity_token]
                raise AuthError(f"identity token of {entry[0].subject!r} has expired")
            self._stats[0] += 1
            return entry
        self._stats[1] += 1
        if not identity_token:
            raise AuthError("no identity token")
        if isinstance(identity_token, bytes):
            try:
                text = identity_token.decode("utf-8")
            except UnicodeDecodeError:
                raise AuthError("identity token is not UTF-8") from None
        else:
            text = identity_token
        principal = principal_from_claims(self.verifier.verify(text))
        policy = self.store.policy
        entry = (principal, principal.cache_key(policy.claim_names), policy.applicable(principal))
        tokens = self._tokens
        if len(tokens) >= self._token_max:
            del tokens[next(iter(tokens))]
        tokens[identity_token] = entry
        return entry

    def decide(
        self, identity_token: str | bytes, action: Action, name: Name | NameKey | str
    ) -> Decision:
        """Whether the holder of ``identity_token`` may ``action`` on ``name``.

        The token may be given as the raw header bytes (what a raw-frame reader has): it is
        cached under that form, so the hot path never decodes it.

        ``name`` is best given as the routing key ``(h0, h1, h2, id)`` the node already holds.
        Never raises for a bad token: a refused token is a denial whose reason says why.
        """
        if self.store.generation != self._generation:
            self._sync_generation()
        entry = self._tokens.get(identity_token)
        if entry is None or self._clock() > entry[0].expires_at:
            try:
                entry = self.principal(identity_token)
            except AuthError as exc:
                self._stats[4] += 1
                return Decision(False, f"{action.value} denied: invalid identity: {exc}")
        else:
            self._stats[0] += 1
        principal, pkey, rules = entry
        key = name if type(name) is tuple else _name_key(name)
        dkey = (pkey, action, key)
        decision = self._decisions.get(dkey)
        if decision is not None:
            self._stats[2] += 1
            return decision
        self._stats[3] += 1
        decision = self.store.policy.evaluate(principal, action, key, rules)
        decisions = self._decisions
        if len(decisions) >= self._decision_max:
            del decisions[next(iter(decisions))]
        decisions[dkey] = decision
        return decision

    def decide_principal(
        self, principal: Principal, action: Action, name: Name | NameKey | str
    ) -> Decision:
        """Evaluate for an already verified principal (no caching): tools and tests."""
        return self.store.policy.evaluate(principal, action, _name_key(name))

    def __repr__(self) -> str:
        return f"PolicyEngine({self.store!r}, verifier={self.verifier!r})"
