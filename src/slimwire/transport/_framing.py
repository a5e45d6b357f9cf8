"""gRPC length-prefixed message framing, sans-IO.

On the wire each gRPC message is ``flag(1) | length(4, big-endian) | payload`` and messages follow
each other on the HTTP/2 byte stream with no regard for DATA frame boundaries. The decoder
therefore accepts arbitrary chunks and splits out whole messages in bulk: one pass per chunk,
one copy per message (the ``bytes`` handed to the application), and a carry-over buffer only for
a message that straddles chunks.

We never compress, so a set compressed flag is an error the caller turns into UNIMPLEMENTED.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from slimwire.errors import MessageTooLarge, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "PREFIX_LEN",
    "PREFIX_STRUCT",
    "MessageDecoder",
    "OutQueue",
    "encode_message",
    "encode_messages",
    "prefix",
]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
PREFIX_LEN = 5

PREFIX_STRUCT = struct.Struct(">BI")
"""flag (0: uncompressed), big-endian length."""
_pack = PREFIX_STRUCT.pack
_unpack_from = PREFIX_STRUCT.unpack_from


def prefix(length: int) -> bytes:
    """The 5-byte uncompressed gRPC prefix for a message of ``length`` bytes."""
    return _pack(0, length)


def encode_message(message: bytes) -> bytes:
    """One whole gRPC-framed message (prefix + payload)."""
    return _pack(0, len(message)) + message


def encode_messages(messages: Iterable[bytes]) -> bytes:
    """Many gRPC-framed messages as one byte string."""
    parts: list[bytes] = []
    for m in messages:
        parts.append(_pack(0, len(m)))
        parts.append(m)
    return b"".join(parts)


class OutQueue:
    """The outbound gRPC byte queue of one stream: framed messages waiting for the window.

    The driver's ``Stream.send`` appends here directly (no per-message call into the connection);
    ``size`` is what ``pending_bytes`` reports and what the high-water mark bounds.
    """

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def push(self, message: bytes) -> None:
        n = len(message)
        self.chunks += (_pack(0, n), message)
        self.size += n + 5

    def push_many(self, messages: Iterable[bytes]) -> int:
        chunks = self.chunks
        append = chunks.append
        pack = _pack
        before = len(chunks)
        for m in messages:
            append(pack(0, len(m)))
            append(m)
        # Every other chunk is a payload: sum their sizes once, in C.
        total = sum(map(len, chunks[before + 1 :: 2])) + 5 * ((len(chunks) - before) // 2)
        self.size += total
        return total

    def push_framed(self, chunks: list[bytes]) -> int:
        """Append messages that already carry their prefix; returns the bytes added."""
        total = sum(map(len, chunks))
        self.chunks += chunks
        self.size += total
        return total

    def take(self, limit: int) -> bytes:
        """Remove and return up to ``limit`` queued bytes.

        Only the chunks that fit in ``limit`` are joined (the last one split), and the rest stay
        queued as they are: joining the whole queue on every call copied a backlog once per
        window's worth sent, quadratic in the backlog behind a slow reader."""
        chunks = self.chunks
        if self.size <= limit:
            data = b"".join(chunks) if len(chunks) != 1 else bytes(chunks[0])
            chunks.clear()
            self.size = 0
            return data
        n = i = 0
        for chunk in chunks:
            n += len(chunk)
            i += 1
            if n >= limit:
                break
        head = chunks[:i]
        over = n - limit
        rest = chunks[i:]
        if over:
            last = head[-1]
            cut = len(last) - over
            head[-1] = last[:cut]
            rest.insert(0, last[cut:])
        self.chunks = rest
        self.size -= limit
        return b"".join(head)

    def clear(self) -> None:
        self.chunks.clear()
        self.size = 0


class MessageDecoder:
    """Split a gRPC message byte stream into messages.

    ``feed`` returns the messages completed by a chunk. On the first bad prefix (compressed or
    unknown flag, or a length over ``max_message_size``) it records the error in ``error``, returns
    the messages that came before it, and ignores every later chunk: after that the stream is dead,
    and the caller ends it with the right status.
    """

    __slots__ = ("_buf", "_need", "error", "max_message_size")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0")
        self.max_message_size = max_message_size
        self.error: RemoteProtocolError | None = None
        self._buf = bytearray()
        # Bytes still needed to finish the message in _buf (0: _buf holds < 5 bytes of prefix).
        self._need = 0

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        if self.error is not None:
            return []
        out: list[bytes] = []
        n = len(data)
        pos = 0
        buf = self._buf
        if buf:
            pos = self._finish_partial(data, out)
            if pos < 0:
                return out
        limit = self.max_message_size
        view = data if isinstance(data, bytes) else bytes(data)
        while n - pos >= PREFIX_LEN:
            flag, length = _unpack_from(view, pos)
            if flag or length > limit:
                self._fail(flag, length)
                return out
            end = pos + PREFIX_LEN + length
            if end > n:
                break
            out.append(view[pos + PREFIX_LEN : end])
            pos = end
        if pos < n:
            buf += view[pos:]
            self._need = self._needed()
            if self._need < 0:
                return out
        return out

    def _needed(self) -> int:
        """Bytes missing from the partial message in ``_buf`` (0 if the prefix is incomplete).

        Validates the prefix as soon as it is complete, so a bad length fails early instead of
        after buffering up to the limit. Returns -1 after a failure.
        """
        buf = self._buf
        if len(buf) < PREFIX_LEN:
            return 0
        flag, length = _unpack_from(buf, 0)
        if flag or length > self.max_message_size:
            self._fail(flag, length)
            return -1
        need: int = PREFIX_LEN + length - len(buf)
        return need

    def _finish_partial(self, data: bytes | bytearray | memoryview, out: list[bytes]) -> int:
        """Complete the buffered message from ``data``; return the offset consumed, -1 on error
        or when ``data`` was entirely absorbed."""
        buf = self._buf
        if len(buf) < PREFIX_LEN:
            take = PREFIX_LEN - len(buf)
            buf += data[:take]
            if len(buf) < PREFIX_LEN:
                return -1
            need = self._needed()
            if need < 0:
                return -1
            pos = take
        else:
            need = self._need
            pos = 0
        avail = len(data) - pos
        if avail < need:
            buf += data[pos:]
            self._need = need - avail
            return -1
        buf += data[pos : pos + need]
        out.append(bytes(buf[PREFIX_LEN:]))
        buf.clear()
        self._need = 0
        return pos + need

    def _fail(self, flag: int, length: int) -> None:
        self._buf.clear()
        self._need = 0
        if flag == 1:
            self.error = RemoteProtocolError("compressed gRPC messages are not supported")
        elif flag:
            self.error = RemoteProtocolError(f"invalid gRPC message flag {flag}")
        else:
            self.error = MessageTooLarge(
                f"gRPC message of {length} bytes exceeds the limit of {self.max_message_size}"
            )
