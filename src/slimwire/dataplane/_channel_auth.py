"""Transport auth on the gRPC channel: the ``authorization`` header of a data-plane stream.

This is the reference's tower layer auth (``crates/config/src/auth/*``), separate from the
identity tokens inside messages (slim-wire.md §2.1): a server checks the header of every new
stream *before* link negotiation and ends a stream that fails with gRPC ``UNAUTHENTICATED``; a
client puts the header on every (re)connect. Both sides are plain objects built from
:class:`slimwire.config.AuthConfig` so the node only asks "is this header good?" and "what header
do I send now?".

* ``basic``: ``Basic base64(user:password)``; the server compares user and password with
  :func:`hmac.compare_digest`, both always, so timing tells nothing about which part was wrong.
* ``jwt`` (server): ``Bearer <jwt>`` verified by :class:`slimwire.auth.JwtVerifier` against the
  configured decoding key (PEM, JWK, or a JWKS file re-read on change) with ``audience`` and
  ``issuer`` pinned when configured; ``exp`` is required.
* ``jwt`` (client): a token signed here with the encoding key, ``exp = now + duration``, issued
  again once 80 % of its lifetime has passed, so a reconnect never presents an expired token.
* ``static_jwt`` (client): a token file, re-read when its mtime or size changes (a sidecar
  rotates it) and at least every ``duration``.

The TLS contexts of listeners and links live here too (:func:`server_ssl_context`,
:func:`client_ssl_context`): TLS is the other half of channel security, and mTLS is a listener
with a client CA.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from slimwire.auth import JwkKey, JwksFile, JwtSigner, JwtVerifier, StaticKeys, parse_jwks
from slimwire.auth._jwks import JwsAlgorithm, KeySource, PublicKey
from slimwire.config import AuthConfig, TlsConfig
from slimwire.errors import AuthError, ConfigError

__all__ = [
    "BasicClientAuth",
    "BasicServerAuth",
    "ChannelClientAuth",
    "ChannelServerAuth",
    "JwtServerAuth",
    "SignedJwtClientAuth",
    "StaticJwtClientAuth",
    "authorization_header",
    "build_client_auth",
    "build_server_auth",
    "client_ssl_context",
    "server_ssl_context",
]

_log = logging.getLogger(__name__)

_MAX_TOKEN_FILE = 64 * 1024
_REFRESH_AT = 0.8


def authorization_header(headers: Iterable[tuple[str, str]]) -> str | None:
    """The request's ``authorization`` value (HTTP/2 header names are lowercase)."""
    for name, value in headers:
        if name == "authorization":
            return value
    return None


def _credentials(header: str | None, scheme: str) -> str | None:
    """The part after ``<scheme> `` (scheme case-insensitive, RFC 7235), else None."""
    if header is None:
        return None
    got, _, rest = header.strip().partition(" ")
    if got.lower() != scheme.lower() or not rest.strip():
        return None
    return rest.strip()


class ChannelServerAuth(Protocol):
    """Checks a new stream's request headers."""

    async def check(self, headers: Iterable[tuple[str, str]]) -> str | None:
        """None when the stream may go on, else why it is refused (for the log)."""
        ...


class ChannelClientAuth(Protocol):
    """Supplies the ``authorization`` value for the next connect."""

    def header(self) -> str:
        """Raises :class:`AuthError` when no credential can be produced now."""
        ...


class BasicServerAuth:
    """HTTP basic auth with one configured user, compared in constant time."""

    __slots__ = ("_password", "_user")

    def __init__(self, username: str, password: str) -> None:
        self._user = username.encode()
        self._password = password.encode()

    async def check(self, headers: Iterable[tuple[str, str]]) -> str | None:
        cred = _credentials(authorization_header(headers), "Basic")
        if cred is None:
            return "no basic credentials"
        try:
            user, sep, password = base64.b64decode(cred, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return "malformed basic credentials"
        ok_user = hmac.compare_digest(user, self._user)
        ok_password = hmac.compare_digest(password, self._password)
        if not (sep and ok_user and ok_password):
            return "wrong username or password"
        return None

    def __repr__(self) -> str:
        return f"BasicServerAuth(user={self._user.decode(errors='replace')!r})"


class JwtServerAuth:
    """``Authorization: Bearer <jwt>`` verified by a :class:`JwtVerifier`."""

    __slots__ = ("verifier",)

    def __init__(self, verifier: JwtVerifier) -> None:
        self.verifier = verifier

    async def check(self, headers: Iterable[tuple[str, str]]) -> str | None:
        token = _credentials(authorization_header(headers), "Bearer")
        if token is None:
            return "no bearer token"
        try:
            await self.verifier.averify(token)
        except AuthError as exc:
            return str(exc)
        return None

    def __repr__(self) -> str:
        return f"JwtServerAuth({self.verifier!r})"


class BasicClientAuth:
    __slots__ = ("_value",)

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._value = "Basic " + base64.b64encode(raw).decode("ascii")

    def header(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "BasicClientAuth(...)"


class StaticJwtClientAuth:
    """A bearer token from a file, re-read when the file changes or ``duration`` passed."""

    __slots__ = ("_clock", "_read_at", "_stamp", "_token", "duration", "path")

    def __init__(
        self,
        path: str | os.PathLike[str],
        duration: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.duration = duration
        self._clock = clock
        self._token = ""
        self._stamp: tuple[int, int] | None = None
        self._read_at = 0.0

    def header(self) -> str:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            now = self._clock()
            if stamp != self._stamp or now - self._read_at >= self.duration or not self._token:
                with self.path.open("rb") as f:
                    token = f.read(_MAX_TOKEN_FILE).decode("ascii").strip()
                self._token, self._stamp, self._read_at = token, stamp, now
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthError(f"cannot read the token file {self.path}: {exc}") from exc
        if not self._token:
            raise AuthError(f"the token file {self.path} is empty")
        return "Bearer " + self._token

    def __repr__(self) -> str:
        return f"StaticJwtClientAuth({str(self.path)!r})"


class SignedJwtClientAuth:
    """Bearer JWTs signed here, re-issued once 80 % of ``lifetime`` has passed."""

    __slots__ = ("_claims", "_clock", "_due", "_signer", "_token", "lifetime")

    def __init__(
        self,
        signer: JwtSigner,
        claims: dict[str, Any],
        lifetime: float = 3600.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        self._signer = signer
        self._claims = claims
        self.lifetime = lifetime
        self._clock = clock
        self._token = ""
        self._due = 0.0

    def header(self) -> str:
        now = self._clock()
        if not self._token or now >= self._due:
            iat = int(now)
            exp = iat + max(1, int(self.lifetime))
            self._token = self._signer.sign({**self._claims, "iat": iat, "nbf": iat, "exp": exp})
            self._due = now + self.lifetime * _REFRESH_AT
        return "Bearer " + self._token

    def __repr__(self) -> str:
        return f"SignedJwtClientAuth({self._signer!r}, lifetime={self.lifetime})"


def _key_bytes(cfg: AuthConfig, where: str) -> bytes:
    if cfg.key_data:
        return cfg.key_data.encode()
    try:
        return Path(cfg.key_file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}.key.key.file: cannot read {cfg.key_file}: {exc}") from exc


def _pinned(cfg: AuthConfig, algorithm: JwsAlgorithm, where: str) -> None:
    if algorithm.value != cfg.key_algorithm:
        raise ConfigError(
            f"{where}.key.algorithm: {cfg.key_algorithm} does not fit the key ({algorithm.value})"
        )


def _decoding_keys(cfg: AuthConfig, where: str) -> KeySource:
    try:
        if cfg.key_format == "jwks":
            if cfg.key_file:
                return JwksFile(cfg.key_file)
            return StaticKeys(parse_jwks(cfg.key_data))
        data = _key_bytes(cfg, where)
        if cfg.key_format == "jwk":
            jwk = JwkKey.from_jwk(json.loads(data))
        else:
            pub: Any = serialization.load_pem_public_key(data)
            if not isinstance(
                pub, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
            ):
                raise ConfigError(f"{where}.key: unsupported public key type")
            key: PublicKey = pub
            jwk = JwkKey.of("configured", key)
    except (AuthError, ValueError) as exc:
        raise ConfigError(f"{where}.key: cannot load the decoding key: {exc}") from exc
    _pinned(cfg, jwk.algorithm, where)
    return StaticKeys([jwk])


def _signer(cfg: AuthConfig, where: str) -> JwtSigner:
    if cfg.key_format != "pem":
        raise ConfigError(f"{where}.key.format: an encoding key must be PEM")
    try:
        priv: Any = serialization.load_pem_private_key(_key_bytes(cfg, where), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.key: cannot load the encoding key: {exc}") from exc
    if not isinstance(
        priv, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise ConfigError(f"{where}.key: unsupported private key type")
    signer = JwtSigner(priv, "configured")
    _pinned(cfg, signer.algorithm, where)
    return signer


def build_server_auth(cfg: AuthConfig, where: str = "auth") -> ChannelServerAuth | None:
    """The check for a server's ``auth`` section (None for ``none``)."""
    if cfg.kind == "basic":
        return BasicServerAuth(cfg.username, cfg.password)
    if cfg.kind == "jwt":
        verifier = JwtVerifier(
            _decoding_keys(cfg, where),
            audience=cfg.audience or None,
            issuer=cfg.issuer or None,
            algorithms=[JwsAlgorithm(cfg.key_algorithm)],
        )
        return JwtServerAuth(verifier)
    if cfg.kind != "none":
        raise ConfigError(f"{where}.type: {cfg.kind!r} is not a server auth")
    return None


def build_client_auth(
    cfg: AuthConfig, where: str = "auth", *, default_subject: str = "slimwire"
) -> ChannelClientAuth | None:
    """The header source for a client's ``auth`` section (None for ``none``)."""
    if cfg.kind == "basic":
        return BasicClientAuth(cfg.username, cfg.password)
    if cfg.kind == "static_jwt":
        return StaticJwtClientAuth(cfg.file, cfg.duration)
    if cfg.kind == "jwt":
        claims: dict[str, Any] = dict(cfg.custom_claims)
        claims["sub"] = cfg.subject or default_subject
        if cfg.issuer:
            claims["iss"] = cfg.issuer
        if cfg.audience:
            claims["aud"] = list(cfg.audience)
        return SignedJwtClientAuth(_signer(cfg, where), claims, cfg.duration)
    if cfg.kind != "none":
        raise ConfigError(f"{where}.type: {cfg.kind!r} is not a client auth")
    return None


def _tls_base(purpose: ssl.Purpose, tls: TlsConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose)
    if tls.tls_version == "tls1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.has_cert:
        _load_cert_chain(ctx, tls)
    return ctx


def _load_cert_chain(ctx: ssl.SSLContext, tls: TlsConfig) -> None:
    """``load_cert_chain`` reads files only: inline PEM goes through a private temp dir that
    is gone as soon as the context holds the key."""
    if not (tls.cert_pem or tls.key_pem):
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        return
    with tempfile.TemporaryDirectory(prefix="slimwire-tls-") as tmp:
        cert, key = tls.cert_file, tls.key_file
        for name, pem in (("cert.pem", tls.cert_pem), ("key.pem", tls.key_pem)):
            if pem:
                path = f"{tmp}/{name}"
                with open(path, "w", encoding="ascii", opener=_private) as f:
                    f.write(pem)
                cert, key = (path, key) if name == "cert.pem" else (cert, path)
        ctx.load_cert_chain(cert, key)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """A listener's TLS; with a client CA (``client_ca``) it is mTLS: a client must present a
    certificate chaining to that CA, or the handshake fails."""
    if tls.insecure:
        return None
    ctx = _tls_base(ssl.Purpose.CLIENT_AUTH, tls)
    if tls.requires_client_cert:
        ctx.load_verify_locations(
            cafile=tls.client_ca_file or None, cadata=tls.client_ca_pem or None
        )
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(tls: TlsConfig, endpoint: str) -> ssl.SSLContext | None:
    """A link's TLS (https:// endpoints): the server is verified against ``ca_file``/
    ``ca_source`` (or the system roots), and our cert/key is presented for mTLS."""
    if not endpoint.startswith("https://"):
        return None
    ctx = _tls_base(ssl.Purpose.SERVER_AUTH, tls)
    if tls.ca_file or tls.ca_pem:
        ctx.load_verify_locations(cafile=tls.ca_file or None, cadata=tls.ca_pem or None)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
