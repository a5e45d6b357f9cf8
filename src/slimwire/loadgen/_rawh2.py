"""A minimal HTTP/2 client for exactly one gRPC stream, built for bulk (sans-IO).

Why the load generator has its own: a load generator must cost far less per message than the
node it measures (the reference node forwards a message for ~3 µs of CPU). A general gRPC
transport hands every message to the application as its own ``bytes`` and takes every outbound
message as its own ``bytes``; measured here, that is 1.7-2.4 µs per message per side, so one
core cannot feed and drain a node at 300k msg/s. This client, like the reference capacity
method's, instead:

* writes a pre-framed gRPC byte stream in DATA frames of the peer's maximum size, honouring both
  flow-control windows (no per-message work at all);
* in counting mode, walks the gRPC prefixes of received DATA in place, counting messages and
  reading latency stamps from their last bytes, without creating an object per message;
* advertises 2^31-1 windows and returns credit in large steps (every 256 MiB), unless a small
  window is asked for (slow-consumer tests, where the node must feel back-pressure).

It speaks just enough HTTP/2 (RFC 9113) to be a correct peer for one stream: SETTINGS (and
acks), PING acks, WINDOW_UPDATE, HEADERS/CONTINUATION (HPACK-decoded so the table stays in
sync), DATA with or without padding, RST_STREAM and GOAWAY. Everything else is ignored as the RFC
requires for unknown frame types.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import hpack

from slimwire.errors import RemoteProtocolError
from slimwire.loadgen._wire import STAMP_LEN

__all__ = [
    "MAX_WINDOW",
    "PREFACE",
    "ClientCore",
    "GrpcCounter",
    "encode_frame",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_WINDOW = 2**31 - 1
_DEFAULT_WINDOW = 65535
_DEFAULT_FRAME = 16384
_MAX_FRAME = 2**24 - 1
STREAM_ID = 1

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE = range(9)
CONTINUATION = 9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT, S_INITIAL_WINDOW, S_MAX_FRAME = 1, 2, 3, 4, 5

_HEAD = struct.Struct(">BHBBI")  # 24-bit length as (high byte, low 16 bits), type, flags, stream
_SETTING = struct.Struct(">HI")
_U32 = struct.Struct(">I")
_GRPC_LEN = struct.Struct(">xI")
_GRPC_PREFIX = struct.Struct(">BI")
_STAMP = struct.Struct("<Q")


def encode_frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    n = len(payload)
    return _HEAD.pack(n >> 16, n & 0xFFFF, ftype, flags, stream_id & 0x7FFFFFFF) + payload


def frame_header(ftype: int, flags: int, stream_id: int, length: int) -> bytes:
    return _HEAD.pack(length >> 16, length & 0xFFFF, ftype, flags, stream_id)


@dataclass(frozen=True, slots=True)
class Frame:
    """One received control frame, or a padded DATA frame, whole."""

    type: int
    flags: int
    stream_id: int
    payload: bytes


class GrpcCounter:
    """Counts gRPC messages in a byte stream without materializing them (counting mode).

    For each message it adds its length to ``bytes``, and if its last byte is the stamp flag (1)
    it reads the 8-byte send time before it (see :mod:`slimwire.loadgen._wire`). Stamps outside
    ``[not_before_ns, now_ns]`` are counted as ``bad_stamps``. A compressed flag or a length over
    ``max_message`` is a protocol error. ``first`` keeps the first whole message for validation.
    """

    __slots__ = (
        "_buf",
        "bad_stamps",
        "bytes",
        "count",
        "first",
        "max_message",
        "not_before_ns",
        "samples",
    )

    def __init__(self, not_before_ns: int = 0, max_message: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self.count = 0
        self.bytes = 0
        self.bad_stamps = 0
        self.samples: list[int] = []
        self.first: bytes | None = None
        self.not_before_ns = not_before_ns
        self.max_message = max_message

    def feed(self, data: bytes, now_ns: int) -> int:
        """Account a chunk of the gRPC byte stream; returns the messages it completed.

        The loop is the consumer's whole per-message cost (≈0.2 µs of CPU here), so it does as
        little as possible: one ``unpack_from`` for flag and length, one byte test for a stamp.
        """
        buf = self._buf + data if self._buf else data
        pos, n = 0, len(buf)
        if self.first is None:
            self._keep_first(buf)
        count = 0
        unpack = _GRPC_PREFIX.unpack_from
        limit = self.max_message
        last = n - 5
        while pos <= last:
            flag, length = unpack(buf, pos)
            end = pos + 5 + length
            if flag or length > limit:
                raise RemoteProtocolError(f"bad gRPC message prefix (flag {flag}, {length} bytes)")
            if end > n:
                break
            if buf[end - 1] == 1 and length >= STAMP_LEN:
                self._sample(buf, end, now_ns)
            count += 1
            pos = end
        self._buf = buf[pos:]
        self.count += count
        self.bytes += pos - 5 * count
        return count

    def _keep_first(self, buf: bytes) -> None:
        if len(buf) >= 5:
            flag, length = _GRPC_PREFIX.unpack_from(buf, 0)
            if not flag and len(buf) >= 5 + length:
                self.first = bytes(buf[5 : 5 + length])

    def _sample(self, buf: bytes, end: int, now_ns: int) -> None:
        sent = _STAMP.unpack_from(buf, end - STAMP_LEN)[0]
        if self.not_before_ns <= sent <= now_ns:
            self.samples.append(now_ns - sent)
        else:
            self.bad_stamps += 1


class ClientCore:
    """The client side of one HTTP/2 connection carrying one gRPC call (sans-IO).

    Outbound bytes accumulate in :attr:`out` (take them with :meth:`take_output`). Inbound bytes
    go to :meth:`receive`; gRPC payload bytes of our stream go to ``on_grpc_bytes``, which the
    driver points at a message splitter (handshake) or a :class:`GrpcCounter` (bulk).
    """

    def __init__(self, authority: str, path: str, *, window: int = MAX_WINDOW) -> None:
        if not _DEFAULT_WINDOW <= window <= MAX_WINDOW:
            raise ValueError("window must be in [65535, 2^31-1]")
        self.window = window
        self.out: list[bytes] = []
        self.max_frame = _MAX_FRAME
        # Inbound parsing state: a partial 9-byte header, and the frame being read.
        self._hdr = b""
        self._cur: tuple[int, int, int] | None = None  # type, flags, stream id
        self._remaining = 0
        self._acc: list[bytes] = []
        self._decoder = hpack.Decoder()
        self._header_block: list[bytes] | None = None
        self._header_flags = 0
        self.peer_max_frame = _DEFAULT_FRAME
        self.peer_initial_window = _DEFAULT_WINDOW
        self.send_conn_window = _DEFAULT_WINDOW
        self.send_stream_window = _DEFAULT_WINDOW
        self._recv_unacked = 0
        self.response_headers: list[tuple[str, str]] | None = None
        self.trailers: list[tuple[str, str]] | None = None
        self.ended = False
        self.error: str = ""
        self.on_grpc_bytes: object = None
        self.grpc_buffer = bytearray()
        """Our stream's gRPC bytes while no consumer is attached (handshake phase)."""
        encoder = hpack.Encoder()
        block = encoder.encode(
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("user-agent", "slimwire-bench/0.1"),
            ]
        )
        settings = b"".join(
            [
                _SETTING.pack(S_ENABLE_PUSH, 0),
                _SETTING.pack(S_INITIAL_WINDOW, window),
                _SETTING.pack(S_MAX_FRAME, _MAX_FRAME),
            ]
        )
        self.out += [PREFACE, encode_frame(SETTINGS, 0, 0, settings)]
        if window > _DEFAULT_WINDOW:
            self.out.append(encode_frame(WINDOW_UPDATE, 0, 0, _U32.pack(window - _DEFAULT_WINDOW)))
        self.out.append(encode_frame(HEADERS, END_HEADERS, STREAM_ID, block))

    # -- output ------------------------------------------------------------------------------

    def take_output(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data

    @property
    def send_window(self) -> int:
        return min(self.send_conn_window, self.send_stream_window)

    def send_data(self, data: bytes | memoryview) -> int:
        """Frame as much of ``data`` as the windows allow; returns the bytes taken."""
        n = min(len(data), self.send_window)
        if n <= 0:
            return 0
        step = self.peer_max_frame
        out = self.out
        for start in range(0, n, step):
            chunk = data[start : min(start + step, n)]
            out.append(frame_header(DATA, 0, STREAM_ID, len(chunk)))
            out.append(bytes(chunk))
        self.send_conn_window -= n
        self.send_stream_window -= n
        return n

    def end_stream(self) -> None:
        self.out.append(encode_frame(DATA, END_STREAM, STREAM_ID))

    def consumed(self, nbytes: int) -> None:
        """Return flow-control credit for ``nbytes`` of DATA (batched into large updates)."""
        self._recv_unacked += nbytes
        threshold = min(self.window // 2, 256 * 1024 * 1024)
        if self._recv_unacked >= threshold:
            inc = _U32.pack(self._recv_unacked)
            self.out.append(encode_frame(WINDOW_UPDATE, 0, 0, inc))
            self.out.append(encode_frame(WINDOW_UPDATE, 0, STREAM_ID, inc))
            self._recv_unacked = 0

    # -- input -------------------------------------------------------------------------------

    def receive(self, data: bytes, auto_credit: bool = True) -> int:
        """Process received bytes; returns the DATA bytes received (flow-controlled).

        DATA payloads are streamed to the sink as they arrive, without waiting for the whole
        frame (the reference sends frames of up to 4 MiB), so nothing is copied twice.
        """
        flow = 0
        pos, n = 0, len(data)
        while pos < n:
            if self._cur is None:
                need = 9 - len(self._hdr)
                if n - pos < need:
                    self._hdr += data[pos:]
                    break
                head = self._hdr + data[pos : pos + need] if self._hdr else data[pos : pos + 9]
                pos += need
                self._hdr = b""
                hi, lo, ftype, flags, sid = _HEAD.unpack(head)
                length = hi << 16 | lo
                if length > self.max_frame:
                    raise RemoteProtocolError(f"HTTP/2 frame of {length} bytes exceeds our maximum")
                self._cur = (ftype, flags, sid & 0x7FFFFFFF)
                self._remaining = length
                if length == 0:
                    self._finish_frame(b"")
                    continue
            ftype, flags, sid = self._cur
            take = min(self._remaining, n - pos)
            chunk = data[pos : pos + take]
            pos += take
            self._remaining -= take
            if ftype == DATA and not flags & PADDED:
                flow += take
                if sid == STREAM_ID:
                    self._deliver(chunk)
                if not self._remaining:
                    self._finish_frame(None)
            else:
                self._acc.append(chunk)
                if not self._remaining:
                    payload = b"".join(self._acc)
                    self._acc = []
                    if ftype == DATA:
                        flow += len(payload)
                    self._finish_frame(payload)
        if auto_credit and flow:
            self.consumed(flow)
        return flow

    def _deliver(self, payload: bytes) -> None:
        sink = self.on_grpc_bytes
        if sink is None:
            self.grpc_buffer += payload
        else:
            sink(payload)  # type: ignore[operator]

    def _finish_frame(self, payload: bytes | None) -> None:
        """A frame is complete; ``payload`` is None for an unpadded DATA frame (already
        streamed)."""
        assert self._cur is not None
        ftype, flags, sid = self._cur
        self._cur = None
        if payload is None or ftype == DATA:
            if payload:  # padded DATA
                self._on_padded_data(Frame(ftype, flags, sid, payload))
            if flags & END_STREAM and sid == STREAM_ID:
                self._end("the node ended the stream")
            return
        f = Frame(ftype, flags, sid, payload)
        if ftype in (HEADERS, CONTINUATION):
            self._on_headers(f)
        elif ftype == SETTINGS:
            self._on_settings(f)
        elif ftype == WINDOW_UPDATE:
            self._on_window_update(f)
        elif ftype == PING:
            if len(payload) != 8:
                raise RemoteProtocolError("PING payload must be 8 bytes")
            if not flags & ACK:
                self.out.append(encode_frame(PING, ACK, 0, payload))
        elif ftype == RST_STREAM:
            if sid == STREAM_ID:
                code = _U32.unpack_from(payload)[0] if len(payload) >= 4 else -1
                self._end(f"stream reset by the peer (code {code})")
        elif ftype == GOAWAY:
            self._end("connection closed by the peer (GOAWAY)")

    def _end(self, error: str = "") -> None:
        self.ended = True
        if error and not self.error:
            self.error = error

    def _on_padded_data(self, f: Frame) -> None:
        payload = f.payload
        if payload[0] >= len(payload):
            raise RemoteProtocolError("bad DATA padding")
        if f.stream_id == STREAM_ID and len(payload) - 1 - payload[0] > 0:
            self._deliver(payload[1 : len(payload) - payload[0]])

    def _on_headers(self, f: Frame) -> None:
        payload = f.payload
        if f.type == HEADERS:
            if f.flags & PADDED:
                if not payload or payload[0] >= len(payload):
                    raise RemoteProtocolError("bad HEADERS padding")
                payload = payload[1 : len(payload) - payload[0]]
            if f.flags & PRIORITY_FLAG:
                payload = payload[5:]
            self._header_block = [payload]
            self._header_flags = f.flags
        elif self._header_block is None:
            raise RemoteProtocolError("CONTINUATION without HEADERS")
        else:
            self._header_block.append(payload)
        if not f.flags & END_HEADERS:
            return
        block = b"".join(self._header_block)
        self._header_block = None
        try:
            headers = [(str(k), str(v)) for k, v in self._decoder.decode(block)]
        except (hpack.HPACKError, UnicodeDecodeError, ValueError) as exc:
            raise RemoteProtocolError(f"bad header block: {exc}") from None
        if f.stream_id != STREAM_ID:
            return
        if self.response_headers is None:
            self.response_headers = headers
            status = dict(headers).get(":status")
            if status != "200":
                self._end(f"HTTP status {status}")
        else:
            self.trailers = headers
        if self._header_flags & END_STREAM:
            grpc = dict(headers)
            self._end(
                f"call ended: grpc-status {grpc.get('grpc-status')} {grpc.get('grpc-message', '')}"
            )

    def _on_settings(self, f: Frame) -> None:
        if f.flags & ACK:
            return
        if len(f.payload) % 6:
            raise RemoteProtocolError("SETTINGS payload is not a multiple of 6")
        for i in range(0, len(f.payload), 6):
            ident, value = _SETTING.unpack_from(f.payload, i)
            if ident == S_INITIAL_WINDOW:
                if value > MAX_WINDOW:
                    raise RemoteProtocolError("INITIAL_WINDOW_SIZE too large")
                self.send_stream_window += value - self.peer_initial_window
                self.peer_initial_window = value
            elif ident == S_MAX_FRAME:
                if not _DEFAULT_FRAME <= value <= _MAX_FRAME:
                    raise RemoteProtocolError("bad MAX_FRAME_SIZE")
                self.peer_max_frame = value
            elif ident == S_HEADER_TABLE_SIZE:
                self._decoder.header_table_size = value
        self.out.append(encode_frame(SETTINGS, ACK, 0))

    def _on_window_update(self, f: Frame) -> None:
        if len(f.payload) != 4:
            raise RemoteProtocolError("WINDOW_UPDATE payload must be 4 bytes")
        inc = _U32.unpack(f.payload)[0] & 0x7FFFFFFF
        if f.stream_id == 0:
            self.send_conn_window += inc
        elif f.stream_id == STREAM_ID:
            self.send_stream_window += inc


def split_grpc(buffer: bytearray, max_message: int = 16 * 1024 * 1024) -> list[bytes]:
    """Take the whole gRPC messages off the front of ``buffer`` (handshake phase)."""
    out: list[bytes] = []
    pos, n = 0, len(buffer)
    while n - pos >= 5:
        if buffer[pos]:
            raise RemoteProtocolError("compressed or invalid gRPC message flag")
        length = _GRPC_LEN.unpack_from(buffer, pos)[0]
        if length > max_message:
            raise RemoteProtocolError(f"gRPC message of {length} bytes exceeds the limit")
        end = pos + 5 + length
        if end > n:
            break
        out.append(bytes(buffer[pos + 5 : end]))
        pos = end
    del buffer[:pos]
    return out


def grpc_stream(messages: Iterable[bytes]) -> bytes:
    """Messages as one gRPC byte stream."""
    return b"".join(b"\x00" + len(m).to_bytes(4, "big") + m for m in messages)
