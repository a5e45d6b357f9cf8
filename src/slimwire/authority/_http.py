"""A small HTTP/1.1 front for the authority (and a matching client), on asyncio streams.

Two endpoints: ``GET /.well-known/jwks.json`` (public keys, cacheable) and ``POST /v1/token``
(JSON in: ``client_id``/``client_secret`` unless the TLS client certificate identifies the
client, plus ``name``, ``public_key`` (base64), optional ``did``; JSON out: ``token``,
``expires_at``, ``subject``, ``kid``). One request per connection, ``Content-Length`` bodies
only, strict size limits: the authority answers a handful of requests per app per token lifetime,
so simplicity beats keep-alive. The request parser is sans-IO (:func:`parse_request`).

TLS: with ``client_ca`` the server asks for a client certificate (optional, so secret-based
clients can use the same port); a certificate that does not chain to ``client_ca`` fails the
handshake, and a verified certificate's subject CN is the client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


class HttpError(RemoteProtocolError):
    """A malformed or unacceptable HTTP request; ``status`` is the answer to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


def parse_request(data: bytes) -> tuple[HttpRequest, int] | None:
    """Parse one request from the start of ``data``: ``(request, bytes used)``, or None while
    incomplete. Raises :class:`HttpError` for anything malformed or over the limits."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEADER_BYTES:
            raise HttpError(431, "request header too large")
        return None
    if end > MAX_HEADER_BYTES:
        raise HttpError(431, "request header too large")
    try:
        head = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "request header is not ASCII") from None
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[0].isalpha():
        raise HttpError(400, "bad request line")
    method, target, _ = parts
    if not target.startswith("/"):
        raise HttpError(400, "bad request target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise HttpError(400, "bad header line")
        key = name.lower()
        if key in headers and key in ("content-length", "transfer-encoding"):
            raise HttpError(400, f"duplicate {name}")
        headers[key] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(501, "transfer-encoding is not supported")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or len(length_text) > 9:
        raise HttpError(400, "bad content-length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, "request body too large")
    start = end + 4
    if len(data) < start + length:
        return None
    path = urllib.parse.urlsplit(target).path
    return HttpRequest(method, path, headers, data[start : start + length]), start + length


def _response(status: int, payload: Mapping[str, Any], extra: str = "") -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        f"{extra}\r\n"
    )
    return head.encode() + body


def _peer_cn(writer: asyncio.StreamWriter) -> str | None:
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return None
    cert = obj.getpeercert()
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
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        log.info("authority listening on %s", self.url)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.request_timeout):
                buf = b""
                parsed = None
                while parsed is None:
                    chunk = await reader.read(8192)
                    if not chunk:
                        return
                    buf += chunk
                    parsed = parse_request(buf)
            # Off the loop: a secret check is a deliberate ~50 ms of scrypt, plus SQLite.
            status, payload = await asyncio.to_thread(self._dispatch, parsed[0], _peer_cn(writer))
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except (TimeoutError, ConnectionError, ssl.SSLError) as exc:
            log.debug("authority connection dropped: %s", exc)
            writer.close()
            return
        try:
            writer.write(_response(status, payload))
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

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
    """One HTTP/1.1 request with a JSON body; ``(status, decoded JSON)``. Raises
    :class:`TransportError` when the connection or TLS fails."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    if tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    port = parts.port or (443 if tls else 80)
    data = json.dumps(body).encode() if body is not None else b""
    host_header = parts.netloc
    head = (
        f"{method} {parts.path or '/'} HTTP/1.1\r\nHost: {host_header}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    )
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                parts.hostname, port, ssl=ssl_context if tls else None
            )
            try:
                writer.write(head.encode() + data)
                await writer.drain()
                raw = await reader.read(MAX_BODY_BYTES + MAX_HEADER_BYTES)
            finally:
                writer.close()
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise TransportError(f"{method} {url} failed: {exc}") from exc
    head_bytes, sep, payload = raw.partition(b"\r\n\r\n")
    status_line = head_bytes.split(b"\r\n", 1)[0].split(b" ")
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise TransportError(f"{method} {url}: no valid HTTP response")
    try:
        decoded = json.loads(payload) if payload else None
    except ValueError:
        decoded = None
    return int(status_line[1]), decoded


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
