"""A small HTTP/1.1 front for the authority (and a matching client), on asyncio streams.

Two endpoints: ``GET /.well-known/jwks.json`` (public keys, cacheable) and ``POST /v1/token``
(JSON in: ``client_id``/``client_secret`` unless the TLS client certificate identifies the
client, plus ``name``, ``public_key`` (base64), optional ``did``; JSON out: ``token``,
``expires_at``, ``subject``, ``kid``). One request per connection, ``Content-Length`` bodies
only, strict size limits: the authority answers a handful of requests per app per token lifetime,
so simplicity beats keep-alive. The HTTP itself (parser, server, client) is the package's one
small implementation, :mod:`slimwire._http`; this module is the authority's endpoints on it.

TLS: with ``client_ca`` the server asks for a client certificate (optional, so secret-based
clients can use the same port); a certificate that does not chain to ``client_ca`` fails the
handshake, and a verified certificate's subject CN is the client id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping
from typing import Any

from slimwire import _http
from slimwire._http import HttpError, HttpRequest
from slimwire._tasks import BackgroundTask
from slimwire.authority._service import Authority, RequestError, TokenRequest
from slimwire.errors import AuthError, RemoteProtocolError, TransportError

__all__ = [
    "AuthorityServer",
    "HttpError",
    "HttpRequest",
    "http_request",
    "parse_request",
    "request_token",
]

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
_LIMITS = _http.Limits(head=MAX_HEADER_BYTES, body=MAX_BODY_BYTES)


def parse_request(data: bytes) -> tuple[HttpRequest, int] | None:
    """Parse one request from the start of ``data``: ``(request, bytes used)``, or None while
    incomplete. Raises :class:`HttpError` for anything malformed or over the limits."""
    return _http.parse_request(data, _LIMITS)


def _json(status: int, payload: Mapping[str, Any]) -> _http.Response:
    return _http.Response(
        status, json.dumps(payload, separators=(",", ":")).encode(), "application/json"
    )


def _json_error(exc: HttpError) -> _http.Response:
    return _json(exc.status, {"error": str(exc)})


def _peer_cn(obj: ssl.SSLObject | None) -> str | None:
    if obj is None:
        return None
    cert: Any = obj.getpeercert()  # typeshed's subject type is looser than the real one
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class AuthorityServer:
    """Serves an :class:`Authority` over HTTP(S). ``async with AuthorityServer(...) as srv:``
    binds, ``srv.url`` is the base URL; ``tick_interval`` runs :meth:`Authority.tick`."""

    def __init__(
        self,
        authority: Authority,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        client_ca: str | None = None,
        tick_interval: float = 30.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.authority = authority
        self.host = host
        self.port = port
        self.tick_interval = tick_interval
        self.request_timeout = request_timeout
        self._ssl: ssl.SSLContext | None = None
        if certfile is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(certfile, keyfile)
            if client_ca is not None:
                ctx.load_verify_locations(client_ca)
                ctx.verify_mode = ssl.CERT_OPTIONAL
            self._ssl = ctx
        elif client_ca is not None:
            raise ValueError("mTLS (client_ca) needs a server certificate")
        self._server: _http.HttpServer | None = None
        self._ticker = BackgroundTask(self._tick, "authority housekeeping", log)

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        server = _http.HttpServer(
            self._handle,
            self.host,
            self.port,
            ssl_context=self._ssl,
            request_timeout=self.request_timeout,
            limits=_LIMITS,
            error=_json_error,
        )
        await server.start()
        self._server, self.port = server, server.port
        self._ticker.start()
        log.info("authority listening on %s", self.url)

    async def close(self) -> None:
        await self._ticker.stop()
        server, self._server = self._server, None
        if server is not None:
            await server.close()

    async def __aenter__(self) -> AuthorityServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.authority.tick()
            except Exception:  # keep serving; the error is logged
                log.exception("authority housekeeping failed")

    async def _handle(self, req: HttpRequest, tls: ssl.SSLObject | None) -> _http.Response:
        # Off the loop: a secret check is a deliberate ~50 ms of scrypt, plus SQLite.
        status, payload = await asyncio.to_thread(self._dispatch, req, _peer_cn(tls))
        return _json(status, payload)

    def _dispatch(self, req: HttpRequest, cert_cn: str | None) -> tuple[int, dict[str, Any]]:
        if req.path == "/.well-known/jwks.json":
            if req.method != "GET":
                return 405, {"error": "use GET"}
            return 200, dict(self.authority.jwks())
        if req.path == "/v1/token":
            if req.method != "POST":
                return 405, {"error": "use POST"}
            try:
                body = json.loads(req.body or b"null")
            except (ValueError, UnicodeDecodeError):
                return 400, {"error": "body is not JSON"}
            try:
                request = TokenRequest.from_json(body)
                if isinstance(body.get("client_secret"), str):
                    client = self.authority.authenticate_secret(
                        body.get("client_id"), body["client_secret"]
                    )
                elif cert_cn is not None:
                    client = self.authority.authenticate_certificate(cert_cn)
                else:
                    raise RequestError(401, "client_secret or a client certificate is required")
                issued = self.authority.issue(client, request)
            except RequestError as exc:
                log.info("token request refused (%d): %s", exc.status, exc)
                return exc.status, {"error": str(exc)}
            return 200, issued.to_json()
        return 404, {"error": f"no such endpoint {req.path}"}


async def http_request(
    method: str,
    url: str,
    body: Mapping[str, Any] | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One HTTP/1.1 request with a JSON body; ``(status, decoded JSON)`` (None when the answer
    is not JSON). Raises :class:`TransportError` when the connection or TLS fails or the
    answer is not HTTP."""
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        answer = await _http.request(
            method,
            url,
            data,
            headers=headers,
            ssl_context=ssl_context,
            timeout=timeout,
            max_body=MAX_BODY_BYTES,
        )
    except RemoteProtocolError as exc:
        raise TransportError(f"{method} {url}: {exc}") from exc
    try:
        decoded = json.loads(answer.body) if answer.body else None
    except (ValueError, UnicodeDecodeError):
        decoded = None
    return answer.status, decoded


async def request_token(
    base_url: str,
    *,
    name: str,
    public_key: bytes,
    client_id: str | None = None,
    client_secret: str | None = None,
    did: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Ask an authority for a token; the JSON answer, or :class:`AuthError` with its reason."""
    import base64

    body: dict[str, Any] = {"name": name, "public_key": base64.b64encode(public_key).decode()}
    if client_id is not None:
        body["client_id"] = client_id
    if client_secret is not None:
        body["client_secret"] = client_secret
    if did is not None:
        body["did"] = did
    status, answer = await http_request(
        "POST", base_url.rstrip("/") + "/v1/token", body, ssl_context=ssl_context, timeout=timeout
    )
    if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("token"), str):
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise AuthError(f"authority refused the token request ({status}): {reason}")
    return answer
