"""slimwire._http: the request parser and the response/chunk decoders (fuzzed: all are fed by the
network), the server's refusals, and the client against raw loopback servers that frame their
bodies with Content-Length, chunked encoding or EOF."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire import _http
from slimwire.errors import RemoteProtocolError, TransportError

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 /=;,.", max_size=30).map(str.strip)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_parsers(data: bytes) -> None:
    status = 0
    parsed = None
    try:
        parsed = _http.parse_request(data)
    except _http.HttpError as exc:
        status = exc.status
    assert status == 0 or 400 <= status < 600
    if parsed is not None:
        assert parsed[1] <= len(data)
        assert parsed[0].path.startswith("/")
        assert parsed[0].method.isupper()
    for decode in (_http.parse_response_head, lambda d: _http.decode_chunked(d, 1000)):
        with contextlib.suppress(RemoteProtocolError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["GET", "POST", "DELETE"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/_-.", max_size=40),
    st.text(alphabet="abc=&", max_size=10),
    st.dictionaries(TOKEN.filter(lambda t: t not in ("content-length", "host")), VALUE, max_size=8),
    st.binary(max_size=100),
)
def test_valid_requests_parse(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> None:
    head = f"{method} /{path}?{query} HTTP/1.1\r\nHost: h\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if "transfer-encoding" in headers:
        return
    raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body + b"NEXT"
    parsed = _http.parse_request(raw)
    assert parsed is not None
    req, used = parsed
    assert (req.method, req.path, req.query, req.body) == (method, "/" + path, query, body)
    assert raw[used:] == b"NEXT"
    assert {k: v for k, v in req.headers.items() if k not in ("host", "content-length")} == headers
    assert _http.parse_request(raw[: used - 1]) is None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/2\r\n\r\n", 400),
        (b"get / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(65)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000, 431),
    ],
)
def test_refusals_carry_their_status(raw: bytes, status: int) -> None:
    with pytest.raises(_http.HttpError) as info:
        _http.parse_request(raw)
    assert info.value.status == status


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=50), max_size=6), st.booleans())
def test_chunked_round_trip(chunks: list[bytes], trailer: bool) -> None:
    wire = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    wire += b"0\r\n" + (b"X-T: 1\r\n" if trailer else b"") + b"\r\nREST"
    decoded = _http.decode_chunked(wire, 10_000)
    assert decoded is not None
    assert decoded[0] == b"".join(chunks)
    assert wire[decoded[1] :] == b"REST"
    assert _http.decode_chunked(wire[: decoded[1] - 1], 10_000) is None
    if sum(map(len, chunks)) > 10:
        with pytest.raises(RemoteProtocolError, match="too large"):
            _http.decode_chunked(wire, 10)


async def _raw_server(answer: bytes) -> tuple[asyncio.Server, str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for i in range(0, len(answer), 7):  # in small pieces: the client must reassemble
            writer.write(answer[i : i + 7])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x?q=1"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello worldIGNORED",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world",
    ],
    ids=["content-length", "chunked", "eof"],
)
async def test_client_reads_every_framing(answer: bytes) -> None:
    server, url = await _raw_server(answer)
    async with server:
        got = await _http.request("GET", url, timeout=5)
    assert (got.status, got.body) == (200, b"hello world")


async def test_client_errors() -> None:
    server, url = await _raw_server(b"SSH-2.0-OpenSSH\r\n\r\n")
    async with server:
        with pytest.raises(RemoteProtocolError):
            await _http.request("GET", url, timeout=5)
    server, url = await _raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    )
    async with server:
        with pytest.raises(RemoteProtocolError, match="too large"):
            await _http.request("GET", url, timeout=5, max_body=100)
    with pytest.raises(TransportError):
        await _http.request("GET", url, timeout=5)  # the server is gone: refused
    with pytest.raises(ValueError, match="not an http"):
        await _http.request("GET", "ftp://127.0.0.1/", timeout=5)


async def test_server_answers_and_refuses() -> None:
    seen: list[_http.HttpRequest] = []

    async def handler(req: _http.HttpRequest, tls: object) -> _http.Response:
        seen.append(req)
        if req.path == "/boom":
            raise RuntimeError("handler bug")
        return _http.Response(200, req.body[::-1], "application/octet-stream", {"X-A": "1"})

    server = _http.HttpServer(handler, "127.0.0.1", 0, request_timeout=5)
    await server.start()
    try:
        got = await _http.request("POST", server.base_url() + "/echo?a=b", b"abc", timeout=5)
        assert (got.status, got.body, got.headers["x-a"]) == (200, b"cba", "1")
        assert (seen[0].path, seen[0].query) == ("/echo", "a=b")
        assert (await _http.request("GET", server.base_url() + "/boom", timeout=5)).status == 500
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
        async with asyncio.timeout(5):
            raw = await reader.read()
        writer.close()
        assert raw.startswith(b"HTTP/1.1 413 ")
    finally:
        await server.close()
