"""The node configuration's ``authorization`` section, and building an authorizer from it.

::

    services:
      slim/0:
        authorization:
          file: /etc/slim/policy.yaml      # or inline: default: deny / rules: [...]
          verifier:
            shared_secret: ${env:SLIM_SECRET}          # one of these four
            # jwt: {keys: [/etc/slim/issuer.pem], audience: slim, issuer: https://auth}
            # jwt: {jwks_file: /etc/slim/jwks.json, audience: slim}
            # jwt: {jwks_url: https://auth/.well-known/jwks.json, audience: slim}
            # or a list of these: shared-secret and JWT apps on one node
          self_certifying: ["org/agents"]  # sources whose id must derive from the token key
          watch_interval: 1s               # poll a policy file for changes (0: only SIGHUP)
          token_cache_size: 65536          # verified tokens kept (by token string) until exp

Everything is validated when the configuration is parsed, so a bad policy or verifier is a
:class:`~slimwire.errors.ConfigError` at start. A JWKS URL is only fetched when the first
token needs it (never at parse time: a node must start while its issuer is down).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimwire.auth import (
    JwksFile,
    JwksUrl,
    JwtVerifier,
    SharedSecretVerifier,
    StaticKeys,
    prefetch_keys,
)
from slimwire.auth._shared_secret import TokenClaims
from slimwire.auth._types import TokenVerifier
from slimwire.errors import AuthError, ConfigError
from slimwire.policy._enforce import NodeAuthorizer
from slimwire.policy._engine import PolicyEngine
from slimwire.policy._load import policy_from_config
from slimwire.policy._model import NamePattern, Policy
from slimwire.policy._store import PolicyStore

__all__ = [
    "AnyOfVerifiers",
    "AuthorizationConfig",
    "build_authorizer",
    "make_verifier",
    "parse_authorization",
]

_KEYS = {"file", "default", "rules", "version", "description", "verifier"}
_KEYS |= {"self_certifying", "watch_interval", "token_cache_size"}
_JWT_KEYS = {"keys", "jwks_file", "jwks_url", "audience", "issuer", "leeway"}


@dataclass(frozen=True, slots=True)
class AuthorizationConfig:
    """A validated ``authorization`` section (see the module docstring)."""

    policy: Policy
    verifier: Mapping[str, Any] | list[Any]
    policy_file: str | None = None
    self_certifying: tuple[NamePattern, ...] = ()
    watch_interval: float = 1.0
    token_cache_size: int = 65536
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def parse_authorization(raw: object, where: str = "authorization") -> AuthorizationConfig:
    """Validate the section (building the policy and the verifier once, to fail early)."""
    from slimwire.config import parse_duration

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
    if "verifier" not in raw:
        raise ConfigError(f"{where}.verifier: required (shared_secret or jwt)")
    section = {k: v for k, v in raw.items() if k not in ("verifier", "self_certifying")}
    section.pop("watch_interval", None)
    cache = section.pop("token_cache_size", 65536)
    if not isinstance(cache, int) or isinstance(cache, bool) or cache < 1:
        raise ConfigError(f"{where}.token_cache_size: expected a positive integer")
    policy = policy_from_config(section, where)
    verifier = raw["verifier"]
    make_verifier(verifier, f"{where}.verifier")
    patterns = raw.get("self_certifying", [])
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        raise ConfigError(f"{where}.self_certifying: expected a list of name patterns")
    compiled = []
    for i, p in enumerate(patterns):
        try:
            compiled.append(NamePattern.parse(p))
        except ValueError as exc:
            raise ConfigError(f"{where}.self_certifying[{i}]: {exc}") from None
    interval = parse_duration(raw.get("watch_interval", 1.0), f"{where}.watch_interval")
    path = section.get("file")
    return AuthorizationConfig(
        policy=policy,
        verifier=verifier,
        policy_file=str(path) if path else None,
        self_certifying=tuple(compiled),
        watch_interval=interval,
        token_cache_size=cache,
        raw=raw,
    )


class AnyOfVerifiers:
    """Several identity schemes on one node (shared-secret apps and JWT apps side by side):
    a token shaped like a JWT goes to the JWT verifiers first, anything else to the others
    first; the first verifier that accepts it wins, else the first refusal is raised."""

    __slots__ = ("_jwt_first", "_other_first")

    def __init__(self, verifiers: list[tuple[bool, TokenVerifier]]) -> None:
        jwt = [v for is_jwt, v in verifiers if is_jwt]
        other = [v for is_jwt, v in verifiers if not is_jwt]
        self._jwt_first = tuple(jwt + other)
        self._other_first = tuple(other + jwt)

    def verify(self, token: str) -> TokenClaims:
        order = self._jwt_first if token.count(".") == 2 else self._other_first
        first: AuthError | None = None
        for v in order:
            try:
                return v.verify(token)
            except AuthError as exc:
                first = first or exc
        assert first is not None
        raise first

    async def prefetch(self) -> None:
        """Load every verifier's keys ahead of time (those that fetch any)."""
        await prefetch_keys(*self._jwt_first)


def make_verifier(spec: object, where: str = "verifier") -> TokenVerifier:
    """A token verifier from ``{shared_secret: ...}``, ``{jwt: {...}}`` or a list of those."""
    if isinstance(spec, list) and spec:
        return AnyOfVerifiers(
            [
                ("jwt" in item if isinstance(item, Mapping) else False,
                 make_verifier(item, f"{where}[{i}]"))
                for i, item in enumerate(spec)
            ]
        )  # fmt: skip
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(f"{where}: expected exactly one of shared_secret, jwt")
    ((kind, value),) = spec.items()
    try:
        if kind == "shared_secret":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}.shared_secret: expected a string")
            return SharedSecretVerifier(value)
        if kind == "jwt":
            return _jwt(value, f"{where}.jwt")
    except (AuthError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"{where}: unknown verifier {kind!r} (shared_secret, jwt)")


def _jwt(raw: object, where: str) -> TokenVerifier:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(raw) - _JWT_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
    sources = [k for k in ("keys", "jwks_file", "jwks_url") if k in raw]
    if len(sources) != 1:
        raise ConfigError(f"{where}: expected exactly one of keys, jwks_file, jwks_url")
    audience = raw.get("audience")
    if audience is None:
        raise ConfigError(f"{where}.audience: required")
    if "keys" in raw:
        paths = raw["keys"]
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not paths:
            raise ConfigError(f"{where}.keys: expected PEM public key file paths")
        keys = []
        for i, p in enumerate(paths):
            try:
                keys.append(load_pem_public_key(Path(str(p)).read_bytes()))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{where}.keys[{i}]: {exc}") from None
        source: Any = StaticKeys(keys)  # type: ignore[arg-type]
    elif "jwks_file" in raw:
        source = JwksFile(str(raw["jwks_file"]))
    else:
        source = JwksUrl(str(raw["jwks_url"]))
    return JwtVerifier(
        source,
        audience=audience,
        issuer=raw.get("issuer"),
        leeway=int(raw.get("leeway", 5)),
    )


def build_authorizer(cfg: AuthorizationConfig) -> tuple[NodeAuthorizer, PolicyStore]:
    """The node's authorizer and the store that holds its policy (file-backed if the
    section names a file, so ``store.reload()`` and a watcher can change it)."""
    store = PolicyStore(cfg.policy, path=cfg.policy_file)
    engine = PolicyEngine(store, make_verifier(cfg.verifier), token_cache_size=cfg.token_cache_size)
    auth = NodeAuthorizer(
        engine, self_certifying=cfg.self_certifying, flow_cache_size=cfg.token_cache_size
    )
    return auth, store
