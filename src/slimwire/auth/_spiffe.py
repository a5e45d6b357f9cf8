"""SPIFFE JWT-SVIDs: JWTs whose ``sub`` is a SPIFFE ID, ``spiffe://<trust-domain>/<path>``.

A JWT-SVID is an ordinary JWT signed by the trust domain's JWT authority (its keys come from the
SPIFFE bundle, which is a JWKS), so verification is :class:`JwtVerifier`'s, plus one rule: the
subject must be a well-formed SPIFFE ID of a trusted trust domain. The reference's controller uses
exactly that to decide which domain a node belongs to (``verify_domain_membership``).

SPIRE cannot put arbitrary claims into an SVID, so the reference smuggles its custom claims
(``pubkey``) into the audience list as ``slim-claims:<base64 JSON>`` (``spire.rs``,
``CustomClaimsCodec``). :class:`SpiffeVerifier` decodes that audience entry into the claims, so
a SPIRE-issued token binds a signature key like any other.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from slimwire.auth._jwt import JwtVerifier
from slimwire.auth._shared_secret import TokenClaims
from slimwire.errors import AuthError

__all__ = ["SLIM_CLAIMS_PREFIX", "SpiffeId", "SpiffeVerifier", "encode_claims_audience"]

SLIM_CLAIMS_PREFIX = "slim-claims:"
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_MAX_ID_LEN = 2048


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A parsed SPIFFE ID (the SPIFFE-ID standard's syntax: lowercase trust domain, a path of
    non-empty segments that are neither ``.`` nor ``..``, no query or fragment)."""

    trust_domain: str
    path: str

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        if not isinstance(text, str) or len(text) > _MAX_ID_LEN:
            raise ValueError("a SPIFFE ID is a string of at most 2048 bytes")
        if not text.startswith("spiffe://"):
            raise ValueError(f"not a SPIFFE ID (scheme must be spiffe://): {text!r}")
        rest = text[len("spiffe://") :]
        domain, slash, path = rest.partition("/")
        if not _TRUST_DOMAIN.fullmatch(domain):
            raise ValueError(f"invalid SPIFFE trust domain {domain!r}")
        if slash:
            for segment in path.split("/"):
                if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
                    raise ValueError(f"invalid SPIFFE ID path segment {segment!r}")
        return cls(domain, "/" + path if slash else "")

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"


def encode_claims_audience(claims: dict[str, Any]) -> str:
    """The reference's audience entry that carries custom claims through SPIRE."""
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return SLIM_CLAIMS_PREFIX + base64.b64encode(payload).decode("ascii")


def _claims_from_audience(aud: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []:
        if isinstance(entry, str) and entry.startswith(SLIM_CLAIMS_PREFIX):
            try:
                value = json.loads(base64.b64decode(entry[len(SLIM_CLAIMS_PREFIX) :]))
            except (binascii.Error, ValueError, UnicodeDecodeError):
                continue  # the reference keeps such an entry as a plain audience
            if isinstance(value, dict):
                out.update(value)
    return out


class SpiffeVerifier:
    """A :class:`JwtVerifier` for JWT-SVIDs, restricted to ``trust_domains``.

    The claims it returns carry ``spiffe_id`` and ``trust_domain`` besides the token's own, and
    ``pubkey`` lifted out of a ``slim-claims:`` audience when the token has none at the top level.
    """

    __slots__ = ("jwt", "trust_domains")

    def __init__(self, jwt: JwtVerifier, trust_domains: Iterable[str]) -> None:
        self.jwt = jwt
        self.trust_domains = frozenset(trust_domains)
        if not self.trust_domains:
            raise ValueError("at least one trust domain is required")
        for domain in self.trust_domains:
            if not _TRUST_DOMAIN.fullmatch(domain):
                raise ValueError(f"invalid SPIFFE trust domain {domain!r}")

    def verify(self, token: str) -> TokenClaims:
        claims = self.jwt.verify(token)
        try:
            spiffe_id = SpiffeId.parse(claims.subject)
        except ValueError as exc:
            raise AuthError(f"JWT-SVID refused: {exc}") from None
        if spiffe_id.trust_domain not in self.trust_domains:
            raise AuthError(
                f"JWT-SVID refused: trust domain {spiffe_id.trust_domain!r} not trusted"
            )
        custom = dict(claims.custom)
        for key, value in _claims_from_audience(custom.get("aud")).items():
            custom.setdefault(key, value)
        custom["spiffe_id"] = str(spiffe_id)
        custom["trust_domain"] = spiffe_id.trust_domain
        return TokenClaims(
            claims.subject, claims.issued_at, claims.expires_at, MappingProxyType(custom)
        )

    async def prefetch(self) -> None:
        """Load the JWT verifier's keys ahead of time (see :meth:`JwtVerifier.prefetch`)."""
        await self.jwt.prefetch()

    def __repr__(self) -> str:
        return f"SpiffeVerifier({sorted(self.trust_domains)}, {self.jwt!r})"
