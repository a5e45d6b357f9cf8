"""The one small HTTP/1.1 implementation behind slimwire's side endpoints.

Three things speak HTTP here: the node's ``/metrics``/``/healthz`` (:mod:`slimwire.metrics`), the
authority's JWKS and token endpoints (:mod:`slimwire.authority`) and the controller's telemetry
scraper (:mod:`slimwire.control`). None of them needs more than one request per connection,
``Content-Length`` bodies and a few kilobytes of head, so this is deliberately that and no more:
a framework would be a dependency and an attack surface for three tiny endpoints.

* :func:`parse_request` is sans-IO (bytes in, a request or "need more" out) and enforces the
  limits (head size, header count, body size) before anything is allocated for a body; every
  refusal is an :class:`HttpError` carrying the status to answer with.
* :func:`render_response` builds a complete ``Connection: close`` response.
* :class:`HttpServer` is the thin asyncio driver: read one request within a deadline, hand it to
  an async handler, write the answer, close. Errors become the right 4xx/5xx, a slow or silent
  client is dropped, a crashing handler is logged and answered 500.
* :func:`request` is the client: one request, a deadline over the whole exchange, TLS for
  ``https://``, a bounded body (``Content-Length``, ``chunked`` or read to EOF, so a proxy in
  front of one of our servers is understood too). Connection-level failures are
  :class:`~slimwire.errors.TransportError`; a response that is not HTTP is a
  :class:`~slimwire.errors.RemoteProtocolError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from slimwire.errors import RemoteProtocolError, TransportError

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
"""Bytes of request/status line plus headers; real clients send a few hundred."""
MAX_HEADERS = 64
"""Header lines in one head."""
MAX_BODY = 64 * 1024
"""Request body bytes a server accepts by default (the authority's JSON is well under 1 KiB)."""
MAX_RESPONSE_BODY = 1 << 20
"""Response body bytes the client accepts by default (a /metrics page of thousands of links)."""

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HttpError(RemoteProtocolError):
    """A malformed or unacceptable HTTP request; ``status`` is the answer to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Limits(NamedTuple):
    """What a server accepts in one request."""

    head: int = MAX_HEAD
    headers: int = MAX_HEADERS
    body: int = MAX_BODY


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed request. ``path`` is the target without its query string (``query``);
    header names are lower-cased."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    query: str = ""


class Response(NamedTuple):
    """A response: to send (servers) or as received (client; header names lower-cased)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = {}


DEFAULT_LIMITS = Limits()


def reason(status: int) -> str:
    """The reason phrase we send with ``status``."""
    return _REASONS.get(status, "Error")


def _headers(lines: Iterable[str], limit: int) -> dict[str, str]:
    """Header lines into a dict (lower-case names). Duplicates of the framing headers are refused
    (request smuggling); other duplicates are joined with ``,`` as RFC 9110 allows."""
    out: dict[str, str] = {}
    for count, line in enumerate(lines, 1):
        if count > limit:
            raise HttpError(431, "too many header fields")
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TCHAR:
            raise HttpError(400, f"bad header line {line[:60]!r}")
        key = name.lower()
        value = value.strip(" \t")
        if key in out:
            if key in ("content-length", "transfer-encoding", "host"):
                raise HttpError(400, f"duplicate {name}")
            value = f"{out[key]}, {value}"
        out[key] = value
    return out


def _split_head(data: bytes, limit: int) -> tuple[list[str], int] | None:
    """The lines of the head at the start of ``data`` and the offset after its blank line, or
    None while it is incomplete."""
    end = data.find(b"\r\n\r\n", 0, limit + 4)
    if end < 0:
        if len(data) > limit:
            raise HttpError(431, "request head too large")
        return None
    try:
        text = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "request head is not ASCII") from None
    return text.split("\r\n"), end + 4


def _content_length(headers: Mapping[str, str], limit: int) -> int:
    text = headers.get("content-length", "0")
    if not text.isdigit() or not text.isascii() or len(text) > 12:
        raise HttpError(400, "bad content-length")
    length = int(text)
    if length > limit:
        raise HttpError(413, "body too large")
    return length


def parse_request(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[HttpRequest, int] | None:
    """Parse one request from the start of ``data``: ``(request, bytes used)``, or None while
    incomplete. Raises :class:`HttpError` for anything malformed or over ``limits``. Only
    ``Content-Length`` bodies: a chunked request is answered 501 (none of our clients sends
    one, and refusing it closes the classic smuggling hole)."""
    split = _split_head(data, limits.head)
    if split is None:
        return None
    lines, start = split
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, f"bad request line {lines[0][:80]!r}")
    method, target, _ = parts
    if not method.isascii() or not method.isalpha() or not method.isupper():
        raise HttpError(400, f"bad request line {lines[0][:80]!r}")
    if not target.startswith("/"):
        raise HttpError(400, f"bad request line {lines[0][:80]!r}")
    headers = _headers(lines[1:], limits.headers)
    if "transfer-encoding" in headers:
        raise HttpError(501, "transfer-encoding is not supported")
    length = _content_length(headers, limits.body)
    if len(data) < start + length:
        return None
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    return HttpRequest(method, path, headers, data[start : start + length], query), start + length


def render_response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """A complete HTTP/1.1 response that closes the connection after it."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {reason(status)}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


Handler = Callable[[HttpRequest, "ssl.SSLObject | None"], Awaitable[Response]]
"""A server's request handler: the request and the connection's TLS object (None in the clear:
the authority reads the client certificate from it)."""


def _text_error(exc: HttpError) -> Response:
    return Response(exc.status, f"{exc}\n".encode())


class HttpServer:
    """One request per connection on ``host:port`` (TLS with ``ssl_context``). ``port=0`` picks
    a free port; :attr:`port` holds the bound one after :meth:`start`. ``error`` turns a refused
    request into the response to send (plain text by default)."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        request_timeout: float = 10.0,
        limits: Limits = DEFAULT_LIMITS,
        error: Callable[[HttpError], Response] = _text_error,
    ) -> None:
        self.host, self.port = host, port
        self._handler = handler
        self._ssl = ssl_context
        self.request_timeout = request_timeout
        self.limits = limits
        self._error = error
        self._server: asyncio.Server | None = None

    def __repr__(self) -> str:
        return f"HttpServer({self.host}:{self.port})"

    def base_url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and listen; :class:`OSError` if the address is taken or invalid."""
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, ssl=self._ssl
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def serve_forever(self) -> None:
        if self._server is None:
            raise RuntimeError("start() the server first")
        await self._server.serve_forever()

    async def _read(self, reader: asyncio.StreamReader) -> HttpRequest | None:
        buf = b""
        while True:
            chunk = await reader.read(8192)
            if not chunk:
                return None
            buf += chunk
            parsed = parse_request(buf, self.limits)
            if parsed is not None:
                return parsed[0]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(self.request_timeout):
                    request = await self._read(reader)
                if request is None:
                    return
                tls = writer.get_extra_info("ssl_object")
                try:
                    answer = await self._handler(request, tls)
                except HttpError:
                    raise
                except Exception:
                    log.exception(
                        "%r: handler failed for %s %s", self, request.method, request.path
                    )
                    answer = Response(500, b"internal error\n")
            except HttpError as exc:
                answer = self._error(exc)
            writer.write(
                render_response(answer.status, answer.body, answer.content_type, answer.headers)
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError) as exc:
            log.debug("%r: connection dropped: %s", self, exc)
        finally:
            writer.close()


def _parse_status_line(line: str) -> int:
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3:
        raise RemoteProtocolError(f"bad HTTP status line {line[:80]!r}")
    if not parts[1].isdigit() or not parts[1].isascii():
        raise RemoteProtocolError(f"bad HTTP status line {line[:80]!r}")
    return int(parts[1])


def parse_response_head(data: bytes) -> tuple[int, dict[str, str], int] | None:
    """``(status, headers, offset of the body)`` of the response head at the start of ``data``,
    None while incomplete; :class:`RemoteProtocolError` if it is not an HTTP/1.x response."""
    try:
        split = _split_head(data, MAX_HEAD)
        if split is None:
            return None
        lines, start = split
        return _parse_status_line(lines[0]), _headers(lines[1:], MAX_HEADERS), start
    except HttpError as exc:
        raise RemoteProtocolError(f"bad HTTP response: {exc}") from None


def decode_chunked(data: bytes, max_body: int) -> tuple[bytes, int] | None:
    """A chunked body at the start of ``data``: ``(body, bytes used)`` or None while incomplete.
    Trailers are read and dropped. :class:`RemoteProtocolError` on bad framing or a body over
    ``max_body``."""
    out: list[bytes] = []
    size_total = 0
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos, pos + 1024)
        if eol < 0:
            if len(data) - pos > 1024:
                raise RemoteProtocolError("chunk size line too long")
            return None
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or not set(size_text) <= _HEX:
            raise RemoteProtocolError("bad chunk size")
        size = int(size_text, 16)
        size_total += size
        if size_total > max_body:
            raise RemoteProtocolError("response body too large")
        pos = eol + 2
        if size == 0:
            while True:  # trailer section, ended by an empty line
                eol = data.find(b"\r\n", pos, pos + MAX_HEAD)
                if eol < 0:
                    if len(data) - pos > MAX_HEAD:
                        raise RemoteProtocolError("trailers too large")
                    return None
                if eol == pos:
                    return b"".join(out), eol + 2
                pos = eol + 2
        if len(data) < pos + size + 2:
            return None
        if data[pos + size : pos + size + 2] != b"\r\n":
            raise RemoteProtocolError("chunk not followed by CRLF")
        out.append(data[pos : pos + size])
        pos += size + 2


async def _read_response(reader: asyncio.StreamReader, method: str, max_body: int) -> Response:
    buf = b""
    while (head := parse_response_head(buf)) is None:
        chunk = await reader.read(8192)
        if not chunk:
            raise RemoteProtocolError("connection closed before a complete HTTP response head")
        buf += chunk
    status, headers, start = head
    buf = buf[start:]
    ctype = headers.get("content-type", "")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Response(status, b"", ctype, headers)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while (decoded := decode_chunked(buf, max_body)) is None:
            chunk = await reader.read(65536)
            if not chunk:
                raise RemoteProtocolError("connection closed inside a chunked body")
            buf += chunk
        return Response(status, decoded[0], ctype, headers)
    if "content-length" in headers:
        try:
            length = _content_length(headers, max_body)
        except HttpError as exc:
            raise RemoteProtocolError(f"bad HTTP response: {exc}") from None
        while len(buf) < length:
            chunk = await reader.read(min(65536, length - len(buf)))
            if not chunk:
                raise RemoteProtocolError("connection closed inside the response body")
            buf += chunk
        return Response(status, buf[:length], ctype, headers)
    while chunk := await reader.read(65536):  # no framing: the body runs to EOF
        buf += chunk
        if len(buf) > max_body:
            raise RemoteProtocolError("response body too large")
    return Response(status, buf, ctype, headers)


async def request(
    method: str,
    url: str,
    body: bytes = b"",
    *,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    max_body: int = MAX_RESPONSE_BODY,
) -> Response:
    """One HTTP/1.1 request to an ``http://`` or ``https://`` URL, all of it within ``timeout``.
    Raises :class:`ValueError` for a URL that is not http(s), :class:`TransportError` when the
    connection, TLS or the deadline fails, :class:`RemoteProtocolError` for a response that is
    not HTTP or is over ``max_body``. Any status is returned (the caller decides)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    if tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    wire = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                parts.hostname, port, ssl=ssl_context if tls else None
            )
            writer.write(wire)
            await writer.drain()
            return await _read_response(reader, method, max_body)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        why = str(exc) or type(exc).__name__
        raise TransportError(f"{method} {url} failed: {why}") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):  # a TLS peer may never answer close_notify
                    await writer.wait_closed()
