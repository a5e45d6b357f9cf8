"""Per-link header MAC: HMAC-SHA256 over the routing fields of a SLIMHeader.

The tag binds the header to one link (its id is in the preimage and its key is agreed per link),
so a node re-signs every copy it sends. The preimage is the reference's ``write_preimage``:

    b"SLIM-DP-HDR-v1\\0" || u32 len(link_id) || link_id || enc(source) || enc(destination)
    || u32 len(identity) || identity || u32 fanout || opt_u64(recv_from) || opt_u64(forward_to)
    || opt_bool(error) || u32 ttl                                 (all integers little-endian)

Cost matters more than anything else here (one verify per received message, one sign per sent
copy), so: the link prefix is absorbed into a precomputed HMAC inner state once per link, each
message costs two ``sha256.copy()`` + update + digest (cheaper on OpenSSL 3 than ``hmac.digest``
or ``hmac.HMAC.copy()``, measured in ``bench/mac_bench.py``), and the preimage comes from the
serialized header bytes (see ``_wire``), never from attribute access on parsed objects.
"""

from __future__ import annotations

import hashlib
import hmac

from slimwire._constants import MAC_LEN
from slimwire._proto import data_plane_pb2 as pb
from slimwire.link._frame import Frame, parse_frame
from slimwire.link._wire import HeaderFields, header_fields

DOMAIN = b"SLIM-DP-HDR-v1\x00"
MIN_KEY_LEN = 32
_BLOCK = 64
_compare = hmac.compare_digest


def link_prefix(link_id: str) -> bytes:
    """The per-link start of every preimage: domain, u32le length, link id."""
    lid = link_id.encode()
    return DOMAIN + len(lid).to_bytes(4, "little") + lid


class HeaderMac:
    """Signs and verifies SLIMHeader tags for one link: ``HeaderMac(key, link_id)``.

    Immutable after construction and safe to share between the tasks of one link.
    """

    __slots__ = ("_inner", "_inner_copy", "_outer", "_outer_copy", "link_id")

    link_id: str

    def __init__(self, key: bytes, link_id: str) -> None:
        if len(key) < MIN_KEY_LEN:
            raise ValueError(f"header MAC key must be at least {MIN_KEY_LEN} bytes")
        if not link_id:
            raise ValueError("link_id must not be empty")
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\x00")
        # RFC 2104 by hand: keep the keyed inner state (with the link prefix already absorbed)
        # and the keyed outer state, and copy them per message.
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + link_prefix(link_id))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self._inner_copy = self._inner.copy
        self._outer_copy = self._outer.copy
        self.link_id = link_id

    def __repr__(self) -> str:
        return f"HeaderMac(link_id={self.link_id!r})"

    def tag(self, *parts: bytes) -> bytes:
        """HMAC-SHA256 over the link prefix followed by ``parts`` (the rest of a preimage)."""
        inner = self._inner.copy()
        for part in parts:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def tag2(self, body: bytes, tail: bytes) -> bytes:
        """:meth:`tag` for exactly two parts, the hot-path shape (no varargs loop)."""
        inner = self._inner_copy()
        inner.update(body)
        inner.update(tail)
        outer = self._outer_copy()
        outer.update(inner.digest())
        return outer.digest()

    def sign(self, header: pb.SLIMHeader) -> None:
        """Set ``header.header_mac`` for this link, over the header as it is now.

        Callers clear recv_from/forward_to and set the outbound ttl first, as the reference does.
        """
        fields = header_fields(header)
        header.header_mac = self.tag2(fields.body, fields.tail)

    def verify(self, header: pb.SLIMHeader) -> bool:
        """Whether ``header`` carries a valid 32-byte tag for this link."""
        return self.verify_fields(header_fields(header))

    def verify_fields(self, fields: HeaderFields) -> bool:
        """Verify a header read by the wire walker (or a :class:`Frame`'s header)."""
        mac = fields.header_mac
        if mac is None or len(mac) != MAC_LEN:
            return False
        return _compare(mac, self.tag2(fields.body, fields.tail))

    def verify_frame(self, frame: Frame) -> bool:
        """Verify the header of a frame from :func:`parse_frame`."""
        mac = frame.header_mac
        if mac is None or len(mac) != MAC_LEN:
            return False
        return _compare(mac, self.tag2(frame.body, frame.tail))

    def verify_message(self, raw: bytes) -> Frame | None:
        """Parse a serialized Message on the fast path and verify its tag.

        Returns the frame when it is a Publish/Subscribe/Unsubscribe whose tag verifies. None
        means either a bad or missing tag, or a message the fast path does not take (Link,
        SubscriptionAck, malformed or unusually encoded): parse those with protobuf, then use
        :meth:`verify` on the header if they are routed messages.
        """
        frame = parse_frame(raw)
        if frame is None:
            return None
        mac = frame.header_mac
        if mac is None or len(mac) != MAC_LEN:
            return None
        return frame if _compare(mac, self.tag2(frame.body, frame.tail)) else None
