"""The bytes a load generator sends and what it reads back (sans-IO).

A producer must be far cheaper per message than the node it measures (the reference forwards
one message in ~3 µs of CPU), so it never builds a message on the hot path: it serializes a pool
of ``Publish`` messages once and then hands slices of that pool to the transport over and over
(the transport packs many of them into each DATA frame). Every message in the pool has the same
length (``message_id`` is always a 4-byte varint), so the byte rate is exact.

Latency samples ride in the payload. The blob is the last field of the last field of a
``Publish``, and neither our node nor the reference appends anything after it (the node only
adds ``incoming_conn`` inside the header, and ``Message.metadata`` stays empty), so the last
:data:`STAMP_LEN` bytes of every delivered message are the last bytes of the blob the producer
wrote: an 8-byte little-endian CLOCK_MONOTONIC send time and a 1-byte flag. Sampled slots of the
pool carry flag 1 and get their time patched just before each write; the others carry flag 0.
A consumer therefore only looks at one byte per message to know whether to take a sample.
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from slimwire._constants import DEFAULT_TTL, MULTICAST_FANOUT, SLIM_VERSION, UNICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name

__all__ = [
    "FIRST_MESSAGE_ID",
    "STAMP_LEN",
    "LatencyTally",
    "PublishPool",
    "build_pool",
    "build_subscribe",
    "grpc_frame",
    "identity_token",
    "read_stamp",
]

STAMP_LEN = 9
"""Bytes at the end of each payload reserved for the send time (u64 LE ns) and a sampled flag."""

FIRST_MESSAGE_ID = 1 << 21
"""Pool message ids start here so every id is a 4-byte varint (2^21 <= id < 2^28)."""
_MAX_POOL = (1 << 28) - FIRST_MESSAGE_ID

_STAMP = struct.Struct("<Q")

HeaderSigner = Callable[[pb.SLIMHeader], None]
"""Sets ``header_mac`` on a header for the link (``HeaderMac.sign``); None when it has no key."""


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: flag 0 (uncompressed), u32 big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def identity_token(base: str, rng: random.Random | None = None) -> str:
    """An identity token shaped like the reference SDK's shared-secret token (≈230 bytes).

    The node never verifies ``SLIMHeader.identity`` (it is end to end), but it does carry it,
    parse it and feed it to the header MAC, so its size matters for a fair per-message cost:
    ``<base>_<8 alnum>:<unix ts>:<nonce>:<b64url claims {"pubkey": P-256 point}>:<b64url mac>``.
    """
    rng = rng or random.Random()
    suffix = "".join(rng.choices(string.ascii_letters + string.digits, k=8))
    nonce = base64.urlsafe_b64encode(rng.randbytes(12)).rstrip(b"=").decode()
    point = b"\x04" + rng.randbytes(64)
    claims = json.dumps({"pubkey": base64.b64encode(point).decode()}, separators=(",", ":"))
    claims_b64 = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
    return f"{base}_{suffix}:{1_790_000_000 + rng.randrange(10**8)}:{nonce}:{claims_b64}:{mac}"


def _header(
    source: Name, destination: Name, identity: str, fanout: int, signer: HeaderSigner | None
) -> pb.SLIMHeader:
    header = pb.SLIMHeader(identity=identity, fanout=fanout, version=SLIM_VERSION, ttl=DEFAULT_TTL)
    source.fill_proto(header.source)
    destination.fill_proto(header.destination)
    if signer is not None:
        signer(header)
    return header


def build_subscribe(
    name: Name, subscription_id: int, identity: str, signer: HeaderSigner | None
) -> bytes:
    """A consumer's ``Subscribe`` for its own name (source = destination, as SDK clients send)."""
    msg = pb.Message()
    msg.subscribe.header.CopyFrom(_header(name, name, identity, UNICAST_FANOUT, signer))
    msg.subscribe.subscription_id = subscription_id
    return msg.SerializeToString()


@dataclass(slots=True)
class PublishPool:
    """Pre-serialized ``Publish`` messages of one length, and which slots carry stamps.

    Two views of the same messages: ``messages`` (one ``bytes`` each, for a transport that
    frames messages itself) and ``buffer`` (the whole pool as one gRPC byte stream, for the raw
    link, which writes slices of it). Mutable on purpose: sampled slots get their send time
    patched in both just before each write.
    """

    messages: list[bytes]
    buffer: bytearray
    sample_every: int
    """Slot ``i`` carries a latency stamp when ``i % sample_every == 0``; 0 means never."""

    @property
    def count(self) -> int:
        return len(self.messages)

    @property
    def message_len(self) -> int:
        """Bytes of one ``Message`` as the node receives it (without the gRPC prefix)."""
        return len(self.messages[0])

    @property
    def frame_len(self) -> int:
        """Bytes of one message on the gRPC byte stream (with its 5-byte prefix)."""
        return len(self.messages[0]) + 5

    def stamp(self, start: int, end: int, now_ns: int) -> None:
        """Write ``now_ns`` into every sampled slot in ``[start, end)``."""
        every = self.sample_every
        if not every:
            return
        first = -(-start // every) * every
        msgs = self.messages
        buf = self.buffer
        flen = len(msgs[0]) + 5
        tail = _STAMP.pack(now_ns) + b"\x01"
        for i in range(first, end, every):
            msgs[i] = msgs[i][:-STAMP_LEN] + tail
            at = (i + 1) * flen - STAMP_LEN
            buf[at : at + STAMP_LEN] = tail

    def view(self, start: int, end: int) -> memoryview:
        """Slots ``[start, end)`` as gRPC bytes, without copying."""
        flen = self.frame_len
        return memoryview(self.buffer)[start * flen : end * flen]

    def framed(self, start: int = 0, end: int | None = None) -> bytes:
        """Slots ``[start, end)`` as one gRPC byte stream (a copy)."""
        return bytes(self.view(start, self.count if end is None else end))


def build_pool(
    source: Name,
    destination: Name,
    *,
    identity: str,
    payload_size: int,
    multicast: bool,
    signer: HeaderSigner | None,
    count: int = 4096,
    sample_every: int = 64,
    session_id: int | None = None,
) -> PublishPool:
    """Serialize ``count`` Publish messages that differ only in ``message_id``.

    The header is identical for all of them, so its MAC is computed once. A payload shorter
    than :data:`STAMP_LEN` cannot carry stamps and disables sampling.
    """
    if not 0 < count <= _MAX_POOL:
        raise ValueError(f"pool size must be in 1..{_MAX_POOL}, got {count}")
    if payload_size < 0:
        raise ValueError("payload size must be >= 0")
    if payload_size < STAMP_LEN:
        sample_every = 0
    fanout = MULTICAST_FANOUT if multicast else UNICAST_FANOUT
    msg = pb.Message()
    pub = msg.publish
    pub.header.CopyFrom(_header(source, destination, identity, fanout, signer))
    pub.session.session_type = (
        pb.SESSION_TYPE_MULTICAST if multicast else pb.SESSION_TYPE_POINT_TO_POINT
    )
    pub.session.session_message_type = pb.SESSION_MESSAGE_TYPE_MSG
    pub.session.session_id = session_id if session_id is not None else random.getrandbits(31)
    pub.msg.app_payload.payload_type = "msg"
    filler = os.urandom(max(payload_size - STAMP_LEN, 0)) if payload_size >= STAMP_LEN else b""
    plain = filler + bytes(STAMP_LEN) if payload_size >= STAMP_LEN else bytes(payload_size)
    sampled = filler + bytes(STAMP_LEN - 1) + b"\x01" if payload_size >= STAMP_LEN else plain
    messages: list[bytes] = []
    for i in range(count):
        pub.session.message_id = FIRST_MESSAGE_ID + i
        pub.msg.app_payload.blob = sampled if sample_every and i % sample_every == 0 else plain
        messages.append(msg.SerializeToString())
    lengths = {len(m) for m in messages}
    if len(lengths) != 1:  # pragma: no cover - guarded by the id range above
        raise AssertionError(f"pool messages differ in length: {sorted(lengths)}")
    buffer = bytearray(b"".join(grpc_frame(m) for m in messages))
    return PublishPool(messages, buffer, sample_every)


def read_stamp(message: bytes | memoryview) -> int | None:
    """The send time stamped in a delivered message, or None if it was not sampled."""
    if len(message) < STAMP_LEN or message[-1] != 1:
        return None
    return int(_STAMP.unpack_from(message, len(message) - STAMP_LEN)[0])


class LatencyTally:
    """Counts delivered messages and collects latency samples (the consumer's sans-IO core).

    It trusts nothing about what arrives: any byte string is counted, and only messages whose
    flag byte is 1 and whose stamp lies in ``[not_before_ns, now_ns]`` become samples (a stamp
    from the future or from before the run is a corrupted message, counted in ``bad_stamps``).
    """

    __slots__ = ("bad_stamps", "bytes", "count", "not_before_ns", "samples")

    def __init__(self, not_before_ns: int = 0) -> None:
        self.count = 0
        self.bytes = 0
        self.bad_stamps = 0
        self.not_before_ns = not_before_ns
        self.samples: list[int] = []

    def feed(self, messages: Sequence[bytes | memoryview], now_ns: int) -> None:
        """Account one batch of messages received at ``now_ns``."""
        self.count += len(messages)
        size = 0
        for m in messages:
            size += len(m)
            if len(m) >= STAMP_LEN and m[-1] == 1:
                sent = _STAMP.unpack_from(m, len(m) - STAMP_LEN)[0]
                if self.not_before_ns <= sent <= now_ns:
                    self.samples.append(now_ns - sent)
                else:
                    self.bad_stamps += 1
        self.bytes += size
