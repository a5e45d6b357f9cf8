"""Node configuration in the reference's YAML shape (slim-wire.md §6).

Every key the reference knows is accepted (sections we do not act on yet, such as the
controller and peers, are reported by :attr:`NodeConfig.ignored`; features we cannot honour, such
as SPIRE/OIDC transport auth or WebSocket endpoints, are refused by name), and a key neither knows
is refused with a :class:`~slimwire.errors.ConfigError` that names its full path, so a typo never
silently falls back to a default. ``${env:VAR}`` (and ``${env:VAR:-default}``) is substituted in
every string before parsing, as the reference does.

Plain frozen dataclasses and a small hand-written validator keep this free of a schema library.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from slimwire._constants import DEFAULT_DATAPLANE_PORT, NEGOTIATION_TIMEOUT_S
from slimwire.errors import ConfigError

if TYPE_CHECKING:
    from slimwire.policy._config import AuthorizationConfig

__all__ = [
    "AuthConfig",
    "BackoffConfig",
    "ClientConfig",
    "NodeConfig",
    "OpenTelemetryConfig",
    "ServerConfig",
    "TlsConfig",
    "default_config",
    "load_config",
    "parse_config",
    "parse_duration",
]

DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d)?\s*$")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    None: 1.0,
}


def parse_duration(value: object, where: str = "duration") -> float:
    """Seconds from ``10s``, ``500ms``, ``2m``, a number, or ``{secs, nanos}``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        _check_keys(value, {"secs", "nanos"}, where)
        return float(value.get("secs", 0)) + float(value.get("nanos", 0)) * 1e-9
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ConfigError(f"{where}: expected a duration like '10s' or '500ms', got {value!r}")


def _substitute(obj: Any, where: str = "") -> Any:
    if isinstance(obj, str):

        def repl(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1), m.group(2))
            if value is None:
                raise ConfigError(
                    f"{where or 'config'}: environment variable {m.group(1)} is not set"
                )
            return value

        return _ENV.sub(repl, obj)
    if isinstance(obj, list):
        return [_substitute(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return {k: _substitute(v, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    return obj


def _check_keys(section: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in section:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown key {where}.{key} (known keys here: {known})")


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return str(value)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS settings of a server or client; ``insecure`` means plain h2c.

    PEM may come from files (``cert_file``/``key_file``/``ca_file``, or the reference's
    ``source: {type: file, cert, key}`` and ``ca_source: {type: file, path}``) or inline
    (``source: {type: pem, cert, key}``, ``ca_source: {type: pem, data}``). On a server,
    ``client_ca`` (same shape as ``ca_source``; ``client_ca_file``/``client_ca_pem`` and, for
    older configs, ``ca_file`` too) turns on mTLS: a client must present a certificate that chains
    to it. On a client, a cert/key pair is presented when the server asks for one.
    """

    insecure: bool = True
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    insecure_skip_verify: bool = False
    cert_pem: str = ""
    key_pem: str = ""
    ca_pem: str = ""
    client_ca_file: str = ""
    client_ca_pem: str = ""
    tls_version: str = "tls1.3"
    """Lowest protocol version accepted: ``tls1.2`` or ``tls1.3`` (the reference's default)."""

    _KEYS = frozenset(
        {
            "insecure",
            "insecure_skip_verify",
            "source",
            "ca_source",
            "client_ca",
            "ca_file",
            "ca_pem",
            "cert_file",
            "key_file",
            "cert_pem",
            "key_pem",
            "client_ca_file",
            "client_ca_pem",
            "tls_version",
            "include_system_ca_certs_pool",
            "reload_client_ca_file",
            "reload_interval",
        }
    )

    @property
    def has_cert(self) -> bool:
        return bool((self.cert_file or self.cert_pem) and (self.key_file or self.key_pem))

    @property
    def requires_client_cert(self) -> bool:
        """Server side: mTLS is on (a client CA is configured)."""
        return bool(self.client_ca_file or self.client_ca_pem)

    @classmethod
    def parse(cls, raw: object, where: str, *, server: bool) -> TlsConfig:
        if raw is None:
            return cls()
        section = _mapping(raw, where)
        _check_keys(section, set(cls._KEYS), where)
        # the reference's TLS is on unless insecure: true
        insecure = _bool(section.get("insecure", False), f"{where}.insecure")
        pem = {k: _str(section.get(k, ""), f"{where}.{k}") for k in cls._PEM_KEYS}
        source = _mapping(section.get("source"), f"{where}.source")
        kind = _str(source.get("type", "none"), f"{where}.source.type")
        if kind in ("file", "pem"):
            _check_keys(source, {"type", "cert", "key"}, f"{where}.source")
            for part in ("cert", "key"):
                if part not in source:
                    raise ConfigError(f"{where}.source.{part} is required")
                pem[f"{part}_{kind}"] = _str(source[part], f"{where}.source.{part}")
        elif kind != "none":
            raise ConfigError(f"{where}.source.type: {kind!r} is not supported (file, pem, none)")
        for key, prefix in (("ca_source", "ca"), ("client_ca", "client_ca")):
            ca = _mapping(section.get(key), f"{where}.{key}")
            ca_kind = _str(ca.get("type", "none"), f"{where}.{key}.type")
            if ca_kind == "file":
                _check_keys(ca, {"type", "path"}, f"{where}.{key}")
                pem[f"{prefix}_file"] = _str(ca.get("path", ""), f"{where}.{key}.path")
            elif ca_kind == "pem":
                _check_keys(ca, {"type", "data"}, f"{where}.{key}")
                pem[f"{prefix}_pem"] = _str(ca.get("data", ""), f"{where}.{key}.data")
            elif ca_kind != "none":
                raise ConfigError(
                    f"{where}.{key}.type: {ca_kind!r} is not supported (file, pem, none)"
                )
        if server and not (pem["client_ca_file"] or pem["client_ca_pem"]):
            # older configs name the server's client CA ca_file
            pem["client_ca_file"], pem["client_ca_pem"] = pem["ca_file"], pem["ca_pem"]
        version = _str(section.get("tls_version", "tls1.3"), f"{where}.tls_version").lower()
        if version not in ("tls1.2", "tls1.3"):
            raise ConfigError(f"{where}.tls_version: expected tls1.2 or tls1.3, got {version!r}")
        skip = _bool(section.get("insecure_skip_verify", False), f"{where}.insecure_skip_verify")
        cfg = cls(insecure=insecure, insecure_skip_verify=skip, tls_version=version, **pem)
        if server and not insecure and not cfg.has_cert:
            raise ConfigError(
                f"{where}: TLS is on (insecure: false) but no cert_file/key_file (or source)"
            )
        return cfg

    _PEM_KEYS = (
        "cert_file",
        "key_file",
        "ca_file",
        "cert_pem",
        "key_pem",
        "ca_pem",
        "client_ca_file",
        "client_ca_pem",
    )


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """How a client link re-dials: fixed interval (the reference's default, 2 s) or
    exponential; ``max_attempts`` 0 means forever."""

    kind: str = "fixed_interval"
    interval: float = 2.0
    base: float = 0.1
    factor: float = 2.0
    max_delay: float = 10.0
    max_attempts: int = 0

    @classmethod
    def parse(cls, raw: object, where: str) -> BackoffConfig:
        if raw is None:
            return cls()
        s = _mapping(raw, where)
        kind = _str(s.get("type", "fixed_interval"), f"{where}.type")
        if kind == "fixed_interval":
            _check_keys(s, {"type", "interval", "max_attempts"}, where)
            return cls(
                kind=kind,
                interval=parse_duration(s.get("interval", 2.0), f"{where}.interval"),
                max_attempts=_int(s.get("max_attempts", 0), f"{where}.max_attempts"),
            )
        if kind == "exponential":
            _check_keys(s, {"type", "base", "factor", "jitter", "max_attempts", "max_delay"}, where)
            return cls(
                kind=kind,
                base=parse_duration(s.get("base", 0.1), f"{where}.base"),
                factor=float(s.get("factor", 2.0)),
                max_delay=parse_duration(s.get("max_delay", 10.0), f"{where}.max_delay"),
                max_attempts=_int(s.get("max_attempts", 0), f"{where}.max_attempts"),
            )
        raise ConfigError(f"{where}.type: expected fixed_interval or exponential, got {kind!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before re-dial number ``attempt`` (0-based)."""
        if self.kind == "fixed_interval":
            return self.interval
        return float(min(self.max_delay, self.base * self.factor**attempt))


_JWT_ALGORITHMS = ("ES256", "EdDSA", "RS256")
_CLAIM_ALIASES = {
    "audience": "audience",
    "aud": "audience",
    "audiences": "audience",
    "issuer": "issuer",
    "iss": "issuer",
    "subject": "subject",
    "sub": "subject",
    "custom_claims": "custom_claims",
}


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Transport auth on the gRPC channel (``auth`` of a server or client; slim-wire.md §2.1):
    the ``authorization`` header of each stream, separate from the identity in the messages.

    ``kind`` is ``none``, ``basic`` (``username``/``password``), ``jwt`` (a server verifies
    ``Bearer`` tokens with a ``decoding`` key; a client signs its own with an ``encoding`` key,
    ``claims`` and ``duration``) or, client side only, ``static_jwt`` (a token read from
    ``file``, re-read when it changes). ``key_*`` is the reference's ``key: {type, algorithm,
    format: pem|jwk|jwks, key: {file|data}}``.
    """

    kind: str = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    file: str = ""
    duration: float = 3600.0
    audience: tuple[str, ...] = ()
    issuer: str = ""
    subject: str = ""
    custom_claims: Mapping[str, Any] = field(default_factory=dict, compare=False)
    key_type: str = ""
    key_algorithm: str = ""
    key_format: str = ""
    key_data: str = field(default="", repr=False)
    key_file: str = ""

    @classmethod
    def parse(cls, raw: object, where: str, *, server: bool) -> AuthConfig:
        s = _mapping(raw, where)
        kind = _str(s.get("type", "none"), f"{where}.type")
        kinds = ("basic", "jwt", "none") if server else ("basic", "static_jwt", "jwt", "none")
        if kind not in kinds:
            raise ConfigError(
                f"{where}.type: {kind!r} transport auth is not supported here "
                f"(expected one of {', '.join(kinds)})"
            )
        if kind == "none":
            _check_keys(s, {"type"}, where)
            return cls()
        if kind == "basic":
            _check_keys(s, {"type", "username", "password"}, where)
            user = _str(s.get("username", ""), f"{where}.username")
            password = _str(s.get("password", ""), f"{where}.password")
            if not user or not password:
                raise ConfigError(f"{where}: basic auth needs a non-empty username and password")
            return cls(kind=kind, username=user, password=password)
        duration = parse_duration(s.get("duration", 3600.0), f"{where}.duration")
        if kind == "static_jwt":
            _check_keys(s, {"type", "file", "duration"}, where)
            path = _str(s.get("file", ""), f"{where}.file")
            if not path:
                raise ConfigError(f"{where}.file: static_jwt needs the path of a token file")
            return cls(kind=kind, file=path, duration=duration)
        _check_keys(s, {"type", "claims", "duration", "key", "policy"}, where)
        if s.get("policy"):
            raise ConfigError(f"{where}.policy: JWT claim policies (rego/cel) are not supported")
        claims = _mapping(s.get("claims"), f"{where}.claims")
        _check_keys(claims, set(_CLAIM_ALIASES), f"{where}.claims")
        c = {_CLAIM_ALIASES[k]: v for k, v in claims.items() if v is not None}
        aud = c.get("audience", ())
        audience = (aud,) if isinstance(aud, str) else aud
        if not isinstance(audience, list | tuple):
            raise ConfigError(f"{where}.claims.audience: expected a list of strings")
        key = _mapping(s.get("key"), f"{where}.key")
        if not key:
            raise ConfigError(f"{where}.key is required")
        _check_keys(key, {"type", "algorithm", "format", "key"}, f"{where}.key")
        key_type = _str(key.get("type", ""), f"{where}.key.type")
        wanted = "decoding" if server else "encoding"
        if key_type != wanted:
            raise ConfigError(f"{where}.key.type: expected {wanted} here, got {key_type!r}")
        alg = _str(key.get("algorithm", ""), f"{where}.key.algorithm")
        if alg not in _JWT_ALGORITHMS:
            raise ConfigError(
                f"{where}.key.algorithm: {alg!r} is not supported ({', '.join(_JWT_ALGORITHMS)})"
            )
        fmt = _str(key.get("format", ""), f"{where}.key.format").lower()
        if fmt not in ("pem", "jwk", "jwks") or (not server and fmt == "jwks"):
            raise ConfigError(f"{where}.key.format: {fmt!r} is not usable here")
        data = _mapping(key.get("key"), f"{where}.key.key")
        _check_keys(data, {"file", "data"}, f"{where}.key.key")
        if len(data) != 1:
            raise ConfigError(f"{where}.key.key: expected exactly one of file or data")
        custom = _mapping(c.get("custom_claims"), f"{where}.claims.custom_claims")
        return cls(
            kind=kind,
            duration=duration,
            audience=tuple(_str(a, f"{where}.claims.audience") for a in audience),
            issuer=_str(c.get("issuer", ""), f"{where}.claims.issuer"),
            subject=_str(c.get("subject", ""), f"{where}.claims.subject"),
            custom_claims=dict(custom),
            key_type=key_type,
            key_algorithm=alg,
            key_format=fmt,
            key_data=_str(data.get("data", ""), f"{where}.key.key.data"),
            key_file=_str(data.get("file", ""), f"{where}.key.key.file"),
        )


_SERVER_KEYS = {
    "endpoint",
    "tls",
    "http2_only",
    "max_frame_size",
    "max_concurrent_streams",
    "max_header_list_size",
    "read_buffer_size",
    "write_buffer_size",
    "keepalive",
    "auth",
    "metadata",
    "require_header_mac",
    "negotiation_timeout_secs",
    "link_hmac_poll_interval_ms",
}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One listening endpoint (``host:port``; an ``http://`` prefix is accepted)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_DATAPLANE_PORT
    tls: TlsConfig = field(default_factory=TlsConfig)
    require_header_mac: bool = True
    negotiation_timeout: float = NEGOTIATION_TIMEOUT_S
    auth: AuthConfig = field(default_factory=AuthConfig)
    """Transport auth every stream must pass before link negotiation."""
    keepalive_time: float = 120.0
    """HTTP/2 PING interval on idle connections (reference ``keepalive.time``, 120 s)."""
    keepalive_timeout: float = 20.0
    """A PING unanswered this long closes the connection (reference ``keepalive.timeout``)."""

    @property
    def auth_type(self) -> str:
        return self.auth.kind

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, raw: object, where: str) -> ServerConfig:
        s = _mapping(raw, where)
        _check_keys(s, _SERVER_KEYS, where)
        if "endpoint" not in s:
            raise ConfigError(f"{where}.endpoint is required")
        endpoint = _str(s["endpoint"], f"{where}.endpoint")
        for scheme in ("ws://", "wss://", "unix://"):
            if endpoint.startswith(scheme):
                raise ConfigError(f"{where}.endpoint: {scheme} endpoints are not supported yet")
        host, port = split_host_port(endpoint, f"{where}.endpoint")
        keepalive = _mapping(s.get("keepalive"), f"{where}.keepalive")
        _check_keys(
            keepalive,
            {
                "max_connection_idle",
                "max_connection_age",
                "max_connection_age_grace",
                "time",
                "timeout",
            },
            f"{where}.keepalive",
        )
        return cls(
            host=host,
            port=port,
            tls=TlsConfig.parse(s.get("tls"), f"{where}.tls", server=True),
            require_header_mac=_bool(
                s.get("require_header_mac", True), f"{where}.require_header_mac"
            ),
            negotiation_timeout=parse_duration(
                s.get("negotiation_timeout_secs", NEGOTIATION_TIMEOUT_S),
                f"{where}.negotiation_timeout_secs",
            ),
            auth=AuthConfig.parse(s.get("auth"), f"{where}.auth", server=True),
            keepalive_time=parse_duration(keepalive.get("time", 120.0), f"{where}.keepalive.time"),
            keepalive_timeout=parse_duration(
                keepalive.get("timeout", 20.0), f"{where}.keepalive.timeout"
            ),
        )


_CLIENT_KEYS = {
    "endpoint",
    "origin",
    "server_name",
    "tls",
    "keepalive",
    "proxy",
    "connect_timeout",
    "request_timeout",
    "buffer_size",
    "headers",
    "auth",
    "backoff",
    "metadata",
    "link_id",
    "require_header_mac",
    "connection_type",
    "compression",
    "rate_limit",
}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One static outbound link. ``connection_type`` defaults to ``remote`` here (node-to-node
    links, which carry subscription propagation); the reference's client default is ``edge``."""

    endpoint: str
    link_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    connection_type: str = "remote"
    require_header_mac: bool = True
    tls: TlsConfig = field(default_factory=TlsConfig)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    connect_timeout: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    auth: AuthConfig = field(default_factory=AuthConfig)
    """Transport auth: the ``authorization`` header sent on every (re)connect."""
    server_name: str = ""
    """TLS: the name the server's certificate must carry (SNI), when not the endpoint's host."""
    keepalive_time: float = 60.0
    """HTTP/2 PING interval (reference ``keepalive.http2_keepalive``, 60 s)."""
    keepalive_timeout: float = 10.0
    """A PING unanswered this long drops the link, which is then re-dialled."""

    @classmethod
    def parse(cls, raw: object, where: str) -> ClientConfig:
        s = _mapping(raw, where)
        _check_keys(s, _CLIENT_KEYS, where)
        if "endpoint" not in s:
            raise ConfigError(f"{where}.endpoint is required")
        endpoint = _str(s["endpoint"], f"{where}.endpoint")
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.endpoint: expected http://host:port or https://host:port")
        ctype = _str(s.get("connection_type", "remote"), f"{where}.connection_type").lower()
        if ctype not in ("remote", "peer", "edge"):
            raise ConfigError(f"{where}.connection_type: expected edge, peer or remote")
        headers = _mapping(s.get("headers"), f"{where}.headers")
        keepalive = _mapping(s.get("keepalive"), f"{where}.keepalive")
        _check_keys(
            keepalive,
            {"tcp_keepalive", "http2_keepalive", "timeout", "keep_alive_while_idle"},
            f"{where}.keepalive",
        )
        link_id = s.get("link_id")
        return cls(
            endpoint=endpoint,
            link_id=_str(link_id, f"{where}.link_id") if link_id else str(uuid.uuid4()),
            connection_type=ctype,
            require_header_mac=_bool(
                s.get("require_header_mac", True), f"{where}.require_header_mac"
            ),
            tls=TlsConfig.parse(
                s.get("tls", {"insecure": not endpoint.startswith("https://")}),
                f"{where}.tls",
                server=False,
            ),
            backoff=BackoffConfig.parse(s.get("backoff"), f"{where}.backoff"),
            connect_timeout=parse_duration(s.get("connect_timeout", 0), f"{where}.connect_timeout"),
            headers=tuple((str(k), _str(v, f"{where}.headers.{k}")) for k, v in headers.items()),
            auth=AuthConfig.parse(s.get("auth"), f"{where}.auth", server=False),
            server_name=_str(s.get("server_name", ""), f"{where}.server_name"),
            keepalive_time=parse_duration(
                keepalive.get("http2_keepalive", 60.0), f"{where}.keepalive.http2_keepalive"
            ),
            keepalive_timeout=parse_duration(
                keepalive.get("timeout", 10.0), f"{where}.keepalive.timeout"
            ),
        )


def split_host_port(endpoint: str, where: str = "endpoint") -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``http(s)://host:port`` to (host, port)."""
    text = endpoint
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep:
            raise ConfigError(f"{where}: bad IPv6 endpoint {endpoint!r}")
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{where}: expected host:port, got {endpoint!r}")
    return host, int(port_text)


_SERVICE_KEYS = {"node_id", "domain_name", "group_name", "auth", "dataplane", "controller", "peers"}
_SERVICE_KEYS.add("authorization")  # slimwire: node-enforced policies (docs/authorization.md)
_DATAPLANE_KEYS = {
    "enforce_pqc",
    "servers",
    "clients",
    # slimwire extensions
    "max_message_size",
    "slow_consumer_timeout",
    "bad_mac_limit",
}


@dataclass(frozen=True, slots=True)
class OpenTelemetryConfig:
    """``tracing.opentelemetry``, in the reference's shape (``enabled``, ``grpc: {endpoint}``,
    ``service_name``, ``service_version``, ``environment``, ``metrics_interval_secs``).

    slimwire exports spans over OTLP/HTTP (protobuf), the exporter of its ``[otel]`` extra, so
    ``endpoint`` is a collector's OTLP/HTTP receiver (``http://collector:4318``; the
    ``/v1/traces`` path is added when missing). The reference's key ``grpc.endpoint`` is read
    as the same address; ``endpoint`` (ours) wins when both are given. ``sample_ratio`` (ours,
    default 1.0 as in the reference) applies to traces a message starts without a parent."""

    enabled: bool = False
    endpoint: str = "http://localhost:4318"
    service_name: str = "slim-data-plane"
    service_version: str = "v0.1.0"
    environment: str = "development"
    sample_ratio: float = 1.0


def _opentelemetry(raw: object, where: str) -> OpenTelemetryConfig | None:
    defaults = OpenTelemetryConfig()
    if raw is None:
        return None
    section = _mapping(raw, where)
    _check_keys(
        section,
        {
            "enabled",
            "grpc",
            "endpoint",
            "service_name",
            "service_version",
            "environment",
            "metrics_interval_secs",
            "sample_ratio",
        },
        where,
    )
    endpoint = defaults.endpoint
    grpc = _mapping(section.get("grpc"), f"{where}.grpc")
    if grpc.get("endpoint"):
        endpoint = _str(grpc["endpoint"], f"{where}.grpc.endpoint")
    if section.get("endpoint"):
        endpoint = _str(section["endpoint"], f"{where}.endpoint")
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    ratio = section.get("sample_ratio", 1.0)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
        raise ConfigError(f"{where}.sample_ratio: expected a number from 0 to 1")
    return OpenTelemetryConfig(
        enabled=_bool(section.get("enabled", False), f"{where}.enabled"),
        endpoint=endpoint,
        service_name=_str(
            section.get("service_name", defaults.service_name), f"{where}.service_name"
        ),
        service_version=_str(
            section.get("service_version", defaults.service_version),
            f"{where}.service_version",
        ),
        environment=_str(section.get("environment", defaults.environment), f"{where}.environment"),
        sample_ratio=float(ratio),
    )


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs; the slimwire-only knobs live under ``dataplane``:
    ``max_message_size`` (bytes, default 4 MiB), ``slow_consumer_timeout`` (how long a
    destination may stay over its high-water mark before it is closed, default 30 s) and
    ``bad_mac_limit`` (bad MACs in a row that close a link, default 100)."""

    node_id: str = field(default_factory=lambda: f"node-{uuid.uuid4()}")
    domain_name: str = ""
    servers: tuple[ServerConfig, ...] = (ServerConfig(),)
    clients: tuple[ClientConfig, ...] = ()
    enforce_pqc: bool = False
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    slow_consumer_timeout: float = 30.0
    bad_mac_limit: int = 100
    log_level: str = "info"
    drain_timeout: float = 10.0
    ignored: tuple[str, ...] = ()
    """Sections the reference knows and we accept but do not act on (logged at start)."""
    authorization: AuthorizationConfig | None = None
    """``services.slim/N.authorization``: the policy the node enforces on its apps (None: no
    checks, as in the reference). See ``slimwire.policy._config``."""
    opentelemetry: OpenTelemetryConfig | None = None
    """``tracing.opentelemetry`` when given: a span per forwarded message that carries a W3C
    ``traceparent`` (see ``slimwire.tracing``); off unless ``enabled``."""
    control: Mapping[str, Any] | None = field(default=None, compare=False)
    """The whole ``services.slim/N`` section when it has a ``controller`` (None otherwise):
    ``slimwire.control.start_node_control`` reads what it needs from it (controller clients and
    servers, ``auth`` to sign the registration, ``domain_name``, ``dataplane.servers``)."""


def parse_config(data: Mapping[str, Any] | str, source: str = "<config>") -> NodeConfig:
    """Validate a loaded YAML document (or YAML text) into a :class:`NodeConfig`."""
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    root = _substitute(_mapping(data, source))
    _check_keys(root, {"tracing", "runtime", "services"}, "config")
    ignored: list[str] = []
    tracing = _mapping(root.get("tracing"), "tracing")
    _check_keys(
        tracing,
        {"log_level", "display_thread_names", "display_thread_ids", "filter", "opentelemetry"},
        "tracing",
    )
    log_level = _str(tracing.get("log_level", "info"), "tracing.log_level").lower()
    if log_level not in ("trace", "debug", "info", "warn", "warning", "error"):
        raise ConfigError(f"tracing.log_level: unknown level {log_level!r}")
    runtime = _mapping(root.get("runtime"), "runtime")
    _check_keys(runtime, {"n_cores", "thread_name", "drain_timeout"}, "runtime")
    drain = parse_duration(runtime.get("drain_timeout", 10.0), "runtime.drain_timeout")
    services = _mapping(root.get("services"), "services")
    if not services:
        raise ConfigError(f"{source}: no services configured (expected services: slim/0: ...)")
    if len(services) > 1:
        raise ConfigError(f"services: one slim/<n> service per process, got {sorted(services)}")
    ((svc_key, svc_raw),) = services.items()
    if not re.fullmatch(r"slim/\d+", str(svc_key)):
        raise ConfigError(f"unknown key services.{svc_key} (expected slim/<n>)")
    where = f"services.{svc_key}"
    svc = _mapping(svc_raw, where)
    _check_keys(svc, _SERVICE_KEYS, where)
    controlled = bool(svc.get("controller"))
    for section in ("auth", "controller", "peers"):
        # a controller section puts the node under a control plane, and auth signs its
        # registration there; without one, both are the reference's and unused here
        if svc.get(section) and not (controlled and section in ("auth", "controller")):
            ignored.append(f"{where}.{section}")
    dp = _mapping(svc.get("dataplane"), f"{where}.dataplane")
    _check_keys(dp, _DATAPLANE_KEYS, f"{where}.dataplane")
    servers_raw = dp.get("servers", [])
    clients_raw = dp.get("clients", [])
    if not isinstance(servers_raw, list) or not isinstance(clients_raw, list):
        raise ConfigError(f"{where}.dataplane.servers/clients: expected lists")
    servers = tuple(
        ServerConfig.parse(s, f"{where}.dataplane.servers[{i}]") for i, s in enumerate(servers_raw)
    )
    clients = tuple(
        ClientConfig.parse(c, f"{where}.dataplane.clients[{i}]") for i, c in enumerate(clients_raw)
    )
    node_id = svc.get("node_id")
    return NodeConfig(
        node_id=_str(node_id, f"{where}.node_id") if node_id else f"node-{uuid.uuid4()}",
        domain_name=_str(svc.get("domain_name", ""), f"{where}.domain_name"),
        servers=servers,
        clients=clients,
        enforce_pqc=_bool(dp.get("enforce_pqc", False), f"{where}.dataplane.enforce_pqc"),
        max_message_size=_int(
            dp.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE),
            f"{where}.dataplane.max_message_size",
        ),
        slow_consumer_timeout=parse_duration(
            dp.get("slow_consumer_timeout", 30.0), f"{where}.dataplane.slow_consumer_timeout"
        ),
        bad_mac_limit=_int(dp.get("bad_mac_limit", 100), f"{where}.dataplane.bad_mac_limit"),
        log_level="warning" if log_level == "warn" else log_level,
        drain_timeout=drain,
        ignored=tuple(ignored),
        authorization=_authorization(svc.get("authorization"), f"{where}.authorization"),
        opentelemetry=_opentelemetry(tracing.get("opentelemetry"), "tracing.opentelemetry"),
        control=_control(svc, f"{where}.controller") if controlled else None,
    )


def _control(svc: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """Check the shape of ``controller`` (the rest is checked where it is used)."""
    controller = _mapping(svc.get("controller"), where)
    # the reference's keys; enforce_pqc and outbound_clients are accepted and not used here
    _check_keys(controller, {"clients", "servers", "outbound_clients", "enforce_pqc"}, where)
    for key in ("clients", "servers"):
        entries = controller.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise ConfigError(f"{where}.{key}: expected a list of mappings")
        for i, entry in enumerate(entries):
            if not isinstance(entry.get("endpoint"), str) or not entry["endpoint"]:
                raise ConfigError(f"{where}.{key}[{i}].endpoint: expected HOST:PORT or a URL")
    return svc


def _authorization(raw: object, where: str) -> AuthorizationConfig | None:
    if raw is None:
        return None
    from slimwire.policy._config import parse_authorization

    return parse_authorization(raw, where)


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a YAML node configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from exc
    return parse_config(text, str(p))


def default_config() -> NodeConfig:
    """The embedded default: one h2c server on 127.0.0.1:46357 with strict header MACs."""
    text = resources.files("slimwire").joinpath("default_node.yaml").read_text(encoding="utf-8")
    return parse_config(text, "default_node.yaml")
