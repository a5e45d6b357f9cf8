"""An app-side :class:`~slimwire.auth.TokenProvider` whose tokens come from the authority.

``token()`` must be synchronous and instant (the session layer calls it for every message), so
the provider keeps the current token and renews it in the background at ``refresh_at`` of its
lifetime (80 % by default). If a renewal fails it retries with backoff while the old token is
still valid; once it has expired, ``token()`` raises :class:`AuthError` rather than hand out a
token every receiver would refuse.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

from slimwire._tasks import BackgroundTask
from slimwire.auth._identity import Identity
from slimwire.authority._http import request_token
from slimwire.errors import AuthError, TransportError

__all__ = ["AuthorityTokenProvider"]

log = logging.getLogger(__name__)


class AuthorityTokenProvider:
    """Tokens for ``identity`` (its public key is what the token binds) under ``name``.

    ``await provider.refresh()`` fetches the first token; ``provider.start()`` keeps it fresh
    (``async with provider:`` does both, and stops on exit).
    """

    def __init__(
        self,
        identity: Identity,
        url: str,
        *,
        name: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        refresh_at: float = 0.8,
        retry_min: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < refresh_at < 1:
            raise ValueError("refresh_at is a fraction of the lifetime in (0, 1)")
        self._identity = identity
        self.url = url
        self.name = name
        self._client_id = client_id
        self._secret = client_secret
        self._ssl = ssl_context
        self.refresh_at = refresh_at
        self.retry_min = retry_min
        self._clock = clock
        self._token: str | None = None
        self._issued_at = 0.0
        self._expires_at = 0.0
        self.subject: str | None = None
        self._renewal = BackgroundTask(self.run, f"authority token renewal ({name})", log)

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def expires_at(self) -> float:
        return self._expires_at

    def token(self) -> str:
        if self._token is None:
            raise AuthError("no token yet: await AuthorityTokenProvider.refresh() first")
        if self._clock() >= self._expires_at:
            raise AuthError("the authority token has expired and could not be renewed")
        return self._token

    async def refresh(self) -> None:
        """Fetch a new token now (raises :class:`AuthError`/:class:`TransportError`)."""
        answer = await request_token(
            self.url,
            name=self.name,
            public_key=self._identity.public_key,
            client_id=self._client_id,
            client_secret=self._secret,
            ssl_context=self._ssl,
        )
        expires = answer.get("expires_at")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise AuthError("authority answer has no expires_at")
        self._token = answer["token"]
        self._issued_at = self._clock()
        self._expires_at = float(expires)
        self.subject = answer.get("subject")
        log.debug("authority token renewed, expires at %s", expires)

    def _next_refresh(self) -> float:
        lifetime = max(0.0, self._expires_at - self._issued_at)
        return max(0.0, self._issued_at + lifetime * self.refresh_at - self._clock())

    async def run(self) -> None:
        """Keep the token fresh until cancelled."""
        backoff = self.retry_min
        while True:
            await asyncio.sleep(self._next_refresh())
            try:
                await self.refresh()
                backoff = self.retry_min
            except (AuthError, TransportError) as exc:
                log.warning("authority token renewal failed (retry in %.0f s): %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)

    def start(self) -> asyncio.Task[None]:
        """Renew in the background (idempotent); the renewal task."""
        return self._renewal.start()

    async def stop(self) -> None:
        """Stop renewing (idempotent); the current token stays usable until it expires."""
        await self._renewal.stop()

    async def __aenter__(self) -> AuthorityTokenProvider:
        await self.refresh()
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"AuthorityTokenProvider({self.url!r}, name={self.name!r}, subject={self.subject!r})"
