"""Loading and validating policies from YAML/JSON text, files, or a node config section.

A policy document::

    default: deny                # or allow; deny when absent
    rules:
      - id: ops-admin            # optional, shows up in decision reasons
        effect: allow            # allow | deny
        subjects: ["spiffe://example.org/ops/*"]   # globs; and/or
        dids: ["did:key:z6Mk*"]                      # globs; and/or
        claims: {groups: [admins, ops]}              # claim -> value or list of values
        actions: [publish, subscribe, invite]        # or "*"
        names: ["org/ns/*", "org/shared"]            # see slimwire.policy._model

Everything is checked at load: unknown keys, unknown actions and effects, empty selector sets
(a rule must say whom it is about - ``subjects: ["*"]`` for everyone - so a typo never turns a
rule into a match-all), malformed name patterns. Errors are :class:`ConfigError` naming the path
of the bad value (``rules[2].actions[0]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from slimwire.errors import ConfigError
from slimwire.policy._model import Action, Effect, NamePattern, Policy, Rule

__all__ = ["load_policy", "load_policy_file", "policy_from_config"]

_RULE_KEYS = {"id", "effect", "subjects", "dids", "claims", "actions", "names", "description"}
_DOC_KEYS = {"default", "rules", "version", "description"}
_MAX_POLICY_BYTES = 4 << 20


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a string or a list of non-empty strings")
    return tuple(value)


def _effect(value: Any, where: str) -> Effect:
    try:
        return Effect(str(value).lower())
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not allow or deny") from None


def _rule(index: int, raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a rule must be a mapping")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
    if "effect" not in raw:
        raise ConfigError(f"{where}.effect: missing (allow or deny)")
    effect = _effect(raw["effect"], f"{where}.effect")
    actions_raw = raw.get("actions")
    if actions_raw in ("*", ["*"]):
        actions = frozenset(Action)
    else:
        names = _str_list(actions_raw, f"{where}.actions")
        if not names:
            raise ConfigError(f"{where}.actions: missing (publish, subscribe, invite or '*')")
        out = set()
        for i, a in enumerate(names):
            try:
                out.add(Action(a.lower()))
            except ValueError:
                raise ConfigError(
                    f"{where}.actions[{i}]: unknown action {a!r} (publish, subscribe, invite)"
                ) from None
        actions = frozenset(out)
    patterns = []
    for i, text in enumerate(_str_list(raw.get("names"), f"{where}.names")):
        try:
            patterns.append(NamePattern.parse(text))
        except ValueError as exc:
            raise ConfigError(f"{where}.names[{i}]: {exc}") from None
    if not patterns:
        raise ConfigError(f"{where}.names: missing (use '*' for every name)")
    subjects = _str_list(raw.get("subjects"), f"{where}.subjects")
    dids = _str_list(raw.get("dids"), f"{where}.dids")
    claims_raw = raw.get("claims") or {}
    if not isinstance(claims_raw, Mapping):
        raise ConfigError(f"{where}.claims: expected a mapping of claim -> value(s)")
    claims = []
    for name, wanted in claims_raw.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or not all(isinstance(v, str | int | bool) for v in values):
            raise ConfigError(f"{where}.claims.{name}: expected a scalar or a list of scalars")
        claims.append((str(name), frozenset(values)))
    if not (subjects or dids or claims):
        raise ConfigError(
            f"{where}: no subjects, dids or claims - say whom the rule is about "
            "(subjects: ['*'] for everyone)"
        )
    rule_id = raw.get("id", "")
    if not isinstance(rule_id, str):
        raise ConfigError(f"{where}.id: expected a string")
    return Rule(
        index=index,
        effect=effect,
        actions=actions,
        names=tuple(patterns),
        subjects=subjects,
        dids=dids,
        claims=tuple(sorted(claims, key=lambda c: c[0])),
        id=rule_id,
    )


def load_policy(data: Mapping[str, Any] | str | bytes, source: str = "<policy>") -> Policy:
    """Validate a policy document (a mapping, or YAML/JSON text - JSON is YAML)."""
    if isinstance(data, bytes | str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: invalid YAML/JSON: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a policy must be a mapping with 'rules'")
    unknown = set(data) - _DOC_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(map(str, unknown))}")
    default = _effect(data.get("default", "deny"), f"{source}: default")
    rules_raw = data.get("rules", [])
    if not isinstance(rules_raw, list):
        raise ConfigError(f"{source}: rules must be a list")
    rules = tuple(_rule(i, r, f"{source}: rules[{i}]") for i, r in enumerate(rules_raw))
    ids = [r.id for r in rules if r.id]
    if len(ids) != len(set(ids)):
        raise ConfigError(
            f"{source}: duplicate rule ids {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    return Policy(rules, default, source)


def load_policy_file(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a ``.yaml``/``.yml``/``.json`` policy file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read policy: {exc.strerror or exc}") from None
    if len(raw) > _MAX_POLICY_BYTES:
        raise ConfigError(f"{p}: policy file larger than {_MAX_POLICY_BYTES} bytes")
    if p.suffix == ".json":
        try:
            return load_policy(json.loads(raw), str(p))
        except ValueError as exc:
            raise ConfigError(f"{p}: invalid JSON: {exc}") from None
    return load_policy(raw, str(p))


def policy_from_config(section: Mapping[str, Any], where: str = "authorization") -> Policy:
    """A policy from a node config section: either inline (``default``/``rules``) or
    ``{file: path}`` (relative paths are taken as given, i.e. from the working directory)."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    if "file" in section:
        if set(section) != {"file"}:
            raise ConfigError(f"{where}: 'file' cannot be combined with inline rules")
        path = section["file"]
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.file: expected a path")
        return load_policy_file(path)
    return load_policy(section, where)
