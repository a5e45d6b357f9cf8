"""TLS presentation language as RFC 9420 uses it (§2.1): fixed-width integers, QUIC-style
variable-length vector headers, optional values.

Decoding is strict: a truncated input, a non-minimal varint, a length that overruns the buffer,
or trailing bytes raise :class:`DecodeError` (an :class:`~slimwire.errors.MlsError`), so a
malformed message is rejected before it can touch group state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from slimwire.errors import MlsError

T = TypeVar("T")

_MAX_VARINT = (1 << 30) - 1


class DecodeError(MlsError):
    """Malformed MLS encoding."""


def encode_varint(n: int) -> bytes:
    """RFC 9420 §2.1.2: 1, 2 or 4 bytes with the length in the top two bits (minimal form)."""
    if n < 0 or n > _MAX_VARINT:
        raise ValueError(f"varint out of range: {n}")
    if n < 0x40:
        return bytes((n,))
    if n < 0x4000:
        return (n | 0x4000).to_bytes(2, "big")
    return (n | 0x8000_0000).to_bytes(4, "big")


class Writer:
    """Append-only encoder. ``bytes(writer)`` gives the result."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __bytes__(self) -> bytes:
        return bytes(self._buf)

    def raw(self, data: bytes) -> Writer:
        self._buf += data
        return self

    def u8(self, n: int) -> Writer:
        self._buf.append(n)
        return self

    def u16(self, n: int) -> Writer:
        self._buf += n.to_bytes(2, "big")
        return self

    def u32(self, n: int) -> Writer:
        self._buf += n.to_bytes(4, "big")
        return self

    def u64(self, n: int) -> Writer:
        self._buf += n.to_bytes(8, "big")
        return self

    def varint(self, n: int) -> Writer:
        self._buf += encode_varint(n)
        return self

    def opaque(self, data: bytes) -> Writer:
        """``opaque x<V>``: varint length then the bytes."""
        self._buf += encode_varint(len(data))
        self._buf += data
        return self

    def vector(self, items: Iterable[T], write_item: Callable[[Writer, T], object]) -> Writer:
        """``T x<V>``: the items encoded back to back, prefixed by their total byte length."""
        inner = Writer()
        for item in items:
            write_item(inner, item)
        return self.opaque(bytes(inner))

    def optional(self, value: T | None, write_item: Callable[[Writer, T], object]) -> Writer:
        """``optional<T>``: 0, or 1 followed by the value."""
        if value is None:
            self._buf.append(0)
        else:
            self._buf.append(1)
            write_item(self, value)
        return self


class Reader:
    """Cursor over an immutable buffer; every read checks bounds."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def finish(self) -> None:
        """Require that everything was consumed."""
        if self._pos != len(self._data):
            raise DecodeError(f"{len(self._data) - self._pos} trailing bytes")

    def raw(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise DecodeError("truncated input")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def _int(self, n: int) -> int:
        return int.from_bytes(self.raw(n), "big")

    def u8(self) -> int:
        return self._int(1)

    def u16(self) -> int:
        return self._int(2)

    def u32(self) -> int:
        return self._int(4)

    def u64(self) -> int:
        return self._int(8)

    def varint(self) -> int:
        first = self.u8()
        prefix = first >> 6
        if prefix == 3:
            raise DecodeError("invalid varint prefix 0b11")
        value = first & 0x3F
        for _ in range((1 << prefix) - 1):
            value = (value << 8) | self.u8()
        if prefix and value < (0x40 if prefix == 1 else 0x4000):
            raise DecodeError("non-minimal varint")
        return value

    def opaque(self) -> bytes:
        return self.raw(self.varint())

    def vector(self, read_item: Callable[[Reader], T]) -> list[T]:
        sub = Reader(self.opaque())
        items: list[T] = []
        while not sub.at_end():
            items.append(read_item(sub))
        return items

    def optional(self, read_item: Callable[[Reader], T]) -> T | None:
        flag = self.u8()
        if flag == 0:
            return None
        if flag != 1:
            raise DecodeError(f"invalid optional flag {flag}")
        return read_item(self)

    def boolean(self) -> bool:
        flag = self.u8()
        if flag > 1:
            raise DecodeError(f"invalid bool {flag}")
        return flag == 1


def decode_all(data: bytes, read: Callable[[Reader], T]) -> T:
    """Decode exactly one value that must span all of ``data``."""
    reader = Reader(data)
    value = read(reader)
    reader.finish()
    return value
