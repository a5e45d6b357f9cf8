"""The inbound HTTP/2 frame walk of one connection: frame-length checks and the DATA fast path.

Every read passes through :class:`FrameSplitter` before h2 sees it: its frame headers are
checked against our max frame size (h2 checks only once a whole frame is buffered), and plain
DATA frames h2 would only account and report are taken out (:meth:`H2Connection.take_data`
does h2's bookkeeping for them) and handed to the gRPC layer directly. Everything else goes to
h2 unchanged and in order.
"""

from __future__ import annotations

import struct

import h2.events

from slimwire.transport._h2compat import H2Connection

__all__ = ["FRAME_HEADER", "FastData", "FrameSplitter"]

_FRAME_HEADER = FRAME_HEADER = struct.Struct(">BHBBI").unpack_from
"""An HTTP/2 frame header: length (high byte, low 16 bits), type, flags, stream id."""
_U32 = struct.Struct(">I").unpack_from
_H2_ONLY_DATA_FLAGS = 0x01 | 0x08
"""END_STREAM, PADDED: DATA frames with either go through h2."""
FastData = tuple[int, bytes, bool]
"""(Part of) a DATA frame accounted by the fast path: stream id, payload, whether the frame
is complete with it."""


class FrameSplitter:
    """Where the frame boundaries of one connection's inbound byte stream are, across reads.

    ``_skip``: bytes to skip to the next header (the client preface first, on the server side);
    ``_partial_header``: a header split across reads; ``rx_sid``/``rx_left``: a plain DATA
    frame accounted at its header and still being read (its stream, the payload bytes to come).
    """

    __slots__ = ("_partial_header", "_skip", "rx_left", "rx_sid")

    def __init__(self, *, server_side: bool) -> None:
        self._skip = 24 if server_side else 0
        self._partial_header = b""
        self.rx_sid = 0
        self.rx_left = 0

    @property
    def at_boundary(self) -> bool:
        """Whether the next read starts with a frame header (nothing skipped, cut or held)."""
        return not (self._skip or self._partial_header or self.rx_left)

    def check_lengths(self, data: bytes, limit: int) -> int:
        """Check every frame header passing by against our max frame size; return the offset
        of the first frame boundary in ``data`` (``len(data)`` or more if there is none), or
        -1 if a frame is too long.

        ``h2`` only checks a frame's length once the whole frame is buffered, so a peer that
        announces a 16 MiB frame would make us buffer 16 MiB first. Walking the headers here
        (a few per read) rejects it at the header.
        """
        n = len(data)
        pos = self._skip
        if self._partial_header:
            take = 9 - len(self._partial_header)
            head = self._partial_header + data[:take]
            if len(head) < 9:
                self._partial_header = head
                return n
            self._partial_header = b""
            length = int.from_bytes(head[:3], "big")
            if length > limit:
                return -1
            pos = take + length
        first = pos
        while pos + 9 <= n:
            length = _U32(data, pos)[0] >> 8
            if length > limit:
                return -1
            pos += 9 + length
        if pos < n:
            self._partial_header = data[pos:]
            self._skip = 0
        else:
            self._skip = pos - n
        return first

    def split(self, data: bytes, pos: int, h2c: H2Connection) -> list[h2.events.Event | FastData]:
        """Hand ``data`` to h2, except the DATA frames h2 would only account and report.

        ``data[:pos]`` finishes the frame begun in an earlier read: the rest of a DATA frame
        we are streaming (below), or the frame h2 holds part of, which goes to h2. A frame
        boundary is at ``pos``. From there, plain DATA frames (no padding, no END_STREAM) on a
        stream h2 accepts them on are accounted by :meth:`H2Connection.take_data` and come back
        as ``(stream_id, payload, complete)``; every other frame goes to h2 unchanged and in
        order, in runs between those DATA frames, and so do the DATA frames ``take_data``
        declines (h2 then raises or resets exactly as it would). The caller reacts to the
        items only afterwards, as it does to h2's events, so h2's state is what one
        ``h2.receive_data(data)`` would leave.

        One difference, on purpose: a plain DATA frame cut by the end of the read is accounted
        in full at its header (the peer spent that window when it sent the header) and its
        payload is passed on as it arrives (``complete`` False until its last byte), instead of
        h2 buffering it (and copying it twice) until the frame is complete. Large frames always
        span reads under load; their messages are still reported once per frame.
        """
        take = h2c.take_data
        n = len(data)
        items: list[h2.events.Event | FastData] = []
        if pos:
            if self.rx_left:
                self.rx_left = max(pos - n, 0)
                items.append((self.rx_sid, data[:pos], not self.rx_left))
            else:
                items += h2c.receive_data(data[:pos])
        start = pos
        while pos + 9 <= n:
            hi, lo, ftype, flags, sid = _FRAME_HEADER(data, pos)
            body = pos + 9
            end = body + (hi << 16 | lo)
            if ftype == 0 and not flags & _H2_ONLY_DATA_FLAGS:
                if start < pos:
                    items += h2c.receive_data(data[start:pos])
                    start = pos
                sid &= 0x7FFFFFFF
                if take(sid, end - body):
                    if end <= n:
                        items.append((sid, data[body:end], True))
                        start = end
                    else:
                        items.append((sid, data[body:], False))
                        self.rx_sid, self.rx_left = sid, end - n
                        start = n
            pos = end
        if start < n:
            items += h2c.receive_data(data[start:] if start else data)
        return items
