"""Identity tokens for outgoing messages: one per message, or one reused for a bounded time.

Minting a shared-secret token costs an HMAC, 12 random bytes and two base64 encodings per
message (~2.5 us, a sixth of a fire-and-forget publish). The reference's verifier accepts any
token inside its validity window (3600 s, 5 s of clock skew) and keeps no replay cache by
default, so a token reused for a few seconds is accepted exactly like a fresh one, and it does
not widen what a captured token allows: any token can already be replayed for an hour. What
reuse gives up is only the per-message nonce, which matters to a verifier that *does* run a
replay cache (ours can: ``SharedSecretVerifier(replay_cache=...)``): set ``reuse=0`` there.
Signed control messages always get a fresh token (they are rare, and a replay cache on them is
the reference's MLS replay defence).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from slimwire.auth import TokenProvider

__all__ = ["DEFAULT_TOKEN_REUSE", "TokenCache"]

DEFAULT_TOKEN_REUSE = 10.0
"""Seconds one token is stamped on data messages before a new one is minted."""


class TokenCache:
    """Hands out the provider's token, minting a new one every ``reuse`` seconds (0: always)."""

    __slots__ = ("_clock", "_expires", "_provider", "_token", "reuse")

    def __init__(
        self,
        provider: TokenProvider,
        reuse: float = DEFAULT_TOKEN_REUSE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if reuse < 0:
            raise ValueError("token reuse must be >= 0 seconds")
        self._provider = provider
        self.reuse = reuse
        self._clock = clock
        self._token = ""
        self._expires = float("-inf")

    def __repr__(self) -> str:
        return f"TokenCache(reuse={self.reuse}s)"

    def token(self) -> str:
        """The current token (a fresh one when the old one is older than ``reuse``)."""
        if self.reuse <= 0:
            return self._provider.token()
        now = self._clock()
        if now >= self._expires:
            self._token = self._provider.token()
            self._expires = now + self.reuse
        return self._token

    def fresh(self) -> str:
        """A token minted now, whatever the reuse setting (for signed control messages)."""
        return self._provider.token()
