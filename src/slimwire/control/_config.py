"""The controller's YAML config, in the reference's shape (``crates/control-plane/src/config.rs``):

.. code-block:: yaml

    northbound: {endpoint: "0.0.0.0:50051"}
    southbound: {endpoint: "0.0.0.0:50052"}
    database: {type: sqlite, path: /var/lib/slim/controller.db}   # or {type: in_memory}
    topology:
      links: [{domain: domain-1, neighbors: ["*"]}]               # or segments: [...]
      registration_auth: {type: shared_secret, secrets: {domain-1: "<32+ bytes>"}}
      # or ours: {type: jwt, jwks: FILE|URL, audience: slim, issuer: ...} (authority JWTs),
      # and both: {type: shared_secret, secrets: {...}, jwt: {jwks: ..., audience: ...}}

plus one key of ours, ``northbound.basic_auth: {username, password}``, for the northbound
API's credentials. Unknown keys are ignored, as the reference does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slimwire.control._routing import Topology
from slimwire.errors import ConfigError

__all__ = ["DEFAULT_DB", "ControllerConfig", "load_controller_config", "parse_endpoint"]

DEFAULT_DB = "slimwire-controller.db"


def parse_endpoint(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.strip().removeprefix("http://").rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    northbound: tuple[str, int] = ("0.0.0.0", 50051)
    southbound: tuple[str, int] = ("0.0.0.0", 50052)
    database: str = DEFAULT_DB
    """A SQLite file path, or ``:memory:``."""
    topology: Topology = field(default_factory=Topology)
    secrets: Mapping[str, str] = field(default_factory=dict)
    require_credentials: bool | None = None
    basic_auth: tuple[str, str] | None = None
    jwks: str | None = None
    """Accept registrations with a JWT checked against this JWKS (a file or an http(s) URL)."""
    jwt_audience: str | None = None
    jwt_issuer: str | None = None


def _map(raw: object, where: str) -> Mapping[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    return raw


def load_controller_config(path: str | Path | None) -> ControllerConfig:
    if path is None:
        return ControllerConfig()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    top = _map(raw, "config")
    kw: dict[str, object] = {}
    for key in ("northbound", "southbound"):
        section = top.get(key)
        if isinstance(section, list):  # several servers: we serve the first
            section = section[0] if section else None
        sec = _map(section, key)
        if "endpoint" in sec:
            kw[key] = parse_endpoint(str(sec["endpoint"]), f"{key}.endpoint")
        if key == "northbound" and "basic_auth" in sec:
            ba = _map(sec["basic_auth"], "northbound.basic_auth")
            kw["basic_auth"] = (str(ba.get("username", "")), str(ba.get("password", "")))
    db = _map(top.get("database"), "database")
    kind = db.get("type", "sqlite" if db.get("path") else None)
    if kind == "in_memory":
        kw["database"] = ":memory:"
    elif kind == "sqlite":
        if not isinstance(db.get("path"), str):
            raise ConfigError("database.path: required for type sqlite")
        kw["database"] = db["path"]
    elif kind is not None:
        raise ConfigError(f"database.type: expected sqlite or in_memory, got {kind!r}")
    topo = _map(top.get("topology"), "topology")
    kw["topology"] = Topology.parse(topo)
    auth = _map(topo.get("registration_auth"), "topology.registration_auth")
    if auth:
        kind = auth.get("type")
        if kind not in ("shared_secret", "jwt"):
            raise ConfigError(
                f"topology.registration_auth.type: expected shared_secret or jwt, got {kind!r}"
            )
        if kind == "shared_secret":
            secrets = _map(auth.get("secrets"), "topology.registration_auth.secrets")
            kw["secrets"] = {str(k): str(v) for k, v in secrets.items()}
        jwt = auth if kind == "jwt" else _map(auth.get("jwt"), "topology.registration_auth.jwt")
        if jwt:
            if not isinstance(jwt.get("jwks"), str) or not jwt["jwks"]:
                raise ConfigError("topology.registration_auth: jwt needs jwks (a file or URL)")
            kw["jwks"] = jwt["jwks"]
            for key, name in (("audience", "jwt_audience"), ("issuer", "jwt_issuer")):
                if jwt.get(key) is not None:
                    kw[name] = str(jwt[key])
        kw["require_credentials"] = True
    return ControllerConfig(**kw)  # type: ignore[arg-type]
