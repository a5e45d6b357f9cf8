"""The authentication service's core: authenticate a client, issue its identity JWT, publish
the JWKS, rotate signing keys with overlap. No sockets here (the HTTP driver is ``_http.py``).

A token binds three things an app presents: its SLIM **name** (which the client's registration
must allow), its signature **public key** (the MLS/e2e-header key, as the ``pubkey`` claim) and
the **DID** of that key (``did:key``, also the ``sub``, as in the reference's did:key mesh where
``kid``/``sub`` are DIDs). It also carries ``client_id`` and the client's ``groups`` for policies.

Rotation keeps the old key in the JWKS until every token it signed has expired (``lifetime`` +
``leeway`` after the rotation), so verifiers that refetch on an unknown ``kid`` never see a
valid token they cannot check.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slimwire.auth._did import did_key_from_public_key
from slimwire.auth._jwks import JwsAlgorithm, jwks_document
from slimwire.auth._jwt import DEFAULT_LEEWAY, JwtSigner
from slimwire.authority._store import AuthorityStore, ClientRecord, KeyRecord
from slimwire.errors import AuthError
from slimwire.names import Name

__all__ = ["Authority", "IssuedToken", "RequestError", "TokenRequest"]

log = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 900


class RequestError(AuthError):
    """A token request refused; ``status`` is the HTTP status the driver answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What a client asks for: a name, its signature public key, optionally its DID."""

    name: str
    public_key: bytes
    did: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenRequest:
        if not isinstance(data, Mapping):
            raise RequestError(400, "request body must be a JSON object")
        name, pubkey, did = data.get("name"), data.get("public_key"), data.get("did")
        if not isinstance(name, str) or not isinstance(pubkey, str):
            raise RequestError(400, "name and public_key (base64) are required strings")
        if did is not None and not isinstance(did, str):
            raise RequestError(400, "did must be a string")
        try:
            raw = base64.b64decode(pubkey, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "public_key is not base64") from None
        return cls(name, raw, did)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: int
    subject: str
    kid: str

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "token_type": "JWT",
            "expires_at": self.expires_at,
            "subject": self.subject,
            "kid": self.kid,
        }


class Authority:
    """Issues tokens for registered clients; keys and clients live in an :class:`AuthorityStore`.

    ``issuer`` goes in ``iss`` (conventionally the authority's base URL), ``audience`` in
    ``aud``. ``lifetime`` is the token lifetime (short: 15 minutes by default; providers renew).
    ``rotate_every`` (seconds, optional) rotates the signing key when :meth:`tick` finds the
    current one older than that.
    """

    def __init__(
        self,
        store: AuthorityStore,
        *,
        issuer: str,
        audience: str = "slim",
        lifetime: int = DEFAULT_TOKEN_LIFETIME,
        algorithm: JwsAlgorithm = JwsAlgorithm.ES256,
        rotate_every: float | None = None,
        leeway: int = DEFAULT_LEEWAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.algorithm = algorithm
        self.rotate_every = rotate_every
        self.leeway = leeway
        self.clock = clock
        self._keys: list[KeyRecord] = store.keys()
        if not any(k.retire_after is None for k in self._keys):
            self.rotate()

    @property
    def current(self) -> KeyRecord:
        return next(k for k in self._keys if k.retire_after is None)

    def rotate(self) -> str:
        """Start signing with a fresh key; the previous one stays published until the last
        token it signed expires. Returns the new ``kid``."""
        now = self.clock()
        kid = f"{int(now)}-{secrets.token_hex(4)}"
        signer = JwtSigner.generate(self.algorithm, kid)
        for old in self._keys:
            if old.retire_after is None:
                self.store.retire_key(old.kid, now + self.lifetime + self.leeway)
        self.store.add_key(signer, now)
        self.store.prune_keys(now)
        self._keys = self.store.keys()
        log.info("authority signing key rotated to %s", kid)
        return kid

    def tick(self) -> bool:
        """Housekeeping a driver calls now and then: prune retired keys, rotate when due.
        Returns whether the key was rotated."""
        now = self.clock()
        if self.store.prune_keys(now):
            self._keys = self.store.keys()
        if self.rotate_every is not None and now - self.current.created_at >= self.rotate_every:
            self.rotate()
            return True
        return False

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys verifiers need: the current one and those still inside overlap."""
        now = self.clock()
        live = [
            k.signer.public for k in self._keys if k.retire_after is None or k.retire_after >= now
        ]
        return jwks_document(live)

    # ---- authentication ----------------------------------------------------------------------

    def authenticate_secret(self, client_id: str, secret: str) -> ClientRecord:
        """The client, if ``secret`` is its secret; else :class:`RequestError` 401."""
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise RequestError(401, "client_id and client_secret are required")
        if not self.store.check_secret(client_id, secret):
            raise RequestError(401, "invalid client credentials")
        record = self.store.client(client_id)
        assert record is not None
        return record

    def authenticate_certificate(self, client_id: str | None) -> ClientRecord:
        """The client named by a verified TLS client certificate (its CN)."""
        record = self.store.client(client_id) if client_id else None
        if record is None or not record.allow_mtls:
            raise RequestError(401, f"certificate subject {client_id!r} is not an mTLS client")
        return record

    # ---- issuing -------------------------------------------------------------------------------

    def issue(self, client: ClientRecord, request: TokenRequest) -> IssuedToken:
        try:
            name = Name.parse(request.name)
        except ValueError as exc:
            raise RequestError(400, f"bad name: {exc}") from None
        short = "/".join(name.components)
        if not any(fnmatch.fnmatchcase(short, pattern) for pattern in client.names):
            raise RequestError(403, f"client {client.client_id!r} may not use the name {short}")
        try:
            did = did_key_from_public_key(request.public_key)
        except ValueError as exc:
            raise RequestError(400, f"bad public_key: {exc}") from None
        if request.did is not None and request.did != did:
            raise RequestError(400, "did does not match public_key")
        now = int(self.clock())
        key = self.current
        jti = secrets.token_urlsafe(12)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": did,
            "aud": [self.audience],
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": jti,
            "name": short,
            "did": did,
            "client_id": client.client_id,
            "groups": list(client.groups),
            "pubkey": base64.b64encode(request.public_key).decode("ascii"),
        }
        token = key.signer.sign(claims)
        self.store.record_issued(
            jti, client.client_id, did, kid=key.kid, issued=now, expires=now + self.lifetime
        )
        log.info("issued token %s to %s for %s", jti, client.client_id, short)
        return IssuedToken(token, now + self.lifetime, did, key.kid)

    def __repr__(self) -> str:
        return f"Authority(issuer={self.issuer!r}, kid={self.current.kid!r})"
