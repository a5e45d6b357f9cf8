"""The data path of one session: best-effort or reliable, one sender and many sources.

Sender: MSG numbered from 1 (wrapping at 2^31-1). When reliable, each message is kept (ring of 512)
with the set of members that still owe an ack; every ``interval`` (one timer for the whole window)
it is resent to each of them, unicast, with the destination rewritten to that member; after
``max_retries`` resends the message is reported failed with the members that never acked. An
RTX_REQUEST counts as that member's ack and is answered with RTX_REPLY (the stored message, or
``error=true`` if it is gone).

Receivers: one reorder buffer per source. Every MSG is acked (MSG_ACK to its source, same id);
gaps are asked for with one RTX_REQUEST per missing id (retried like data), and an id the source
no longer has, or that never comes, is reported lost so delivery moves on. Direct messages
(metadata ``PUBLISH_TO``) skip ordering.

Ranged acks (a slimwire extension, point-to-point only): the reference acks every id with its
own MSG_ACK and its sender takes nothing else, so by default so do we. A peer that announced
``ACK_RANGES`` (on its JOIN_REPLY or GROUP_WELCOME) instead gets one MSG_ACK per run of
consecutive ids received between two :meth:`SessionLayer.take` calls, carrying the run's first
id in ``ACK_FROM``: the same ids acked as by one MSG_ACK each, only packed. An ack was the
largest cost reliable delivery added per message (built, stamped, MAC'd and written by the
receiver, forwarded by the node, read by the sender); under load a read brings tens of
messages, so this divides that cost by as much. Sent to a sender that does not know the key
it acks the run's last id only, and retransmission repairs the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name
from slimwire.session._events import (
    DeliveryFailed,
    MessageDelivered,
    MessageLost,
    MessageReceived,
    ReceivedMessage,
    received_message,
)
from slimwire.session._ids import MAX_PUBLISH_ID, id_distance, next_data_id, random_publish_to_id
from slimwire.session._reliability import Lost, ProducerBuffer, ReorderBuffer
from slimwire.session._wire import (
    ACK_FROM,
    PUBLISH_TO,
    TRUE,
    name_from_proto,
    user_metadata,
)

if TYPE_CHECKING:
    from slimwire.session._base import SessionBase

__all__ = ["DataPath"]

MSG = pb.SESSION_MESSAGE_TYPE_MSG
MSG_ACK = pb.SESSION_MESSAGE_TYPE_MSG_ACK
RTX_REQUEST = pb.SESSION_MESSAGE_TYPE_RTX_REQUEST
RTX_REPLY = pb.SESSION_MESSAGE_TYPE_RTX_REPLY


@dataclass(slots=True)
class _Pending:
    missing: dict[tuple[int, int, int, int], Name]
    retries_left: int
    deadline: float


MAX_ACK_RUN = 512
"""The most ids one ranged ack covers (the sender's buffer holds 512 messages): a receiver
starts a new run past it, and a sender takes a longer claimed range as an ack of its last id."""

ACK_TIMER = ("ack", 0)
"""The one retransmission timer of a session's send window (see :meth:`DataPath._track`)."""


def _copy(msg: pb.Message) -> pb.Message:
    out = pb.Message()
    out.CopyFrom(msg)
    return out


def _received(session_id: int, msg: pb.Message, source: Name) -> ReceivedMessage:
    """What the user gets of a received MSG (or RTX_REPLY)."""
    pub = msg.publish
    app = pub.msg.app_payload
    return received_message(
        session_id,
        pub.session.message_id,
        source,
        name_from_proto(pub.header.destination),
        app.blob,
        app.payload_type,
        user_metadata(msg.metadata),
    )


class DataPath:
    """Sender and receiver state of one session (see the module docstring)."""

    __slots__ = (
        "_ack_armed",
        "_next_id",
        "_recv",
        "_rtx",
        "_run_first",
        "_run_last",
        "_run_len",
        "_run_peer",
        "_sent",
        "_start_known",
        "_unacked",
        "batch_acks",
        "interval",
        "max_retries",
        "reliable",
        "s",
    )

    def __init__(self, session: SessionBase, *, start_known: bool) -> None:
        self.s = session
        cfg = session.config
        self.reliable = cfg.reliable
        self.interval = cfg.interval or 1.0
        self.max_retries = cfg.max_retries or 0
        self._start_known = start_known  # p2p streams start at 1; a group may be joined late
        self._next_id = 0
        self._sent: ProducerBuffer[pb.Message] = ProducerBuffer()
        self._unacked: dict[int, _Pending] = {}  # in deadline order (see _track)
        self._ack_armed = False
        self._recv: dict[tuple[int, int, int, int], ReorderBuffer[ReceivedMessage]] = {}
        self._rtx: dict[tuple[tuple[int, int, int, int], int], tuple[Name, int]] = {}
        self.batch_acks = False
        """The peer takes ranged acks (it announced ``ACK_RANGES``; set by the session)."""
        self._run_first = 0
        self._run_last: int | None = None  # the run of ids received and not acked yet
        self._run_len = 0
        self._run_peer: Name | None = None

    def __repr__(self) -> str:
        mode = "reliable" if self.reliable else "best-effort"
        return (
            f"DataPath({mode}, next_id={self._next_id + 1}, unacked={len(self._unacked)}, "
            f"sources={len(self._recv)}, rtx={len(self._rtx)})"
        )

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    # -- sending ------------------------------------------------------------------------------

    def publish(
        self,
        dst: Name,
        fanout: int,
        receivers: Iterable[Name],
        *,
        payload: bytes,
        payload_type: str,
        metadata: Mapping[str, str] | None,
        now: float,
    ) -> int:
        self._next_id = next_data_id(self._next_id)
        mid = self._next_id
        msg = self.s._build(
            dst,
            MSG,
            mid,
            payload=payload,
            payload_type=payload_type,
            metadata=metadata,
            fanout=fanout,
        )
        if not self.reliable:
            self.s._send(msg)
            return mid
        local = self.s.host.local.key
        missing = {}
        for receiver in receivers:
            key = receiver.key  # a property that builds a tuple: read once
            if key != local:
                missing[key] = receiver
        self._sent.push(mid, msg)
        if missing:
            self._track(mid, missing, now)
        else:
            self.s.host.emit(MessageDelivered(self.s.session_id, mid))
        self.s._send(self._sendable(msg))
        return mid

    def publish_to(
        self,
        target: Name,
        *,
        payload: bytes,
        payload_type: str,
        metadata: Mapping[str, str] | None,
        now: float,
    ) -> int:
        """A direct message to one member of a group: unsequenced, id above the data range."""
        mid = random_publish_to_id()
        meta = dict(metadata or {})
        meta[PUBLISH_TO] = TRUE
        msg = self.s._build(
            target, MSG, mid, payload=payload, payload_type=payload_type, metadata=meta
        )
        if not self.reliable:
            self.s._send(msg)
            return mid
        self._sent.push(mid, msg)
        self._track(mid, {target.key: target}, now)
        self.s._send(self._sendable(msg))
        return mid

    def _sendable(self, stored: pb.Message) -> pb.Message:
        """The copy of a stored message to send. Sending stamps the identity token (and the
        driver the link MAC): every later use of the stored message copies it and stamps both
        again, so without MLS it can be sent itself. MLS seals the blob in place, so then the
        stored plaintext must stay apart."""
        return stored if self.s.crypto is None else _copy(stored)

    def _track(self, mid: int, missing: dict[tuple[int, int, int, int], Name], now: float) -> None:
        """Wait for acks of ``mid``. Every message gets the same interval, so the window,
        kept in insertion order, is in deadline order: one timer, armed for the oldest entry,
        serves them all (a timer per message cost a heap push and a cancel each)."""
        deadline = now + self.interval
        self._unacked[mid] = _Pending(missing, self.max_retries, deadline)
        if not self._ack_armed:
            self._ack_armed = True
            self.s._arm(ACK_TIMER, deadline)

    def on_ack(self, mid: int, source: Name) -> None:
        pending = self._unacked.get(mid)
        if pending is None or pending.missing.pop(source.key, None) is None:
            return
        if not pending.missing:
            del self._unacked[mid]  # the window timer, if it fires early, re-arms itself
            self.s.host.emit(MessageDelivered(self.s.session_id, mid))

    def on_ack_message(self, mid: int, source: Name, metadata: Mapping[str, str]) -> None:
        """An MSG_ACK: of ``mid`` alone, or of the range ``ACK_FROM``..``mid`` (our extension;
        a malformed or oversized range counts as an ack of ``mid``, as the reference reads it)."""
        first = metadata.get(ACK_FROM) if metadata else None
        if first is None or not first.isdecimal() or len(first) > 10:
            self.on_ack(mid, source)
            return
        start = int(first)
        if start > MAX_PUBLISH_ID or mid > MAX_PUBLISH_ID or id_distance(start, mid) >= MAX_ACK_RUN:
            self.on_ack(mid, source)
            return
        self.on_ack_range(start, mid, source)

    def on_ack_range(self, first: int, last: int, source: Name) -> None:
        """Every id from ``first`` to ``last`` (wrapping) acked by ``source``."""
        key = source.key
        unacked = self._unacked
        emit = self.s.host.emit
        sid = self.s.session_id
        mid = first
        for _ in range(id_distance(first, last) + 1):
            pending = unacked.get(mid)
            if (
                pending is not None
                and pending.missing.pop(key, None) is not None
                and not pending.missing
            ):
                del unacked[mid]
                emit(MessageDelivered(sid, mid))
            mid = mid + 1 if mid < MAX_PUBLISH_ID else 0

    def forget_member(self, member: Name) -> None:
        """A member left: stop waiting for its acks (messages complete without it)."""
        for mid in list(self._unacked):
            self.on_ack(mid, member)
        for key in [k for k in self._rtx if k[0] == member.key]:
            del self._rtx[key]
            self.s._cancel(("rtx", key))

    def on_rtx_request(self, msg: pb.Message, source: Name) -> None:
        mid = msg.publish.session.message_id
        self.on_ack(mid, source)  # the reference counts an RTX request as that member's ack
        stored = self._sent.get(mid)
        if stored is not None:
            reply = _copy(stored)
            header = reply.publish.header
            header.ClearField("destination")
            header.destination.MergeFrom(msg.publish.header.source)
            header.fanout = 1
            reply.publish.session.session_message_type = RTX_REPLY
        else:
            reply = self.s._build(source, RTX_REPLY, mid, error=True)
        self.s._send(reply)

    def on_ack_timeout(self, now: float) -> None:
        """The window timer: resend (or give up on) every message whose deadline passed,
        then re-arm for the oldest one left."""
        self._ack_armed = False
        expired = []
        for mid, pending in self._unacked.items():
            if pending.deadline > now:
                break
            expired.append(mid)
        for mid in expired:
            pending = self._unacked.pop(mid)
            stored = self._sent.get(mid)
            if pending.retries_left > 0 and stored is not None:
                pending.retries_left -= 1
                pending.deadline = now + self.interval
                self._unacked[mid] = pending  # to the end: the window stays in deadline order
                for member in pending.missing.values():
                    resend = _copy(stored)
                    header = resend.publish.header
                    header.ClearField("destination")
                    member.fill_proto(header.destination)
                    header.fanout = 1
                    self.s._send(resend)
                continue
            self.s.host.emit(
                DeliveryFailed(self.s.session_id, mid, tuple(pending.missing.values()))
            )
        if self._unacked:
            self._ack_armed = True
            self.s._arm(ACK_TIMER, next(iter(self._unacked.values())).deadline)

    # -- receiving ----------------------------------------------------------------------------

    def on_msg(self, msg: pb.Message, source: Name, now: float) -> None:
        self.on_received(
            _received(self.s.session_id, msg, source), source, now, PUBLISH_TO in msg.metadata
        )

    def on_received(
        self, received: ReceivedMessage, source: Name, now: float, direct: bool = False
    ) -> None:
        """A MSG from ``source``, already read (from a protobuf object or from wire bytes)."""
        if not self.reliable:
            self.s.host.emit(MessageReceived(received))
            return
        mid = received.message_id
        if direct:
            self.s._send(self.s._build(source, MSG_ACK, mid, metadata={PUBLISH_TO: TRUE}))
            self.s.host.emit(MessageReceived(received))
            return
        if self.batch_acks:
            self._hold_ack(mid, source)
        else:
            self.s._send(self.s._build(source, MSG_ACK, mid))
        self._take(mid, received, source, now)

    def _hold_ack(self, mid: int, source: Name) -> None:
        """Add ``mid`` to the run of ids to ack, or flush the run and start a new one. The
        layer flushes every held run when its outputs are taken, and the session before it
        sends anything else, so acks keep their place among our messages."""
        last = self._run_last
        if last is not None:
            peer = self._run_peer
            if (
                mid == (last + 1 if last < MAX_PUBLISH_ID else 0)
                and self._run_len < MAX_ACK_RUN
                and (source is peer or (peer is not None and source.key == peer.key))
            ):
                self._run_last = mid
                self._run_len += 1
                return
            self.flush_acks()
        self._run_first = self._run_last = mid
        self._run_len = 1
        self._run_peer = source
        self.s.host.hold_acks(self)

    def flush_acks(self) -> None:
        """Send the held run as one MSG_ACK (a plain one for a single id)."""
        last = self._run_last
        if last is None:
            return
        self._run_last = None
        peer = self._run_peer
        assert peer is not None
        first = self._run_first
        self.s._send(
            self.s._build(
                peer, MSG_ACK, last, metadata=None if first == last else {ACK_FROM: str(first)}
            )
        )

    def on_rtx_reply(self, msg: pb.Message, source: Name, now: float) -> None:
        if not self.reliable:
            return
        mid = msg.publish.session.message_id
        key = (source.key, mid)
        if self._rtx.pop(key, None) is not None:
            self.s._cancel(("rtx", key))
        buffer = self._recv.get(source.key)
        if msg.publish.header.HasField("error") and msg.publish.header.error:
            if buffer is not None:
                self._deliver_all(buffer.on_lost(mid), source)
            return
        self._take(mid, _received(self.s.session_id, msg, source), source, now)

    def _take(self, mid: int, received: ReceivedMessage, source: Name, now: float) -> None:
        buffer = self._recv.get(source.key)
        if buffer is None:
            buffer = ReorderBuffer(last_delivered=0 if self._start_known else None)
            self._recv[source.key] = buffer
        delivered, missing = buffer.on_message(mid, received)
        self._deliver_all(delivered, source)
        for rid in missing:
            key = (source.key, rid)
            self._rtx[key] = (source, self.max_retries)
            self._send_rtx_request(source, rid, now)

    def _send_rtx_request(self, source: Name, mid: int, now: float) -> None:
        self.s._send(self.s._build(source, RTX_REQUEST, mid))
        self.s._arm(("rtx", (source.key, mid)), now + self.interval)

    def on_rtx_timeout(self, key: tuple[tuple[int, int, int, int], int], now: float) -> None:
        entry = self._rtx.get(key)
        if entry is None:
            return
        source, left = entry
        if left > 0:
            self._rtx[key] = (source, left - 1)
            self._send_rtx_request(source, key[1], now)
            return
        del self._rtx[key]
        buffer = self._recv.get(source.key)
        if buffer is not None:
            self._deliver_all(buffer.on_lost(key[1]), source)

    def _deliver_all(self, items: list[ReceivedMessage | Lost], source: Name) -> None:
        for item in items:
            if isinstance(item, Lost):
                for key in [k for k in self._rtx if k[0] == source.key]:
                    if id_distance(item.message_id, key[1]) < item.span:
                        del self._rtx[key]
                        self.s._cancel(("rtx", key))
                self.s.host.emit(MessageLost(self.s.session_id, source, item.message_id, item.span))
            else:
                self.s.host.emit(MessageReceived(item))

    # -- teardown -----------------------------------------------------------------------------

    def clear(self) -> None:
        self.s._cancel(ACK_TIMER)
        self._ack_armed = False
        self._run_last = None  # the session is over: nobody waits for these acks any more
        for key in self._rtx:
            self.s._cancel(("rtx", key))
        self._unacked.clear()
        self._rtx.clear()

    def on_timer(self, kind: str, arg: object, now: float) -> None:
        if kind == "ack":
            self.on_ack_timeout(now)
        elif kind == "rtx":
            assert isinstance(arg, tuple)
            self.on_rtx_timeout(arg, now)
