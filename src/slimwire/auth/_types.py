"""What the session layer needs from an identity scheme (shared secret today, JWT later)."""

from __future__ import annotations

from typing import Protocol

from slimwire.auth._identity import Identity
from slimwire.auth._shared_secret import TokenClaims

__all__ = ["TokenProvider", "TokenVerifier"]


class TokenProvider(Protocol):
    """Issues the token put in ``SLIMHeader.identity``; owns the signing identity."""

    @property
    def identity(self) -> Identity: ...

    def token(self) -> str: ...


class TokenVerifier(Protocol):
    """Checks a peer's token; raises :class:`slimwire.errors.AuthError` when refused."""

    def verify(self, token: str) -> TokenClaims: ...
