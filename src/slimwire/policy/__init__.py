"""Authorization policies a node enforces: who may publish to, subscribe to, or invite which
names.

The reference has no per-name ACLs (slim-wire.md §4); this is slimwire's addition, and it is
opt-in. A node holds a :class:`PolicyEngine` and asks it, per subscribe or publish from a local
app, ``engine.decide(identity_token, Action.SUBSCRIBE, routing_key)``; the answer is a
:class:`Decision` whose ``reason`` goes back in the failed SubscriptionAck or the error to the
app. Policies are YAML/JSON (see :func:`load_policy`), validated at load, and reloaded without
a restart (:meth:`PolicyStore.reload`, :class:`PolicyFileWatcher`).

Example::

    store = PolicyStore(path="policy.yaml")
    engine = PolicyEngine(store, JwtVerifier(JwksFile("jwks.json"), audience="slim"))
    if not (d := engine.decide(token, Action.PUBLISH, name_key)).allowed:
        refuse(d.reason)
"""

from slimwire.policy._config import (
    AnyOfVerifiers,
    AuthorizationConfig,
    build_authorizer,
    make_verifier,
    parse_authorization,
)
from slimwire.policy._enforce import (
    Authorizer,
    DenialNotice,
    NodeAuthorizer,
    denial_notice,
    frame_identity,
    parse_denial_notice,
)
from slimwire.policy._engine import EngineStats, PolicyEngine, principal_from_claims
from slimwire.policy._load import load_policy, load_policy_file, policy_from_config
from slimwire.policy._model import (
    Action,
    Decision,
    Effect,
    NameKey,
    NamePattern,
    Policy,
    Principal,
    Rule,
)
from slimwire.policy._store import PolicyFileWatcher, PolicyStore, ReloadResult

__all__ = [
    "Action",
    "AnyOfVerifiers",
    "AuthorizationConfig",
    "Authorizer",
    "Decision",
    "DenialNotice",
    "Effect",
    "EngineStats",
    "NameKey",
    "NamePattern",
    "NodeAuthorizer",
    "Policy",
    "PolicyEngine",
    "PolicyFileWatcher",
    "PolicyStore",
    "Principal",
    "ReloadResult",
    "Rule",
    "build_authorizer",
    "denial_notice",
    "frame_identity",
    "load_policy",
    "load_policy_file",
    "make_verifier",
    "parse_authorization",
    "parse_denial_notice",
    "policy_from_config",
    "principal_from_claims",
]
