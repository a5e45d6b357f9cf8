"""JSON Web Keys (RFC 7517): public keys for JWT verification, and where they come from.

A verifier needs the issuer's public keys by ``kid``. They come from a static list, a JWKS file
on disk (re-read when its mtime changes) or a JWKS URL (an authority's
``/.well-known/jwks.json``). A URL source is fetched lazily, cached for ``ttl`` seconds and
refetched early when a token names a ``kid`` it does not know - that is how key rotation reaches
verifiers without a restart. Refetches on unknown kids are rate limited, so a stream of tokens
with random kids cannot turn a verifier into an amplifier against the issuer. On an event
loop's thread a URL source never fetches inline: it serves what it has and fetches in the
background (see :class:`JwksUrl`), so a new kid cannot stall the loop.

Only the algorithms :mod:`slimwire.auth._jwt` signs with are understood: EC P-256 (ES256), OKP
Ed25519 (EdDSA) and RSA (RS256). A key's JWK type pins its algorithm: an RSA key is never used to
check an EC or HMAC signature, whatever the token header claims.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from slimwire.errors import AuthError

__all__ = [
    "JwkKey",
    "JwksFile",
    "JwksUrl",
    "JwsAlgorithm",
    "KeySource",
    "PublicKey",
    "StaticKeys",
    "jwks_document",
    "parse_jwks",
]

log = logging.getLogger(__name__)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_MAX_JWKS_BYTES = 1 << 20
_MIN_RSA_BITS = 2048


class JwsAlgorithm(enum.Enum):
    """The JWS ``alg`` values slimwire signs and verifies (``none`` and HS* never)."""

    ES256 = "ES256"
    EDDSA = "EdDSA"
    RS256 = "RS256"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or len(text) % 4 == 1 or "=" in text:
        raise ValueError("bad base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("bad base64url") from None


def algorithm_for_key(key: PublicKey) -> JwsAlgorithm:
    """The one algorithm a key may be used with."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"only P-256 EC keys are supported, got {key.curve.name}")
        return JwsAlgorithm.ES256
    if isinstance(key, ed25519.Ed25519PublicKey):
        return JwsAlgorithm.EDDSA
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"RSA keys below {_MIN_RSA_BITS} bits are refused")
        return JwsAlgorithm.RS256
    raise TypeError(f"unsupported public key type {type(key).__name__}")


@dataclass(frozen=True, slots=True)
class JwkKey:
    """A public verification key with its ``kid`` and the algorithm it is pinned to."""

    kid: str
    key: PublicKey
    algorithm: JwsAlgorithm

    @classmethod
    def of(cls, kid: str, key: PublicKey) -> JwkKey:
        return cls(kid, key, algorithm_for_key(key))

    def to_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 7517/7518/8037), with ``kid``, ``alg`` and ``use: sig``."""
        out: dict[str, str]
        key = self.key
        if isinstance(key, ec.EllipticCurvePublicKey):
            nums = key.public_numbers()
            out = {
                "kty": "EC",
                "crv": "P-256",
                "x": b64url(nums.x.to_bytes(32, "big")),
                "y": b64url(nums.y.to_bytes(32, "big")),
            }
        elif isinstance(key, ed25519.Ed25519PublicKey):
            from cryptography.hazmat.primitives import serialization

            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            out = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        else:
            rnums = key.public_numbers()
            out = {
                "kty": "RSA",
                "n": b64url(rnums.n.to_bytes((rnums.n.bit_length() + 7) // 8, "big")),
                "e": b64url(rnums.e.to_bytes((rnums.e.bit_length() + 7) // 8, "big")),
            }
        out.update(kid=self.kid, alg=self.algorithm.value, use="sig")
        return out

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> JwkKey:
        """Parse one public JWK; raises ``ValueError`` naming what is wrong."""
        if not isinstance(jwk, Mapping):
            raise ValueError("a JWK must be a JSON object")
        if "d" in jwk:
            raise ValueError("refusing a JWK that contains a private key")
        kid = jwk.get("kid", "")
        if not isinstance(kid, str):
            raise ValueError("JWK kid must be a string")
        kty = jwk.get("kty")
        key: PublicKey
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise ValueError(f"unsupported EC curve {jwk.get('crv')!r}")
            x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
            if len(x) != 32 or len(y) != 32:
                raise ValueError("P-256 JWK coordinates must be 32 bytes")
            key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            ).public_key()
        elif kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise ValueError(f"unsupported OKP curve {jwk.get('crv')!r}")
            x = b64url_decode(jwk.get("x", ""))
            if len(x) != 32:
                raise ValueError("Ed25519 JWK x must be 32 bytes")
            key = ed25519.Ed25519PublicKey.from_public_bytes(x)
        elif kty == "RSA":
            n = int.from_bytes(b64url_decode(jwk.get("n", "")), "big")
            e = int.from_bytes(b64url_decode(jwk.get("e", "")), "big")
            key = rsa.RSAPublicNumbers(e, n).public_key()
        else:
            raise ValueError(f"unsupported JWK kty {kty!r}")
        parsed = cls.of(kid, key)
        alg = jwk.get("alg")
        if alg is not None and alg != parsed.algorithm.value:
            raise ValueError(f"JWK alg {alg!r} does not fit a {kty} key")
        return parsed


def parse_jwks(data: bytes | str | Mapping[str, Any]) -> tuple[JwkKey, ...]:
    """Parse a JWKS document. Keys we cannot use (other curves, encryption keys) are skipped with
    a debug log, as a shared JWKS may hold them; a document that is not a JWKS raises."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuthError(f"JWKS is not JSON: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise AuthError("JWKS must be an object with a 'keys' list")
    keys: list[JwkKey] = []
    for i, item in enumerate(data["keys"]):
        if isinstance(item, Mapping) and item.get("use", "sig") != "sig":
            continue
        try:
            keys.append(JwkKey.from_jwk(item))
        except (ValueError, TypeError) as exc:
            log.debug("JWKS key %d skipped: %s", i, exc)
    return tuple(keys)


def jwks_document(keys: Iterable[JwkKey]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [k.to_jwk() for k in keys]}


class KeySource(Protocol):
    """Where a verifier finds public keys. ``keys(kid)`` never does I/O beyond a cheap check;
    ``refresh()`` may (a file read, an HTTP fetch) and returns whether anything changed."""

    def keys(self, kid: str | None) -> Sequence[JwkKey]: ...

    def refresh(self) -> bool: ...


def _select(keys: Sequence[JwkKey], kid: str | None) -> Sequence[JwkKey]:
    if kid is None:
        return keys
    return [k for k in keys if k.kid == kid]


class StaticKeys:
    """A fixed key list (configured keys, tests)."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[JwkKey | PublicKey]) -> None:
        out: list[JwkKey] = []
        for i, k in enumerate(keys):
            out.append(k if isinstance(k, JwkKey) else JwkKey.of(str(i), k))
        self._keys = tuple(out)

    def keys(self, kid: str | None) -> Sequence[JwkKey]:
        found = _select(self._keys, kid)
        # A static key without a matching kid is still a candidate: configured keys often
        # carry no kid at all, and the algorithm pin keeps the choice safe.
        return found or self._keys

    def refresh(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"StaticKeys({[k.kid for k in self._keys]})"


class JwksFile:
    """A JWKS file, re-read when its mtime changes or a token names an unknown kid."""

    __slots__ = ("_keys", "_lock", "_mtime", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._keys: tuple[JwkKey, ...] = ()
        self._mtime: int | None = None
        self._lock = threading.Lock()
        self.refresh()
        if self._mtime is None:
            raise AuthError(f"JWKS file {self.path} cannot be read")

    def refresh(self) -> bool:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
                if mtime == self._mtime:
                    return False
                keys = parse_jwks(self.path.read_bytes()[:_MAX_JWKS_BYTES])
            except (OSError, AuthError) as exc:
                log.warning("JWKS file %s not (re)loaded: %s", self.path, exc)
                return False
            self._keys, self._mtime = keys, mtime
            return True

    def keys(self, kid: str | None) -> Sequence[JwkKey]:
        return _select(self._keys, kid)

    def __repr__(self) -> str:
        return f"JwksFile({str(self.path)!r}, kids={[k.kid for k in self._keys]})"


class JwksUrl:
    """A JWKS fetched over HTTP(S) with ``urllib`` and cached.

    The keys are fetched on first use, when the cache is older than ``ttl`` and when the
    verifier meets an unknown kid (:meth:`refresh`, at most once per ``min_interval``: tokens
    with random kids must not turn us into an amplifier against the issuer).

    **Where the fetch runs.** The session layer and the node's policy engine are sans-IO and
    call the synchronous ``JwtVerifier.verify`` on the event loop's thread, so a fetch there
    would stall every connection for up to ``timeout`` seconds, and a forged kid would be a
    cheap way to do it. So on a thread that runs an asyncio event loop (``blocking=None``, the
    default) nothing here does network I/O: the cached keys are served, and a missing or
    expired cache or an unknown kid starts **one background fetch** (a daemon thread; never
    more than one in flight) while the token at hand is refused with "...; JWKS refresh
    scheduled". Its sender's retry (or a reliable session's retransmission) then finds the
    keys. After ``ttl`` the old keys keep being served while the new ones load
    (stale-while-revalidate), and a failed fetch keeps the old keys. Elsewhere (CLI tools,
    worker threads, :meth:`JwtVerifier.averify`) a fetch blocks the caller, as it always did.
    ``blocking=True``/``False`` forces one behaviour.

    Apps and nodes should ``await prefetch()`` at start-up, so that the first tokens they see
    verify at once instead of being refused while the keys load.
    """

    __slots__ = (
        "_fetched_at",
        "_inflight",
        "_keys",
        "_last_attempt",
        "_last_error",
        "_lock",
        "_opener",
        "blocking",
        "clock",
        "min_interval",
        "timeout",
        "ttl",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_interval: float = 5.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        opener: Callable[[str, float], bytes] | None = None,
        blocking: bool | None = None,
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"JWKS URL must be http or https, got {url!r}")
        self.url = url
        self.ttl = ttl
        self.min_interval = min_interval
        self.timeout = timeout
        self.clock = clock
        self.blocking = blocking
        self._opener = opener or _http_get
        self._keys: tuple[JwkKey, ...] = ()
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._inflight: Future[_Outcome] | None = None
        # Held only to read or swap state, never across a fetch: the event loop's thread
        # takes it too, and must never wait for the network.
        self._lock = threading.Lock()

    # -- KeySource -----------------------------------------------------------------------

    def keys(self, kid: str | None) -> Sequence[JwkKey]:
        if self._stale():
            if self._may_block():
                self._fetch_now(rate_limited=True)
            else:
                self._fetch_in_background()
        return _select(self._keys, kid)

    def refresh(self) -> bool:
        """Refetch (rate limited); whether the key set changed. Off a loop's thread this
        blocks; on it, the fetch is started in the background and this returns False."""
        if self._may_block():
            return self._fetch_now(rate_limited=True)
        self._fetch_in_background()
        return False

    # -- for callers -----------------------------------------------------------------------

    async def prefetch(self) -> None:
        """Fetch the keys now, off the event loop, and wait for them; await it at start-up.

        Not rate limited (it is the application's own call, not a token's doing); joins a
        fetch already in flight. Raises :class:`AuthError` with the reason when the fetch
        fails - callers that would rather start anyway log it: verification then retries in
        the background.
        """
        claim = self._claim(rate_limited=False)
        assert claim is not None  # only a rate-limited claim can be refused
        future, mine = claim
        if mine:
            self._spawn(future)
        outcome = await asyncio.wrap_future(future)
        if outcome.error is not None:
            raise AuthError(f"JWKS {self.url} not fetched: {outcome.error}")

    @property
    def refreshing(self) -> bool:
        """Whether a fetch is in flight."""
        return self._inflight is not None

    def refresh_status(self) -> str | None:
        """Why a key may be missing right now, for the verifier's refusal; None if nothing is
        pending and the last fetch worked (the key is then simply not published)."""
        with self._lock:
            if self._inflight is not None:
                return "JWKS refresh scheduled"
            if self._last_error is None or self._last_attempt is None:
                return None
            wait = max(0.0, self.min_interval - (self.clock() - self._last_attempt))
            return f"last JWKS fetch failed ({self._last_error}); next attempt in {wait:.0f}s"

    # -- the fetch -------------------------------------------------------------------------

    def _may_block(self) -> bool:
        if self.blocking is not None:
            return self.blocking
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self.clock() - fetched > self.ttl

    def _claim(self, *, rate_limited: bool) -> tuple[Future[_Outcome], bool] | None:
        """The fetch to wait for: the one in flight (False), or a new one that the caller must
        run (True); None when rate limited."""
        with self._lock:
            if self._inflight is not None:
                return self._inflight, False
            now = self.clock()
            last = self._last_attempt
            if rate_limited and last is not None and now - last < self.min_interval:
                return None
            self._last_attempt = now
            future: Future[_Outcome] = Future()
            # RUNNING cannot be cancelled: an awaiting prefetch() that is cancelled must not
            # cancel the fetch under the feet of the thread that completes it.
            future.set_running_or_notify_cancel()
            self._inflight = future
            return future, True

    def _fetch_now(self, *, rate_limited: bool) -> bool:
        claim = self._claim(rate_limited=rate_limited)
        if claim is None:
            return False
        future, mine = claim
        if mine:
            self._run(future)
        try:
            # a fetch may take a connect and a read timeout; never wait for ever on another's
            return future.result(timeout=None if mine else 2 * self.timeout + 1).changed
        except TimeoutError:
            return False

    def _fetch_in_background(self) -> None:
        claim = self._claim(rate_limited=True)
        if claim is not None and claim[1]:
            log.debug("JWKS %s: fetch scheduled in the background", self.url)
            self._spawn(claim[0])

    def _spawn(self, future: Future[_Outcome]) -> None:
        thread = threading.Thread(target=self._run, args=(future,), name="jwks-fetch", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # no thread to be had (interpreter shutting down)
            self._finish(future, None, f"cannot start a fetch thread: {exc}")

    def _run(self, future: Future[_Outcome]) -> None:
        """Fetch, store and complete ``future``, on whichever thread may block."""
        try:
            keys = parse_jwks(self._opener(self.url, self.timeout))
        except _FETCH_ERRORS as exc:
            self._finish(future, None, str(exc) or type(exc).__name__)
        except BaseException as exc:
            # A bug, not a network failure: still end the fetch, or no other would ever start.
            self._last_error = f"unexpected {type(exc).__name__}: {exc}"
            log.exception("JWKS %s: fetch failed unexpectedly", self.url)
            with self._lock:
                self._inflight = None
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._finish(future, keys, None)

    def _finish(
        self, future: Future[_Outcome], keys: tuple[JwkKey, ...] | None, error: str | None
    ) -> None:
        with self._lock:
            changed = keys is not None and {k.kid for k in keys} != {k.kid for k in self._keys}
            if keys is not None:
                self._keys, self._fetched_at = keys, self._last_attempt
            self._last_error = error
        # Logged before the fetch counts as ended, so whoever saw it end also sees the log.
        if error is not None:
            log.warning(
                "JWKS %s not fetched: %s (next attempt no sooner than %gs)",
                self.url,
                error,
                self.min_interval,
            )
        elif changed:
            log.info("JWKS %s: key ids now %s", self.url, sorted(k.kid for k in keys or ()))
        with self._lock:
            self._inflight = None
        future.set_result(_Outcome(changed, error))

    def __repr__(self) -> str:
        return f"JwksUrl({self.url!r}, kids={[k.kid for k in self._keys]})"


class _Outcome(NamedTuple):
    """How one fetch ended: whether the key ids changed, or why it failed."""

    changed: bool
    error: str | None


_FETCH_ERRORS = (OSError, AuthError, http.client.HTTPException, ValueError)


@runtime_checkable
class _BackgroundSource(Protocol):
    """A key source that may be loading keys in the background (:class:`JwksUrl`): the
    verifier asks it why a key is missing and lets callers load it ahead of time."""

    def refresh_status(self) -> str | None: ...

    async def prefetch(self) -> None: ...


async def prefetch_keys(*verifiers: object) -> None:
    """Await each verifier's ``prefetch()`` (those that have one: a :class:`JwtVerifier`, and
    the composite verifiers that pass it on), so that an app's or a node's first peers are not
    refused while a JWKS URL loads. A failed fetch is logged, not raised: the verifier fetches
    again in the background, and a node or app that cannot reach its issuer still starts."""
    for verifier in verifiers:
        prefetch = getattr(verifier, "prefetch", None)
        if prefetch is None:
            continue
        try:
            await prefetch()
        except AuthError as exc:
            log.warning("%s; starting anyway (the keys are fetched again when needed)", exc)


def _http_get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = getattr(response, "status", 200)
        if status != 200:
            raise OSError(f"HTTP {status}")
        data: bytes = response.read(_MAX_JWKS_BYTES + 1)
    if len(data) > _MAX_JWKS_BYTES:
        raise OSError("JWKS document too large")
    return data
