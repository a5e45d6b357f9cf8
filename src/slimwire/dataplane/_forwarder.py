"""The forwarding core, sans-IO: bytes in from a connection, bytes out per connection.

This is the reference's ``MessageProcessor`` logic (slim-wire.md §2.5-§2.6) without any I/O:
the driver feeds each received message (``receive`` / ``receive_batch``), then collects what to
send with ``take_outputs`` and which links to close with ``take_closes``. Everything that happens
per message is done inline with no awaits and no per-message logging, because a node spends its
life here (see ``docs/node.md`` for the measured cost).

Rules, in the reference's order: MAC check on Remote/Edge links (before anything else), then
validation, ``incoming_conn`` overwrite, TTL decrement on non-local links with a drop at 0;
publishes go to ``forward_to`` directly or through ``match_one`` (fanout 1) / ``match_all``
(anything else), never back to the incoming conn, and peer traffic never back to peers;
``recv_from``/``forward_to`` are cleared and the header re-signed for each outgoing link.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from slimwire._constants import UNICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import SubscriptionError
from slimwire.link import Frame, FrameKind, HeaderMac, Outbound, Relay, parse_frame
from slimwire.names import NULL_ID

from ._announce import SEEN_SUB_IDS_MAX, Announcer
from ._connections import Conn, ConnectionTable
from ._messages import (
    _as_is,
    _display,
    _grpc_framed,
    _key_text,
    _name_key,
    _rest_decodes,
    _strings,
    _valid_header,
)
from ._prefilter import PolicyPreFilter
from ._route_hooks import RouteHooks
from ._rtx import count_retransmissions
from ._subscriptions import SubscriptionTable
from ._traced import MessageTracer, TracedPath
from ._types import ConnInfo, ConnState, ConnType, DropReason, RouteKey, SubscriptionEntry

if TYPE_CHECKING:
    from slimwire.policy import NodeAuthorizer

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Forwarder"]

_log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
"""The reference (tonic) refuses messages above 4 MiB by default."""
BAD_MAC_LIMIT = 100
"""Bad MACs in a row (with no good one between) after which a link is closed: a correct peer
never sends one, so a long run means a broken or hostile peer rather than a tampered message."""

_FromString = pb.Message.FromString
_PUBLISH = FrameKind.PUBLISH
_LOCAL = ConnType.LOCAL
_PEER = ConnType.PEER
_REMOTE = ConnType.REMOTE
_APP_TYPES = (ConnType.LOCAL, ConnType.EDGE)
_UP = ConnState.UP


class Forwarder(RouteHooks, PolicyPreFilter, TracedPath):
    """Connection table + subscription table + the forwarding rules.

    ``node_id`` is this node's id; ``max_message_size`` bounds any received message (a larger
    one closes the link); ``relay_peer_publishes`` lifts the peer 1-hop rule; ``bad_mac_limit``
    is the run of bad MACs that closes a link; ``validate_payloads`` (default on, ≈0.4 µs per
    message) checks that the part of a publish the raw path does not read is valid protobuf.
    ``framed_outputs`` makes :meth:`take_outputs` return each message with its 5-byte gRPC
    prefix already in front (for ``Stream.send_framed``: the unicast path then builds each
    copy in one piece). ``rng`` makes subscription ids reproducible in tests. ``authorizer``
    (a :class:`slimwire.policy.NodeAuthorizer`) enforces a policy on what app links (Local,
    Edge) publish and subscribe; None (the default) costs one attribute test per batch.
    ``count_rtx`` counts the session retransmissions (RTX requests and replies) each link
    receives, at ~0.3-0.5 µs per message (``_rtx``): a node turns it on when its figures are
    read (``/metrics``, a controller); it can be flipped at any time. ``tracer`` (a
    :class:`slimwire.tracing.NodeTracer`) makes a span for each message with a ``traceparent``
    (``_traced``); None (the default) costs one attribute test per batch.
    """

    def __init__(
        self,
        node_id: str = "",
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        relay_peer_publishes: bool = False,
        bad_mac_limit: int = BAD_MAC_LIMIT,
        validate_payloads: bool = True,
        framed_outputs: bool = False,
        rng: random.Random | None = None,
        authorizer: NodeAuthorizer | None = None,
        count_rtx: bool = False,
        tracer: MessageTracer | None = None,
    ) -> None:
        self.node_id = node_id
        self.tracer = tracer
        self.count_rtx = count_rtx
        self.authorizer = authorizer
        self.max_message_size = max_message_size
        self.relay_peer_publishes = relay_peer_publishes
        self.bad_mac_limit = bad_mac_limit
        self.validate_payloads = validate_payloads
        self.framed_outputs = framed_outputs
        self._wrap = _grpc_framed if framed_outputs else _as_is
        self.conns = ConnectionTable()
        self.table = SubscriptionTable()
        self._rng = rng or random.SystemRandom()
        self._dirty: list[Conn] = []
        self._closes: list[tuple[int, str]] = []
        # match_all results by (prefix, id, skip, exclude_peer), valid for one table generation
        self._all_cache: dict[tuple[int, int, int, int, int, bool], list[int]] = {}
        self._all_cache_gen = -1
        # subscription ids this node generated or forwarded (loop guard, §2.6 step 4)
        # our own subscriptions on remote/peer links, and the subscription-id loop guard
        self._announcer = Announcer(self.table, self.conns, self._send_header_msg, self._rng)
        # subscribes forwarded with forward_to, awaiting the next hop's ack: id -> upstream conn
        self._pending_acks: dict[int, int] = {}
        # bumped whenever a connection comes or goes: per-link route caches key on it
        self._conn_epoch = 0

    def __repr__(self) -> str:
        return f"<Forwarder node={self.node_id!r} conns={len(self.conns)} subs={len(self.table)}>"

    # -- connections -----------------------------------------------------------------------

    def add_connection(
        self,
        conn_type: ConnType,
        *,
        remote: str = "",
        link_id: str = "",
        peer_node_id: str = "",
        peer_version: str = "",
        mac: HeaderMac | None = None,
        require_mac: bool = True,
        outbound: bool = False,
        now: float = 0.0,
        conn_id: int | None = None,
    ) -> int:
        """Register a negotiated link (or re-register a reconnected one under its old id) and
        announce our subscriptions on it if it is a remote link."""
        cid = self.conns.allocate_id() if conn_id is None else conn_id
        conn = Conn(
            cid,
            conn_type,
            remote=remote,
            link_id=link_id,
            peer_node_id=peer_node_id,
            peer_version=peer_version,
            mac=mac,
            require_mac=require_mac,
            outbound=outbound,
            now=now,
        )
        old = self.conns.get(cid)
        if old is not None:
            # a reconnect keeps the row's history
            conn.msgs_in, conn.bytes_in = old.msgs_in, old.bytes_in
            conn.msgs_out, conn.bytes_out = old.msgs_out, old.bytes_out
            conn.drops = old.drops
            conn.rtx_requests, conn.rtx_replies = old.rtx_requests, old.rtx_replies
        if conn.verifies and mac is not None:
            conn.relay = Relay(mac, cid, decrement=1, framed=self.framed_outputs)
        self.conns.put(conn)
        self._conn_epoch += 1
        if conn_type is _REMOTE or conn_type is _PEER:
            self._announcer.replay(conn)
        return cid

    def reserve_id(self) -> int:
        """An id for a client link before its first connect, so reconnects can reuse it."""
        return self.conns.allocate_id()

    def connection_down(self, conn_id: int, *, reconnecting: bool = False) -> None:
        """A link went away: remove its subscriptions (propagating what became unreachable);
        keep the row (state RECONNECTING) when the driver will re-dial it under the same id."""
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        conn.out.clear()
        self._conn_epoch += 1
        if reconnecting:
            conn.state = ConnState.RECONNECTING
        else:
            conn.state = ConnState.CLOSED
            self.conns.pop(conn_id)
            self._announcer.forget(conn_id)
        if self.authorizer is not None and not reconnecting:
            self.authorizer.forget_link(conn_id)
        lost = self.table.remove_connection(conn_id)
        for key, (strings, _last) in lost.items():
            self._announcer.update(key, strings)
        for sid, upstream in list(self._pending_acks.items()):
            if upstream == conn_id:
                del self._pending_acks[sid]

    def connections(self) -> list[ConnInfo]:
        return self.conns.snapshot()

    def subscriptions(self) -> list[SubscriptionEntry]:
        return self.table.entries()

    # -- outputs ---------------------------------------------------------------------------

    def take_outputs(self) -> list[tuple[int, list[bytes]]]:
        """Everything to send since the last call, per destination conn, in order (each
        message gRPC-framed with ``framed_outputs``)."""
        if not self._dirty:
            return []
        out = []
        prefix = 5 if self.framed_outputs else 0
        for conn in self._dirty:
            msgs = conn.out
            if msgs:
                out.append((conn.conn_id, msgs))
                conn.out = []
                conn.msgs_out += len(msgs)
                conn.bytes_out += sum(map(len, msgs)) - prefix * len(msgs)
        self._dirty = []
        return out

    def take_closes(self) -> list[tuple[int, str]]:
        """Links the core wants closed, each with the one reason to log and send."""
        closes, self._closes = self._closes, []
        return closes

    def _close(self, conn: Conn, reason: str) -> None:
        if conn.state is _UP:
            conn.state = ConnState.CLOSED
            self._conn_epoch += 1
            self._closes.append((conn.conn_id, reason))

    def _emit(self, conn: Conn, data: bytes) -> None:
        out = conn.out
        if not out:
            self._dirty.append(conn)
        out.append(self._wrap(data))  # counted per batch in take_outputs

    def _send_header_msg(self, conn: Conn, msg: pb.Message, header: pb.SLIMHeader) -> bool:
        """Send a Publish/Subscribe/Unsubscribe: sign for Remote/Edge, strip MAC for local."""
        if conn.verifies:
            mac = conn.mac
            if mac is not None:
                mac.sign(header)
            elif conn.require_mac:
                conn.count_drop(DropReason.SEND_FAILED, "strict header MAC but no link key")
                return False
        elif conn.conn_type is _LOCAL:
            header.ClearField("header_mac")
        self._emit(conn, msg.SerializeToString())
        return True

    # -- inputs ----------------------------------------------------------------------------

    def receive(self, conn_id: int, data: bytes, now: float = 0.0) -> None:
        """Process one received message."""
        self.receive_batch(conn_id, (data,), now)

    def receive_batch(self, conn_id: int, batch: Iterable[bytes], now: float = 0.0) -> None:
        """Process a batch of messages received on ``conn_id``, in order.

        The loop of :meth:`_route` is the node's hot path, written flat on purpose: a
        verified unicast Publish whose destination resolves to a single connection (cached per
        incoming link until the tables change) costs one parse, one verify, one splice and one
        sign, with no protobuf object and no method dispatch of ours. Everything else takes
        the general path (:meth:`_on_publish_frame`, :meth:`_on_message`). Counting
        retransmissions, the policy and tracing act on the whole batch first, each only when
        configured.
        """
        conn = self.conns.rows.get(conn_id)
        if conn is None or conn.state is not _UP:
            return
        conn.last_activity = now
        if not isinstance(batch, list):
            batch = list(batch)
        conn.msgs_in += len(batch)
        conn.bytes_in += sum(map(len, batch))
        if self.count_rtx:
            requests, replies = count_retransmissions(batch)
            if requests:
                conn.rtx_requests += requests
            if replies:
                conn.rtx_replies += replies
        if self.authorizer is not None and conn.conn_type in _APP_TYPES:
            batch = self._authorize(conn, batch)
        if self.tracer is not None:
            self._receive_traced(conn, batch)
        else:
            self._route(conn, batch)

    def _route(self, conn: Conn, batch: list[bytes]) -> None:
        """Route a received batch: the loop :meth:`receive_batch` describes."""
        limit = self.max_message_size
        epoch = (self.table.generation, self._conn_epoch)
        if conn.route_epoch != epoch:
            conn.route_cache.clear()
            conn.group_cache.clear()
            conn.route_epoch = epoch
        cache = conn.route_cache
        mac = conn.mac if conn.verifies else None
        fast = mac is not None or not conn.verifies
        decrement = 1 if conn.conn_type is not _LOCAL else 0
        in_id = conn.conn_id
        dirty = self._dirty
        validate = self.validate_payloads
        wrap = self._wrap
        relay = conn.relay
        n = len(batch)
        i = 0
        relay_from = 0 if relay is not None else n
        while i < n:
            if i >= relay_from and relay is not None:
                # the fused path takes the plain run; the loop below takes one message it
                # declined (a route to learn, a subscription, a drop to count ...)
                j = relay.run(
                    batch, i, cache, dirty, conn.group_cache, validate=validate, max_size=limit
                )
                if j < 0:  # a payload in this run does not decode: check one by one
                    relay_from = n
                elif j > i:
                    if conn.bad_mac_run:
                        conn.bad_mac_run = 0
                    if j >= n:
                        return
                    i = j
            data = batch[i]
            i += 1
            if len(data) > limit:
                conn.count_drop(DropReason.OVERSIZED, f"{len(data)} bytes > {limit}")
                self._close(conn, f"message of {len(data)} bytes exceeds the limit of {limit}")
                return
            frame = parse_frame(data)
            if frame is None or frame.kind is not _PUBLISH:
                self._on_message(conn, data)
                epoch = (self.table.generation, self._conn_epoch)
                if conn.route_epoch != epoch:  # a (un)subscription changed the routes
                    cache.clear()
                    conn.group_cache.clear()
                    conn.route_epoch = epoch
            elif validate and not _rest_decodes(frame):
                conn.count_drop(DropReason.MALFORMED, "publish payload is not valid protobuf")
                self._close(conn, "malformed protobuf message")
                return
            elif not fast or frame.fanout != 1 or frame.forward_to is not None:
                self._on_publish_frame(conn, frame)
            elif mac is not None and not mac.verify_frame(frame):
                self._frame_mac_failed(conn, frame)
            else:
                if conn.bad_mac_run:
                    conn.bad_mac_run = 0
                ttl = frame.ttl - decrement
                if ttl <= 0:
                    conn.count_drop(DropReason.TTL_EXPIRED, "ttl reached 0")
                    continue
                key = frame.destination
                target = cache.get(key)
                if target is None:
                    target = self._resolve_one(conn, key)
                    if target is None:
                        continue
                tmac = target.sign_mac
                if tmac is not None:
                    out = target.out
                    if not out:
                        dirty.append(target)
                    out.append(wrap(frame.forward_signed(ttl, in_id, tmac)))
                else:
                    self._emit_frame(target, frame.forward(ttl, in_id))
                continue  # nothing above can close ``conn``
            if conn.state is not _UP:
                return

    def _resolve_one(self, conn: Conn, key: tuple[int, int, int, int]) -> Conn | None:
        """Unicast route for ``key`` from ``conn``; cached when only one conn can match."""
        exclude_peer = conn.conn_type is _PEER and not self.relay_peer_publishes
        out = self.table.match_one(key, conn.conn_id, exclude_peer)
        target = None if out is None else self.conns.rows.get(out)
        if target is None or target.state is not _UP:
            conn.count_drop(DropReason.NO_ROUTE, f"no subscriber for {_key_text(key)}")
            return None
        if self.table.single_candidate(key, conn.conn_id, exclude_peer):
            conn.route_cache[key] = target
        return target

    def _frame_mac_failed(self, conn: Conn, frame: Frame) -> None:
        tagged = bool(frame.header_mac)
        self._bad_mac(
            conn,
            DropReason.BAD_MAC if tagged else DropReason.MISSING_MAC,
            "header MAC does not verify" if tagged else "publish without header MAC",
        )

    def _on_message(self, conn: Conn, data: bytes) -> None:
        """Everything but the Publish fast path: parse with protobuf and dispatch."""
        try:
            msg = _FromString(data)
        except DecodeError:
            conn.count_drop(DropReason.MALFORMED, "not a Message protobuf")
            self._close(conn, "malformed protobuf message")
            return
        kind = msg.WhichOneof("message_type")
        if kind == "publish":
            self._on_publish(conn, msg)
        elif kind == "subscribe":
            self._on_subscription(conn, msg, msg.subscribe, True)
        elif kind == "unsubscribe":
            self._on_subscription(conn, msg, msg.unsubscribe, False)
        elif kind == "subscription_ack":
            self._on_ack(conn, msg.subscription_ack)
        elif kind == "link":
            pass  # a second negotiation is ignored (§2.3 step 5)
        else:
            conn.count_drop(DropReason.INVALID, "message type not set")

    def _check_mac(self, conn: Conn, header: pb.SLIMHeader, is_publish: bool) -> bool:
        """The inbound MAC rule of §2.8 (caller already knows the link is Remote/Edge)."""
        has_tag = bool(header.header_mac)
        mac = conn.mac
        if not is_publish and not has_tag:
            if conn.require_mac:
                self._bad_mac(conn, DropReason.MISSING_MAC, "subscription without header MAC")
                return False
            return True
        if mac is None:
            if conn.require_mac:
                self._bad_mac(conn, DropReason.MISSING_MAC, "strict MAC but no link key")
                return False
            if is_publish and has_tag:
                self._bad_mac(conn, DropReason.BAD_MAC, "tagged publish before a link key")
                return False
            return True
        if mac.verify(header):
            conn.bad_mac_run = 0
            return True
        self._bad_mac(
            conn,
            DropReason.BAD_MAC if has_tag else DropReason.MISSING_MAC,
            "header MAC does not verify" if has_tag else "publish without header MAC",
        )
        return False

    def _bad_mac(self, conn: Conn, reason: DropReason, detail: str) -> None:
        conn.count_drop(reason, detail)
        conn.bad_mac_run += 1
        if conn.bad_mac_run >= self.bad_mac_limit:
            self._close(conn, f"{conn.bad_mac_run} messages in a row failed the header MAC check")

    def _on_publish_frame(self, conn: Conn, frame: Frame) -> None:
        """The hot path: a Publish read from raw bytes by the link layer (no protobuf parse,
        MAC verified on the received header bytes, each copy spliced and signed per link)."""
        hdr = frame
        if conn.verifies:
            mac = conn.mac
            if mac is not None:
                if not mac.verify_frame(frame):
                    tagged = bool(hdr.header_mac)
                    self._bad_mac(
                        conn,
                        DropReason.BAD_MAC if tagged else DropReason.MISSING_MAC,
                        "header MAC does not verify" if tagged else "publish without header MAC",
                    )
                    return
                conn.bad_mac_run = 0
            elif conn.require_mac:
                self._bad_mac(conn, DropReason.MISSING_MAC, "strict MAC but no link key")
                return
            elif hdr.header_mac:
                self._bad_mac(conn, DropReason.BAD_MAC, "tagged publish before a link key")
                return
        in_id = conn.conn_id
        ttl = hdr.ttl
        if conn.conn_type is not _LOCAL:
            ttl -= 1
            if ttl <= 0:
                conn.count_drop(DropReason.TTL_EXPIRED, "ttl reached 0")
                return
        conns = self.conns
        exclude_peer = conn.conn_type is _PEER and not self.relay_peer_publishes
        forward_to = hdr.forward_to
        if forward_to is not None:
            target = conns.get(forward_to)
            if target is None or target.state is not _UP:
                conn.count_drop(DropReason.UNKNOWN_CONN, f"forward_to {forward_to}")
                return
            self._emit_frame(target, frame.forward(ttl, in_id))
            return
        key = hdr.destination
        if hdr.fanout == UNICAST_FANOUT:
            out = self.table.match_one(key, in_id, exclude_peer)
            target = None if out is None else conns.get(out)
            if target is None or target.state is not _UP:
                conn.count_drop(DropReason.NO_ROUTE, f"no subscriber for {_key_text(key)}")
                return
            self._emit_frame(target, frame.forward(ttl, in_id))
            return
        outs = self._match_all_key(key, in_id, exclude_peer)
        if not outs:
            conn.count_drop(DropReason.NO_ROUTE, f"no subscriber for {_key_text(key)}")
            return
        outbound = frame.forward(ttl, in_id)  # spliced once, signed per copy
        rows = conns.rows
        dirty = self._dirty
        targets = [rows.get(o) for o in outs]
        signed = tuple(t for t in targets if t is not None and t.state is _UP and t.sign_mac)
        if (
            conn.relay is not None
            and len(signed) == len(targets)
            and conn.route_epoch == (self.table.generation, self._conn_epoch)
        ):
            # every copy is MAC'd: the fused path takes this destination from now on
            conn.group_cache[key] = signed
        for target in targets:
            if target is None or target.state is not _UP:
                continue
            tmac = target.sign_mac
            if tmac is not None:
                queue = target.out
                if not queue:
                    dirty.append(target)
                queue.append(self._wrap(outbound.signed(tmac)))
            else:
                self._emit_frame(target, outbound)

    def _emit_frame(self, conn: Conn, outbound: Outbound) -> None:
        if conn.verifies:
            mac = conn.mac
            if mac is not None:
                self._emit(conn, outbound.signed(mac))
                return
            if conn.require_mac:
                conn.count_drop(DropReason.SEND_FAILED, "strict header MAC but no link key")
                return
        self._emit(conn, outbound.unsigned())

    def _match_all_key(
        self, key: tuple[int, int, int, int], skip: int, exclude_peer: bool
    ) -> list[int]:
        table = self.table
        if self._all_cache_gen != table.generation:
            self._all_cache.clear()
            self._all_cache_gen = table.generation
        ck = (key[0], key[1], key[2], key[3], skip, exclude_peer)
        outs = self._all_cache.get(ck)
        if outs is None:
            outs = self._all_cache[ck] = table.match_all(key, skip, exclude_peer)
        return outs

    def _on_publish(self, conn: Conn, msg: pb.Message) -> None:
        p = msg.publish
        header = p.header
        if not (p.HasField("header") and p.HasField("session") and _valid_header(header)):
            conn.count_drop(DropReason.INVALID, "publish without header, names or session")
            return
        if conn.verifies and not self._check_mac(conn, header, True):
            return
        in_id = conn.conn_id
        header.incoming_conn = in_id
        if conn.conn_type is not _LOCAL:
            ttl = header.ttl - 1
            if ttl <= 0:
                conn.count_drop(DropReason.TTL_EXPIRED, "ttl reached 0")
                return
            header.ttl = ttl
        exclude_peer = conn.conn_type is _PEER and not self.relay_peer_publishes
        conns = self.conns
        if header.HasField("forward_to"):
            target = conns.get(header.forward_to)
            if target is None or target.state is not _UP:
                conn.count_drop(DropReason.UNKNOWN_CONN, f"forward_to {header.forward_to}")
                return
            header.ClearField("forward_to")
            header.ClearField("recv_from")
            self._send_header_msg(target, msg, header)
            return
        enc = header.destination.name
        table = self.table
        if header.fanout == UNICAST_FANOUT:
            nid = enc.name_id
            key = RouteKey(
                enc.component_0,
                enc.component_1,
                enc.component_2,
                (nid.id_0 << 64 | nid.id_1) if enc.HasField("name_id") else NULL_ID,
            )
            out = table.match_one(key, in_id, exclude_peer)
            if out is None:
                conn.count_drop(
                    DropReason.NO_ROUTE, f"no subscriber for {_display(header.destination)}"
                )
                return
            target = conns.get(out)
            if target is None or target.state is not _UP:
                conn.count_drop(DropReason.NO_ROUTE, f"conn {out} is down")
                return
            if header.HasField("recv_from"):
                header.ClearField("recv_from")
            self._send_header_msg(target, msg, header)
            return
        outs = self._match_all(enc, in_id, exclude_peer)
        if not outs:
            conn.count_drop(
                DropReason.NO_ROUTE, f"no subscriber for {_name_key(header.destination)}"
            )
            return
        if header.HasField("recv_from"):
            header.ClearField("recv_from")
        for out in outs:
            target = conns.get(out)
            if target is not None and target.state is _UP:
                self._send_header_msg(target, msg, header)

    def _match_all(self, enc: pb.EncodedName, skip: int, exclude_peer: bool) -> list[int]:
        table = self.table
        if self._all_cache_gen != table.generation:
            self._all_cache.clear()
            self._all_cache_gen = table.generation
        has_id = enc.HasField("name_id")
        nid = enc.name_id
        name_id = (nid.id_0 << 64 | nid.id_1) if has_id else NULL_ID
        ck = (enc.component_0, enc.component_1, enc.component_2, name_id, skip, exclude_peer)
        outs = self._all_cache.get(ck)
        if outs is None:
            key = RouteKey(enc.component_0, enc.component_1, enc.component_2, name_id)
            outs = self._all_cache[ck] = table.match_all(key, skip, exclude_peer)
        return outs

    # -- subscriptions ---------------------------------------------------------------------

    def _ack(self, conn: Conn, subscription_id: int, error: str | None) -> None:
        if subscription_id == 0 or conn.state is not _UP:
            return
        msg = pb.Message()
        ack = msg.subscription_ack
        ack.subscription_id = subscription_id
        ack.success = error is None
        if error is not None:
            ack.error = error
        self._emit(conn, msg.SerializeToString())

    def _on_subscription(
        self, conn: Conn, msg: pb.Message, sub: pb.Subscribe | pb.Unsubscribe, add: bool
    ) -> None:
        header = sub.header
        if not (sub.HasField("header") and _valid_header(header)):
            conn.count_drop(DropReason.INVALID, "subscription without header or names")
            return
        if conn.verifies and not self._check_mac(conn, header, False):
            return
        in_id = conn.conn_id
        header.incoming_conn = in_id
        if conn.conn_type is not _LOCAL:
            ttl = header.ttl - 1 if header.ttl > 0 else 0
            if ttl == 0:
                conn.count_drop(DropReason.TTL_EXPIRED, "ttl reached 0")
                return
            header.ttl = ttl
        sid = sub.subscription_id
        has_recv_from = header.HasField("recv_from")
        eff_id = header.recv_from if has_recv_from else in_id
        fwd: Conn | None = None
        if header.HasField("forward_to"):
            fwd = self.conns.get(header.forward_to)
            if fwd is not None and (fwd.conn_type is _LOCAL or fwd.state is not _UP):
                fwd = None
        eff = self.conns.get(eff_id)
        if eff is None or eff.state is not _UP:
            conn.count_drop(DropReason.UNKNOWN_CONN, f"subscription for unknown conn {eff_id}")
            self._ack(conn, sid, f"connection not found: {eff_id}")
            return
        if has_recv_from and eff.conn_type is _LOCAL:
            self._ack(conn, sid, None)
            return
        if add and sid != 0 and self._announcer.seen(sid):
            self._ack(conn, sid, None)  # our own subscription came back round a loop
            return
        dst = header.destination
        key = _name_key(dst)
        strings = _strings(dst)
        try:
            if add:
                transition = self.table.add(key, strings, eff_id, eff.conn_type, sid)
            else:
                transition = self.table.remove(key, eff_id, eff.conn_type, sid)
        except SubscriptionError as exc:
            self._ack(conn, sid, exc.reason)
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("conn %d: unsubscribe %s refused: %s", in_id, key, exc.reason)
            return
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "conn %d: %s %s for conn %d (%s), id %d, transition %s",
                in_id,
                "subscribe" if add else "unsubscribe",
                "/".join(strings),
                eff_id,
                eff.conn_type.name.lower(),
                sid,
                transition,
            )
        self._announcer.update(key, strings)
        if fwd is not None:
            header.ClearField("forward_to")
            header.ClearField("recv_from")
            if add and sid != 0:
                self._remember(sid)
            if sid != 0:
                self._pending_acks[sid] = in_id
            if self._send_header_msg(fwd, msg, header) or sid == 0:
                return
            self._pending_acks.pop(sid, None)
            self._ack(conn, sid, "could not forward the subscription")
            return
        self._ack(conn, sid, None)

    def _on_ack(self, conn: Conn, ack: pb.SubscriptionAck) -> None:
        upstream_id = self._pending_acks.pop(ack.subscription_id, None)
        if upstream_id is not None:
            upstream = self.conns.get(upstream_id)
            if upstream is not None:
                self._ack(upstream, ack.subscription_id, None if ack.success else ack.error)
            return
        if not ack.success:
            _log.warning(
                "conn %d refused subscription %d: %s", conn.conn_id, ack.subscription_id, ack.error
            )

    def announced(self, conn_id: int) -> dict[RouteKey, int]:
        """What this node announced on remote/peer link ``conn_id`` (name key -> sub id)."""
        return self._announcer.announced(conn_id)

    def _remember(self, sid: int) -> None:
        self._announcer.remember(sid)
        if len(self._pending_acks) > SEEN_SUB_IDS_MAX:  # next hops that never ack
            for old in list(itertools.islice(self._pending_acks, SEEN_SUB_IDS_MAX // 2)):
                del self._pending_acks[old]
