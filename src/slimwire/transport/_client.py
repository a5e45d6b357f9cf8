"""The gRPC client: ``connect`` (a multiplexing :class:`Channel`) and ``open_stream`` (one
stream on its own connection, the way the reference opens one HTTP/2 connection per link)."""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from slimwire.errors import ConnectionClosed, LocalProtocolError, SlimwireTimeout, TransportError
from slimwire.transport._core import DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, GrpcConnection
from slimwire.transport._framing import DEFAULT_MAX_MESSAGE_SIZE
from slimwire.transport._protocol import H2Protocol, H2Stream
from slimwire.transport._stream import DEFAULT_HIGH_WATER, BaseChannel, Stream

__all__ = ["Channel", "connect", "open_stream"]

log = logging.getLogger(__name__)


class Channel(BaseChannel):
    """One HTTP/2 connection to a gRPC server, carrying any number of calls."""

    def __init__(self, proto: H2Protocol, *, url: str, authority: str, scheme: str) -> None:
        self._proto = proto
        self.url = url
        self._authority = authority
        self._scheme = scheme
        self._close_when_idle = False

    @property
    def closed(self) -> bool:
        transport = self._proto.transport
        core = self._proto.core
        return (
            transport is None
            or transport.is_closing()
            or core.terminated
            or core.goaway_received  # no new calls; open ones may still finish
        )

    @property
    def peer(self) -> str:
        return self._proto.peer

    async def open_stream(self, path: str, *, headers: Iterable[tuple[str, str]] = ()) -> Stream:
        return self._open(path, headers)

    def _open(self, path: str, headers: Iterable[tuple[str, str]]) -> H2Stream:
        proto = self._proto
        if self.closed:
            raise ConnectionClosed(f"channel to {self.url} is closed")
        hdrs = list(headers)
        try:
            sid, out = proto.core.start_request(path, self._authority, self._scheme, hdrs)
        except LocalProtocolError as exc:
            raise ConnectionClosed(f"channel to {self.url}: {exc}") from None
        stream = H2Stream(
            proto, sid, out, path=path, request_headers=tuple(hdrs), high_water=proto.high_water
        )
        proto.streams[sid] = stream
        proto.schedule_flush()
        return stream

    async def aclose(self) -> None:
        proto = self._proto
        if proto.transport is not None and not proto.transport.is_closing():
            proto.close("client closing")
        try:
            await asyncio.wait_for(asyncio.shield(proto.closed), 2.0)
        except TimeoutError:
            if proto.transport is not None:
                proto.transport.abort()

    def _on_idle(self) -> None:
        if self._close_when_idle:
            self._proto.close("call finished")

    def __repr__(self) -> str:
        return f"<Channel {self.url} streams={len(self._proto.streams)}>"


def _parse_url(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme in {url!r} (use http:// or https://)")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, host, port, parts.netloc


async def connect(
    url: str,
    *,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = 10.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    window_size: int = DEFAULT_WINDOW_SIZE,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    high_water: int = DEFAULT_HIGH_WATER,
    keepalive_interval: float | None = None,
    keepalive_timeout: float = 20.0,
) -> Channel:
    """Dial ``url`` (``http://host:port`` = h2c, ``https://`` = TLS with ALPN h2)."""
    scheme, host, port, authority = _parse_url(url)
    tls: _ssl.SSLContext | None = None
    if scheme == "https":
        tls = ssl if ssl is not None else _ssl.create_default_context()
        tls.set_alpn_protocols(["h2"])
    core = GrpcConnection(
        client_side=True,
        max_message_size=max_message_size,
        window_size=window_size,
        max_frame_size=max_frame_size,
    )
    loop = asyncio.get_running_loop()

    def factory() -> H2Protocol:
        return H2Protocol(
            core,
            high_water=high_water,
            keepalive_interval=keepalive_interval,
            keepalive_timeout=keepalive_timeout,
        )

    try:
        async with asyncio.timeout(connect_timeout):
            _, proto = await loop.create_connection(
                factory,
                host,
                port,
                ssl=tls,
                server_hostname=(server_hostname or host) if tls is not None else None,
            )
    except TimeoutError:
        raise SlimwireTimeout(f"connecting to {url} timed out") from None
    except (OSError, _ssl.SSLError) as exc:
        raise TransportError(f"cannot connect to {url}: {exc}") from exc
    if tls is not None and proto.transport is not None:
        sslobj = proto.transport.get_extra_info("ssl_object")
        alpn = sslobj.selected_alpn_protocol() if sslobj is not None else None
        if alpn not in (None, "h2"):
            proto.transport.abort()
            raise TransportError(f"{url} negotiated ALPN {alpn!r}, not h2")
    channel = Channel(proto, url=url, authority=authority, scheme=scheme)
    proto.on_idle = channel._on_idle
    return channel


async def open_stream(
    url: str,
    path: str,
    *,
    ssl: _ssl.SSLContext | None = None,
    headers: Iterable[tuple[str, str]] = (),
    server_hostname: str | None = None,
    connect_timeout: float | None = 10.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    window_size: int = DEFAULT_WINDOW_SIZE,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    high_water: int = DEFAULT_HIGH_WATER,
    keepalive_interval: float | None = None,
    keepalive_timeout: float = 20.0,
) -> Stream:
    """Dial a new HTTP/2 connection to ``url`` and open one call on ``path``.

    The connection belongs to the stream: it closes when the call is over on both sides.
    """
    channel = await connect(
        url,
        ssl=ssl,
        server_hostname=server_hostname,
        connect_timeout=connect_timeout,
        max_message_size=max_message_size,
        window_size=window_size,
        max_frame_size=max_frame_size,
        high_water=high_water,
        keepalive_interval=keepalive_interval,
        keepalive_timeout=keepalive_timeout,
    )
    channel._close_when_idle = True
    return channel._open(path, headers)
