"""JWT identity tokens: JWS compact serialization, an issuing provider and a verifier.

The reference's JWT identity (``crates/auth/src/jwt.rs``) is a plain RFC 7519 token: header
``{"alg", "typ": "JWT", "kid"}``, claims ``sub``, ``iat``, ``nbf``, ``exp`` (plus ``iss``/``aud``
when configured) and, flattened at the top level, the custom claims - among them ``pubkey``, the
base64 (standard) MLS signature public key. Verifiers read ``pubkey`` at the top level or under
``custom_claims`` (``identity_claims.rs``), and so do we.

JWS is written here on ``cryptography`` rather than taken from a JWT library, for two reasons:
no new dependency, and the security-relevant choices stay visible in one place. Those choices:

* the algorithm comes from the **key**, never from the token: a token's ``alg`` must equal the
  algorithm its candidate key is pinned to, ``none`` and HMAC are never accepted, and an RSA key
  is never fed an ``ES256``/``HS256`` signature (no algorithm confusion);
* ES256 signatures are the raw 64-byte ``r || s`` of RFC 7518 §3.4, not DER;
* ``exp`` is required, ``nbf``/``iat`` are honoured with a clock-skew leeway, ``aud`` must meet
  the configured audience, ``crit`` headers are refused (we implement no extensions).

A verifier caches verified tokens by their exact string until they expire (bounded LRU): a token
is reused for its whole lifetime by its provider, so a node or an app pays one signature check
per distinct token, then a dict lookup.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from slimwire.auth._identity import Identity
from slimwire.auth._jwks import (
    JwkKey,
    JwsAlgorithm,
    KeySource,
    PublicKey,
    StaticKeys,
    _BackgroundSource,
    algorithm_for_key,
    b64url,
    b64url_decode,
)
from slimwire.auth._shared_secret import TokenClaims
from slimwire.errors import AuthError

__all__ = [
    "DEFAULT_JWT_LIFETIME",
    "DEFAULT_LEEWAY",
    "JwtProvider",
    "JwtSigner",
    "JwtVerifier",
    "PrivateKey",
    "check_token_key",
    "decode_unverified",
    "token_public_key",
]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

DEFAULT_JWT_LIFETIME = 3600
DEFAULT_LEEWAY = 5
_MAX_TOKEN_LEN = 16 * 1024
_ES256_SIG_LEN = 64
_REGISTERED = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")


def _json_b64(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=False).encode())


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _verify(jwk: JwkKey, signature: bytes, data: bytes) -> bool:
    key = jwk.key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != _ES256_SIG_LEN:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


class JwtSigner:
    """A private JWS key with its ``kid``; the algorithm follows from the key type."""

    __slots__ = ("_key", "algorithm", "kid")

    def __init__(self, key: PrivateKey, kid: str) -> None:
        self._key = key
        self.kid = kid
        self.algorithm = algorithm_for_key(key.public_key())

    @classmethod
    def generate(cls, algorithm: JwsAlgorithm, kid: str) -> JwtSigner:
        key: PrivateKey
        if algorithm is JwsAlgorithm.ES256:
            key = ec.generate_private_key(ec.SECP256R1())
        elif algorithm is JwsAlgorithm.EDDSA:
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, kid)

    @property
    def private_key(self) -> PrivateKey:
        return self._key

    @property
    def public(self) -> JwkKey:
        """The verification key, as published in a JWKS."""
        pub: PublicKey = self._key.public_key()
        return JwkKey(self.kid, pub, self.algorithm)

    def sign(self, claims: Mapping[str, Any], *, kid: str | None = None) -> str:
        """The compact JWS of ``claims`` (``kid`` overrides the header kid)."""
        header = {
            "alg": self.algorithm.value,
            "typ": "JWT",
            "kid": self.kid if kid is None else kid,
        }
        signing_input = f"{_json_b64(header)}.{_json_b64(claims)}"
        signature = _sign(self._key, signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"

    def __repr__(self) -> str:
        return f"JwtSigner({self.algorithm.value}, kid={self.kid!r})"


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split a compact JWS into (header, claims, signing input, signature) **without** checking
    anything but its shape. For verifiers and tooling; never trust the result by itself."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LEN:
        raise AuthError("malformed JWT: too long or not text")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("malformed JWT: expected 3 dot-separated parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise AuthError("malformed JWT: a part is not base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError("malformed JWT: header and claims must be JSON objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def token_public_key(claims: Mapping[str, Any]) -> bytes | None:
    """The ``pubkey`` claim (top level first, then ``custom_claims``), base64-decoded."""
    value = claims.get("pubkey")
    if not isinstance(value, str):
        custom = claims.get("custom_claims")
        value = custom.get("pubkey") if isinstance(custom, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def check_token_key(claims: TokenClaims, public_key: bytes) -> None:
    """Require that a verified token binds ``public_key`` - the key that signed the MLS leaf or
    the e2e header. This is what makes a token-holder's signatures attributable to the token's
    subject; without it, a stolen token would vouch for any key. Raises :class:`AuthError`."""
    bound = claims.public_key
    if bound is None:
        raise AuthError(f"token of {claims.subject!r} carries no pubkey claim")
    if bound != bytes(public_key):
        raise AuthError(f"token of {claims.subject!r} is bound to a different signature key")


class JwtProvider:
    """Issues an app's identity JWT and reuses it until ``refresh_at`` of its lifetime.

    Implements :class:`slimwire.auth.TokenProvider`. The token carries ``sub`` (the identity's
    token id unless given), ``iat``/``nbf``/``exp``, optional ``iss``/``aud``, extra ``claims``
    and ``pubkey`` (top level, as the reference's flattened custom claims; or under
    ``custom_claims`` with ``pubkey_in_custom_claims=True``). Re-issuing before expiry (80 % of
    the lifetime by default) means a receiver never sees a token expire in flight.
    """

    __slots__ = (
        "_claims",
        "_clock",
        "_expires",
        "_identity",
        "_refresh_due",
        "_signer",
        "_token",
        "audience",
        "issuer",
        "lifetime",
        "pubkey_in_custom_claims",
        "refresh_at",
        "subject",
    )

    def __init__(
        self,
        identity: Identity,
        signer: JwtSigner,
        *,
        audience: str | Iterable[str] | None = None,
        issuer: str | None = None,
        subject: str | None = None,
        lifetime: int = DEFAULT_JWT_LIFETIME,
        refresh_at: float = 0.8,
        claims: Mapping[str, Any] | None = None,
        pubkey_in_custom_claims: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        if not 0 < refresh_at <= 1:
            raise ValueError("refresh_at is a fraction of the lifetime in (0, 1]")
        reserved = set(claims or ()) & {*_REGISTERED, "pubkey", "custom_claims"}
        if reserved:
            raise ValueError(f"extra claims may not set {sorted(reserved)}")
        self._identity = identity
        self._signer = signer
        self.audience = (
            None
            if audience is None
            else [audience]
            if isinstance(audience, str)
            else list(audience)
        )
        self.issuer = issuer
        self.subject = subject or identity.token_id
        self.lifetime = lifetime
        self.refresh_at = refresh_at
        self._claims = dict(claims or {})
        self.pubkey_in_custom_claims = pubkey_in_custom_claims
        self._clock = clock
        self._token: str | None = None
        self._refresh_due = 0.0
        self._expires = 0

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def expires_at(self) -> int:
        """``exp`` of the current token (0 before the first one)."""
        return self._expires

    def token(self) -> str:
        """The current token; a new one once ``refresh_at`` of the lifetime has passed."""
        now = self._clock()
        if self._token is None or now >= self._refresh_due:
            self._token = self._issue(int(now))
            self._refresh_due = now + self.lifetime * self.refresh_at
        return self._token

    def _issue(self, now: int) -> str:
        claims: dict[str, Any] = {}
        if self.issuer is not None:
            claims["iss"] = self.issuer
        claims["sub"] = self.subject
        if self.audience is not None:
            claims["aud"] = self.audience
        self._expires = now + self.lifetime
        claims.update(iat=now, nbf=now, exp=self._expires)
        claims.update(self._claims)
        pubkey = base64.b64encode(self._identity.public_key).decode("ascii")
        if self.pubkey_in_custom_claims:
            claims["custom_claims"] = {"pubkey": pubkey}
        else:
            claims["pubkey"] = pubkey
        return self._signer.sign(claims)

    def __repr__(self) -> str:
        return f"JwtProvider(sub={self.subject!r}, {self._signer!r}, lifetime={self.lifetime})"


class JwtVerifier:
    """Checks JWTs against a :class:`KeySource` (static keys, a JWKS file, a JWKS URL).

    Implements :class:`slimwire.auth.TokenVerifier`. ``audience=None`` skips the audience check
    (only for deployments that use a dedicated issuer); ``issuer`` pins ``iss`` when set.
    ``algorithms`` is the allow-list (a subset of ES256, EdDSA, RS256). ``leeway`` is the clock
    skew allowed on ``exp``, ``nbf`` and ``iat``. ``require_pubkey`` refuses tokens without the
    ``pubkey`` claim (what SLIM apps need). Verified tokens are cached (``cache_size`` entries,
    LRU) until their ``exp``.
    """

    __slots__ = (
        "_cache",
        "_cache_size",
        "_clock",
        "algorithms",
        "audience",
        "issuer",
        "leeway",
        "require_pubkey",
        "source",
    )

    def __init__(
        self,
        keys: KeySource | Iterable[JwkKey | PublicKey],
        *,
        audience: str | Iterable[str] | None,
        issuer: str | None = None,
        algorithms: Iterable[JwsAlgorithm] = tuple(JwsAlgorithm),
        leeway: int = DEFAULT_LEEWAY,
        require_pubkey: bool = False,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source: KeySource = StaticKeys(keys) if isinstance(keys, Iterable) else keys
        self.audience = (
            None
            if audience is None
            else frozenset([audience] if isinstance(audience, str) else audience)
        )
        self.issuer = issuer
        self.algorithms = frozenset(JwsAlgorithm(a) for a in algorithms)
        if not self.algorithms:
            raise ValueError("the algorithm allow-list is empty")
        self.leeway = leeway
        self.require_pubkey = require_pubkey
        self._cache_size = cache_size
        self._cache: OrderedDict[str, TokenClaims] = OrderedDict()
        self._clock = clock

    def verify(self, token: str) -> TokenClaims:
        """The token's claims, or :class:`AuthError` saying why it is refused.

        With a :class:`JwksUrl`, a key fetch (first use, TTL expiry, unknown kid) blocks when
        this runs off an event loop; on a loop's thread it never does: the fetch runs in the
        background and the token is refused now ("...; JWKS refresh scheduled"), to be accepted
        when its sender retries. :meth:`prefetch` at start-up avoids that for the first tokens;
        :meth:`averify` waits for the keys without blocking the loop.
        """
        cached = self._cached(token)
        if cached is not None:
            return cached
        claims = self._verify_uncached(token)
        self._remember(token, claims)
        return claims

    async def averify(self, token: str) -> TokenClaims:
        """:meth:`verify` for async callers: a cache hit is answered inline, a miss is verified in
        a worker thread so a JWKS fetch never stalls the event loop."""
        cached = self._cached(token)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.verify, token)

    async def prefetch(self) -> None:
        """Load the key source's keys ahead of time (a JWKS URL: fetch it now, off the loop);
        a no-op for sources that need no loading. Apps and nodes await it at start-up, so that
        their first tokens are not refused while the keys load. Raises :class:`AuthError` when
        the fetch fails (the caller may log it and go on: fetches are retried)."""
        if isinstance(self.source, _BackgroundSource):
            await self.source.prefetch()

    def _cached(self, token: str) -> TokenClaims | None:
        claims = self._cache.get(token)
        if claims is None:
            return None
        if self._clock() > claims.expires_at + self.leeway:
            self._cache.pop(token, None)
            raise AuthError(f"token of {claims.subject!r} has expired")
        # averify() may run verify() in worker threads: another thread can evict in between.
        with contextlib.suppress(KeyError):
            self._cache.move_to_end(token)
        return claims

    def _remember(self, token: str, claims: TokenClaims) -> None:
        if self._cache_size <= 0:
            return
        self._cache[token] = claims
        while len(self._cache) > self._cache_size:
            try:
                self._cache.popitem(last=False)
            except KeyError:
                break

    def clear_cache(self) -> None:
        self._cache.clear()

    def _verify_uncached(self, token: str) -> TokenClaims:
        header, payload, signing_input, signature = decode_unverified(token)
        alg_text = header.get("alg")
        if alg_text in (None, "none") or not isinstance(alg_text, str):
            raise AuthError("JWT refused: unsigned (alg none)")
        try:
            alg = JwsAlgorithm(alg_text)
        except ValueError:
            raise AuthError(f"JWT refused: algorithm {alg_text!r} is not supported") from None
        if alg not in self.algorithms:
            raise AuthError(f"JWT refused: algorithm {alg_text} is not allowed")
        if "crit" in header:
            raise AuthError("JWT refused: critical header extensions are not supported")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed JWT: kid is not a string")
        candidates = [k for k in self.source.keys(kid) if k.algorithm is alg]
        if not candidates:
            # An unknown kid is how rotation shows up: fetch the JWKS again, once. Look again
            # even when refresh() reports no change of its own: a fetch that another thread
            # (or a JWKS URL's background fetch) just finished may have brought the key.
            self.source.refresh()
            candidates = [k for k in self.source.keys(kid) if k.algorithm is alg]
        if not candidates:
            note = (
                self.source.refresh_status() if isinstance(self.source, _BackgroundSource) else None
            )
            if note is not None:
                # On an event loop the source fetches in the background: say so, so that the
                # log line tells a key rotation (retry soon) from a forged kid or a dead JWKS.
                raise AuthError(f"JWT refused: unknown key id {kid!r} (no {alg.value} key); {note}")
            raise AuthError(f"JWT refused: no {alg.value} key for kid {kid!r}")
        if not any(_verify(k, signature, signing_input) for k in candidates):
            raise AuthError("JWT signature does not verify")
        return self._check_claims(payload)

    def _check_claims(self, payload: dict[str, Any]) -> TokenClaims:
        now = self._clock()
        exp = _time_claim(payload, "exp")
        assert exp is not None  # _time_claim raises for a missing exp
        if now > exp + self.leeway:
            raise AuthError("JWT has expired")
        nbf = _time_claim(payload, "nbf")
        if nbf is not None and now + self.leeway < nbf:
            raise AuthError("JWT is not yet valid (nbf)")
        iat = _time_claim(payload, "iat")
        if iat is not None and now + self.leeway < iat:
            raise AuthError("JWT is issued in the future (iat)")
        if self.issuer is not None and payload.get("iss") != self.issuer:
            raise AuthError(f"JWT refused: issuer {payload.get('iss')!r} is not trusted")
        if self.audience is not None:
            aud = payload.get("aud")
            auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not any(isinstance(a, str) and a in self.audience for a in auds):
                raise AuthError(f"JWT refused: audience {aud!r} is not ours")
        sub = payload.get("sub", payload.get("id"))
        if not isinstance(sub, str) or not sub:
            raise AuthError("JWT refused: no subject")
        custom = dict(payload)
        pubkey = token_public_key(payload)
        if pubkey is not None:
            custom["pubkey"] = base64.b64encode(pubkey).decode("ascii")
        elif self.require_pubkey:
            raise AuthError(f"JWT of {sub!r} carries no pubkey claim")
        issued = iat if iat is not None else nbf if nbf is not None else 0
        return TokenClaims(sub, int(issued), int(exp), MappingProxyType(custom))

    def __repr__(self) -> str:
        algs = sorted(a.value for a in self.algorithms)
        return f"JwtVerifier({self.source!r}, audience={self.audience}, algorithms={algs})"


def _time_claim(payload: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim, None when absent; AuthError when present but not a sane number."""
    value = payload.get(name)
    if value is None and name != "exp":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"malformed JWT: {name} is missing or not a number")
    if isinstance(value, int) and not 0 <= value < 1 << 63:
        raise AuthError(f"malformed JWT: {name} is out of range")
    if isinstance(value, float) and not (math.isfinite(value) and 0 <= value < 2.0**63):
        raise AuthError(f"malformed JWT: {name} is out of range")
    return float(value)
