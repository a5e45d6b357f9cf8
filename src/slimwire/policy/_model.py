"""The policy model: who (principal) may do what (action) on which names (patterns).

Everything here is an immutable value built once at load time, so evaluation is plain tuple and
set work. Name patterns are compiled to the **component hashes** the data plane routes on
(``names.component_hash``), so a node can ask about a message from the raw routing key
``(h0, h1, h2, id)`` it already has, without rebuilding the name's strings.

Pattern syntax: ``org/ns/svc`` matches that service with any id; fewer components are a prefix
(``org`` is everything in ``org``; ``*`` alone is every name); ``*`` in a position matches any
value of that component; a fourth component pins the id (a UUID, ``NULL_COMPONENT`` or ``@self``,
which means the requesting principal's own id: the reference's ``XXH3-128(sub)`` or the
self-certifying id of its ``pubkey``).
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from slimwire.names import app_id_from_token_id, component_hash, parse_id

__all__ = [
    "Action",
    "Decision",
    "Effect",
    "NameKey",
    "NamePattern",
    "Policy",
    "Principal",
    "Rule",
]

NameKey = tuple[int, int, int, int]
SELF_ID = "@self"
_INDEX_MAX = 4096


class Action(enum.Enum):
    """What a node authorizes: sending to a name, subscribing to it, inviting it to a group."""

    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    INVITE = "invite"


class Effect(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class Decision(NamedTuple):
    """The answer for one (identity, action, name); ``reason`` is meant for a SubscriptionAck
    error or a log line, so it names the rule that decided."""

    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified identity as policies see it: subject, DID, the claims policies look at,
    and the ids it owns (for ``@self``)."""

    subject: str
    did: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    own_ids: frozenset[int] = frozenset()
    expires_at: float = float("inf")

    def cache_key(self, claim_names: tuple[str, ...]) -> tuple[object, ...]:
        """What a decision can depend on: subject, DID and only the claims the policy reads."""
        values = tuple(_freeze(self.claims.get(name)) for name in claim_names)
        return (self.subject, self.did, values)


def _freeze(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    return value


def own_ids_for(subject: str, public_key: bytes | None) -> frozenset[int]:
    """The ids ``@self`` accepts: the reference's id for the subject, and the self-certifying
    id of the token's key."""
    ids = {app_id_from_token_id(subject)}
    if public_key:
        key_id = _key_id(bytes(public_key))
        if key_id is not None:
            ids.add(key_id)
    return frozenset(ids)


@functools.lru_cache(maxsize=4096)
def _key_id(public_key: bytes) -> int | None:
    # Parsing a point and hashing its SPKI costs tens of µs; a peer's key repeats on every token.
    from slimwire.auth._ni import name_id_from_public_key

    try:
        return name_id_from_public_key(public_key)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A compiled name pattern (see the module docstring for the syntax)."""

    text: str
    hashes: tuple[int | None, ...]
    name_id: int | str | None = None

    @classmethod
    def parse(cls, text: str) -> NamePattern:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a name pattern is a non-empty string")
        raw = text.strip()
        parts = raw.split("/")
        if len(parts) > 4 or any(not p or p != p.strip() for p in parts):
            raise ValueError(f"name pattern {text!r}: expected 1-4 non-empty '/' components")
        hashes = tuple(None if p == "*" else component_hash(p) for p in parts[:3])
        name_id: int | str | None = None
        if len(parts) == 4:
            if parts[3] == SELF_ID:
                name_id = SELF_ID
            elif parts[3] != "*":
                name_id = parse_id(parts[3])
        if raw == "*":
            hashes = ()
        return cls(raw, hashes, name_id)

    def matches(self, key: NameKey, principal: Principal | None = None) -> bool:
        for i, h in enumerate(self.hashes):
            if h is not None and key[i] != h:
                return False
        if self.name_id is None:
            return True
        if self.name_id == SELF_ID:
            return principal is not None and key[3] in principal.own_ids
        return key[3] == self.name_id


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy rule. It applies to a principal when **all** its selectors that are set
    match: ``subjects`` (globs, any one), ``dids`` (globs, any one), ``claims`` (every listed
    claim has one of the listed values; a list-valued claim matches when any element does)."""

    index: int
    effect: Effect
    actions: frozenset[Action]
    names: tuple[NamePattern, ...]
    subjects: tuple[str, ...] = ()
    dids: tuple[str, ...] = ()
    claims: tuple[tuple[str, frozenset[object]], ...] = ()
    id: str = ""
    _subject_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _did_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_subject_re", _globs(self.subjects))
        object.__setattr__(self, "_did_re", _globs(self.dids))

    @property
    def label(self) -> str:
        return f"rule {self.id!r}" if self.id else f"rule #{self.index}"

    def applies_to(self, principal: Principal) -> bool:
        if self._subject_re is not None and not self._subject_re.match(principal.subject):
            return False
        if self._did_re is not None and (
            principal.did is None or not self._did_re.match(principal.did)
        ):
            return False
        for name, wanted in self.claims:
            value = principal.claims.get(name)
            values = value if isinstance(value, list | tuple) else (value,)
            if not any(_hashable(v) and v in wanted for v in values):
                return False
        return True

    def covers(self, action: Action, key: NameKey, principal: Principal) -> bool:
        if action not in self.actions:
            return False
        for pattern in self.names:  # noqa: SIM110 - a loop; any(genexpr) is slower here
            if pattern.matches(key, principal):
                return True
        return False


def _hashable(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@dataclass(frozen=True, slots=True)
class Policy:
    """An ordered rule list with a default effect. Deny wins: any applicable deny rule refuses;
    otherwise any applicable allow rule permits; otherwise ``default`` decides."""

    rules: tuple[Rule, ...] = ()
    default: Effect = Effect.DENY
    source: str = "<policy>"
    claim_names: tuple[str, ...] = field(default=(), compare=False)
    _index: dict[tuple[Action, int], tuple[Rule, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        names = sorted({name for r in self.rules for name, _ in r.claims})
        object.__setattr__(self, "claim_names", tuple(names))

    def _candidates(self, action: Action, first: int) -> tuple[Rule, ...]:
        """Rules that can apply to ``action`` on names whose first component hashes to
        ``first`` (memoized, bounded: the names a node sees share few first components)."""
        found = self._index.get((action, first))
        if found is None:
            found = tuple(
                r
                for r in self.rules
                if action in r.actions
                and any(not p.hashes or p.hashes[0] in (None, first) for p in r.names)
            )
            if len(self._index) < _INDEX_MAX:
                self._index[(action, first)] = found
        return found

    def applicable(self, principal: Principal) -> tuple[Rule, ...]:
        """The rules whose identity selectors match ``principal`` (in policy order). A node
        computes this once per verified token; evaluation then only matches names."""
        return tuple(r for r in self.rules if r.applies_to(principal))

    def evaluate(
        self,
        principal: Principal,
        action: Action,
        key: NameKey,
        applicable: tuple[Rule, ...] | None = None,
    ) -> Decision:
        """Deny precedence, then allow, then the default. ``applicable`` is
        :meth:`applicable` of the same principal, when the caller has it."""
        allowed_by: Rule | None = None
        if applicable is None:
            rules = [r for r in self._candidates(action, key[0]) if r.applies_to(principal)]
        else:
            rules = list(applicable)
        for rule in rules:
            if not rule.covers(action, key, principal):
                continue
            if rule.effect is Effect.DENY:
                return Decision(False, f"{action.value} denied by {rule.label}")
            if allowed_by is None:
                allowed_by = rule
        if allowed_by is not None:
            return Decision(True, f"{action.value} allowed by {allowed_by.label}")
        if self.default is Effect.ALLOW:
            return Decision(True, f"{action.value} allowed by default")
        return Decision(False, f"{action.value} denied: no rule allows it (default deny)")
