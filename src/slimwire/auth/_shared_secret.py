"""The reference's shared-secret identity token: provider (issue) and verifier (check).

Format: ``<id>:<unix_ts>:<nonce>:<claims>:<mac>`` where ``nonce`` is 12 random bytes and
``claims`` is ``{"pubkey": base64(public key)}`` as compact JSON, both base64url without padding,
and ``mac`` is base64url(HMAC-SHA256(secret, everything before the last colon)). Every app that
shares the secret can check every other app's tokens; the ``pubkey`` claim is what binds the
token to the key that signs session headers. Tokens are fresh per message (a new nonce each).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from slimwire.auth._identity import Identity
from slimwire.errors import AuthError

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_VALIDITY_WINDOW",
    "MIN_SECRET_LEN",
    "ParsedToken",
    "SharedSecretProvider",
    "SharedSecretVerifier",
    "TokenClaims",
    "parse_token",
]

MIN_SECRET_LEN = 32
DEFAULT_VALIDITY_WINDOW = 3600
DEFAULT_CLOCK_SKEW = 5
_NONCE_LEN = 12
_MAC_B64_LEN = 43
_MAX_TS_DIGITS = 20


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    if not text or len(text) % 4 == 1:
        raise ValueError("bad base64url length")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret_bytes(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_LEN:
        raise AuthError(f"shared secret is too short: {len(raw)} bytes, need {MIN_SECRET_LEN}")
    return raw


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says: subject, times, and the custom claims (``pubkey``)."""

    subject: str
    issued_at: int
    expires_at: int
    custom: Mapping[str, Any] = field(default_factory=dict)

    @property
    def public_key(self) -> bytes | None:
        """The signature public key bound to this token, if it carries one."""
        value = self.custom.get("pubkey")
        if not isinstance(value, str):
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None


class ParsedToken(NamedTuple):
    """The five fields of a shared-secret token, decoded but **not** authenticated."""

    token_id: str
    timestamp: int
    nonce: bytes
    claims: Mapping[str, Any]
    mac: bytes


def parse_token(token: str) -> ParsedToken:
    """Split and decode a token without checking its MAC or age (for logs and tooling).

    Raises :class:`AuthError` if the token is not in the shared-secret format.
    """
    parts = token.split(":")
    if len(parts) != 5:
        raise AuthError("malformed token: expected 5 fields")
    token_id, ts_text, nonce_b64, claims_b64, mac_b64 = parts
    if not ts_text.isascii() or not ts_text.isdigit() or len(ts_text) > _MAX_TS_DIGITS:
        raise AuthError("malformed token: bad timestamp")
    try:
        nonce = _b64url_decode(nonce_b64)
        mac = _b64url_decode(mac_b64)
    except (ValueError, binascii.Error):
        raise AuthError("malformed token: bad base64url field") from None
    return ParsedToken(token_id, int(ts_text), nonce, _decode_claims(claims_b64), mac)


class SharedSecretProvider:
    """Issues tokens for an :class:`Identity` under a shared secret (at least 32 bytes)."""

    __slots__ = ("_claims_b64", "_clock", "_hmac", "_identity", "_prefix")

    def __init__(
        self,
        identity: Identity,
        secret: str | bytes,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._identity = identity
        self._hmac = hmac.new(_secret_bytes(secret), digestmod=hashlib.sha256)
        claims = json.dumps(
            {"pubkey": base64.b64encode(identity.public_key).decode()}, separators=(",", ":")
        )
        self._claims_b64 = _b64url(claims.encode())
        self._prefix = identity.token_id + ":"
        self._clock = clock

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def token_id(self) -> str:
        return self._identity.token_id

    def token(self) -> str:
        """A fresh token (current time, new nonce)."""
        nonce = _b64url(os.urandom(_NONCE_LEN))
        body = f"{self._prefix}{int(self._clock())}:{nonce}:{self._claims_b64}"
        mac = self._hmac.copy()
        mac.update(body.encode())
        return f"{body}:{_b64url(mac.digest())}"

    def __repr__(self) -> str:
        return f"SharedSecretProvider({self._identity.token_id!r})"


@functools.lru_cache(maxsize=256)
def _decode_claims(claims_b64: str) -> Mapping[str, Any]:
    # The claims part is constant per peer (it only changes when its key does).
    if not claims_b64:
        return {}
    try:
        value = json.loads(_b64url_decode(claims_b64))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise AuthError("token claims are not base64url JSON") from None
    if not isinstance(value, dict):
        raise AuthError("token claims are not a JSON object")
    return value


class SharedSecretVerifier:
    """Checks shared-secret tokens: shape, MAC, validity window and clock skew.

    A replay cache (off by default, as in the reference) rejects a (nonce, ts) seen before.
    """

    __slots__ = ("_clock", "_hmac", "_replay", "_replay_max", "clock_skew", "validity_window")

    def __init__(
        self,
        secret: str | bytes,
        *,
        validity_window: int = DEFAULT_VALIDITY_WINDOW,
        clock_skew: int = DEFAULT_CLOCK_SKEW,
        replay_cache: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hmac = hmac.new(_secret_bytes(secret), digestmod=hashlib.sha256)
        self.validity_window = validity_window
        self.clock_skew = clock_skew
        self._replay: OrderedDict[tuple[str, int], None] | None = (
            OrderedDict() if replay_cache else None
        )
        self._replay_max = replay_cache or 0
        self._clock = clock

    def verify(self, token: str) -> TokenClaims:
        """Return the token's claims, or raise :class:`AuthError` saying why it is refused."""
        message, sep, mac_b64 = token.rpartition(":")
        if not sep:
            raise AuthError("malformed token: no fields")
        parts = message.split(":", 3)
        if len(parts) != 4 or ":" in parts[3]:
            raise AuthError("malformed token: expected 5 fields")
        token_id, ts_text, nonce, claims_b64 = parts
        if not ts_text.isascii() or not ts_text.isdigit() or len(ts_text) > _MAX_TS_DIGITS:
            raise AuthError("malformed token: bad timestamp")
        ts = int(ts_text)
        if ts >= 1 << 64:
            raise AuthError("malformed token: bad timestamp")
        now = int(self._clock())
        if ts > now:
            if ts - now > self.clock_skew:
                raise AuthError("token is from the future (beyond the allowed clock skew)")
        elif now - ts > self.validity_window:
            raise AuthError("token has expired")
        if len(mac_b64) != _MAC_B64_LEN:
            raise AuthError("malformed token: bad MAC length")
        try:
            tag = _b64url_decode(mac_b64)
        except (ValueError, binascii.Error):
            raise AuthError("malformed token: MAC is not base64url") from None
        mac = self._hmac.copy()
        mac.update(message.encode())
        if not hmac.compare_digest(mac.digest(), tag):
            raise AuthError("token MAC does not verify")
        if self._replay is not None:
            self._check_replay(nonce, ts, now)
        return TokenClaims(token_id, ts, ts + self.validity_window, _decode_claims(claims_b64))

    def _check_replay(self, nonce: str, ts: int, now: int) -> None:
        assert self._replay is not None
        while self._replay:
            (_, old_ts) = next(iter(self._replay))
            if now - old_ts <= self.validity_window:
                break
            self._replay.popitem(last=False)
        key = (nonce, ts)
        if key in self._replay:
            raise AuthError("token replayed")
        if len(self._replay) >= self._replay_max:
            self._replay.popitem(last=False)
        self._replay[key] = None

    def __repr__(self) -> str:
        return (
            f"SharedSecretVerifier(validity_window={self.validity_window}, "
            f"clock_skew={self.clock_skew}, replay_cache={self._replay is not None})"
        )
