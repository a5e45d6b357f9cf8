"""Policy enforcement in a node's forwarder: the ``authorizer`` hook (sans-IO).

The forwarder hands every batch received on an **app** link (connection types Local and Edge:
what an SDK dials) to :meth:`NodeAuthorizer.filter_batch` before routing it. Messages from
remote and peer links are never re-checked: the edge node that took them from the app did.

Why a pre-filter and not checks inside the routing loop: the node's hot path (the fused raw
path in ``Relay`` and the inline unicast loop) is tuned per instruction by its owner; a filter
in front of it keeps that code untouched, costs nothing when no policy is configured, and sees
every message kind in one place. Allowed messages go on as they came (same bytes); a refused
one is answered here and removed from the batch.

What a refusal looks like to the app:

* a Subscribe: the failed ``SubscriptionAck`` for its id, carrying the reason (exactly how the
  reference's node refuses a subscription, so every SDK already surfaces it);
* a Publish: never forwarded, counted as a drop, logged with the identity, and answered with a
  **denial notice**: a ``SubscriptionAck`` with ``subscription_id = 0`` and ``success = false``
  whose ``error`` is the reference's JSON ``ErrorPayload`` (``{"error": ..., "session_context":
  {message_id, session_id, session_message_type}}``). A reference app resolves acks only by
  the ids it is waiting for (``resolve_ack`` ignores unknown ids), so the notice cannot disturb
  it; the alternative the reference uses for its in-process apps, a gRPC ``Status::internal``,
  ends the app's stream, and a publish bounced back with ``header.error`` would read as an RTX
  "message no longer available". A slimwire client reads the notice with
  :func:`parse_denial_notice` and raises it on the session the message belonged to.

A Subscribe without an identity token (reference apps send their group-channel subscriptions
without one) is judged as the last identity verified on the same link: the app proved who it is
with its first, token-bearing subscribe.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from google.protobuf.message import DecodeError

from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import AuthError
from slimwire.link import FrameKind, parse_frame
from slimwire.link import read_varint as _varint
from slimwire.names import format_id
from slimwire.policy._model import Action, Decision, NameKey, NamePattern

if TYPE_CHECKING:
    from slimwire.link import Frame

__all__ = [
    "Authorizer",
    "DenialNotice",
    "NodeAuthorizer",
    "denial_notice",
    "frame_identity",
    "parse_denial_notice",
]

_log = logging.getLogger(__name__)
_U32 = struct.Struct("<I").pack

_INVITE_TYPES = frozenset(
    (
        pb.SESSION_MESSAGE_TYPE_DISCOVERY_REQUEST,
        pb.SESSION_MESSAGE_TYPE_JOIN_REQUEST,
    )
)
_MAX_LOGGED = 8
"""Denials logged at WARNING per (subject, action, reason) before the rest go to DEBUG."""


class Authorizer(Protocol):
    """What the forwarder needs: ``decide(identity_token, action, name_key) -> Decision``
    (:class:`slimwire.policy.PolicyEngine` is one)."""

    def decide(self, identity_token: str | bytes, action: Action, name: NameKey) -> Decision: ...


class DenialNotice(NamedTuple):
    """A refused publish as the app sees it (see :func:`parse_denial_notice`)."""

    error: str
    session_id: int | None
    message_id: int | None
    session_message_type: int | None


class _Ctx(NamedTuple):
    session_type: int
    session_message_type: int
    session_id: int
    message_id: int


def _fields(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, value start or varint value, value end) of each field in
    ``buf[start:end]``; raises DecodeError/IndexError on malformed input."""
    out = []
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise DecodeError("field 0")
        if wt == 0:
            value, pos = _varint(buf, pos)
            out.append((num, wt, value, pos))
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            if pos + ln > end:
                raise DecodeError("truncated")
            out.append((num, wt, pos, pos + ln))
            pos += ln
        elif wt == 1:
            pos += 8
            out.append((num, wt, pos - 8, pos))
        elif wt == 5:
            pos += 4
            out.append((num, wt, pos - 4, pos))
        else:
            raise DecodeError(f"wire type {wt}")
    if pos != end:
        raise DecodeError("truncated")
    return out


def frame_identity(frame: Frame) -> bytes:
    """``header.identity`` of a frame, as raw bytes (last occurrence wins, as in protobuf).

    Fast case: protobuf's layout puts the identity right after the two names; the candidate
    found there is the one the link layer read when it is what the frame's MAC preimage
    (``names || u32 len || identity || u32 fanout``) ends with. Otherwise a field walk.
    """
    raw = frame.raw
    hs = frame.header_start
    try:
        if raw[hs] == 0x0A and raw[hs + 1] < 0x80:
            q = hs + 2 + raw[hs + 1]
            if raw[q] == 0x12 and raw[q + 1] < 0x80:
                q += 2 + raw[q + 1]
                if raw[q] == 0x1A:
                    ln = raw[q + 1]
                    i = q + 2
                    if ln >= 0x80 and raw[i] < 0x80:
                        ln = (ln & 0x7F) | (raw[i] << 7)
                        i += 1
                    if ln < 0x4000:
                        ident = raw[i : i + ln]
                        body = frame.body
                        if body[-8 - ln : -4] == _U32(ln) + ident:
                            return ident
    except IndexError:
        pass
    ident = b""
    for num, wt, a, b in _fields(raw, frame.header_start, frame.header_end):
        if num == 3 and wt == 2:
            ident = raw[a:b]
    return ident


def _frame_session(frame: Frame) -> _Ctx | None:
    """The session header of a Publish frame (None when absent or unreadable)."""
    raw = frame.raw
    try:
        pos = frame.header_end
        if pos < frame.body_end and raw[pos] == 0x12 and raw[pos + 1] < 0x80:
            # protobuf's layout: the session header right after the header
            return _session_fields(raw, pos + 2, pos + 2 + raw[pos + 1])
        sess = None
        for num, wt, a, b in _fields(raw, frame.body_start, frame.body_end):
            if num == 2 and wt == 2:
                sess = (a, b)
        if sess is None:
            return None
        return _session_fields(raw, sess[0], sess[1])
    except (DecodeError, IndexError):
        return None


def _session_fields(raw: bytes, start: int, end: int) -> _Ctx:
    vals = [0, 0, 0, 0]
    for num, wt, v, _ in _fields(raw, start, end):
        if 1 <= num <= 4 and wt == 0:
            vals[num - 1] = v
    return _Ctx(*vals)


def denial_notice(reason: str, ctx: _Ctx | None) -> bytes:
    """The serialized notice for a refused publish (see the module docstring)."""
    payload: dict[str, object] = {"error": reason}
    if ctx is not None:
        payload["session_context"] = {
            "message_id": ctx.message_id,
            "session_id": ctx.session_id,
            "session_message_type": ctx.session_message_type,
        }
    msg = pb.Message()
    ack = msg.subscription_ack
    ack.subscription_id = 0
    ack.success = False
    ack.error = json.dumps(payload, separators=(",", ":"))
    return msg.SerializeToString()


def _failed_ack(subscription_id: int, reason: str) -> bytes | None:
    if subscription_id == 0:
        return None  # the reference never acks id 0
    msg = pb.Message()
    ack = msg.subscription_ack
    ack.subscription_id = subscription_id
    ack.success = False
    ack.error = reason
    return msg.SerializeToString()


def parse_denial_notice(ack: pb.SubscriptionAck) -> DenialNotice | None:
    """A node's denial notice, or None when ``ack`` is an ordinary SubscriptionAck."""
    if ack.subscription_id != 0 or ack.success or not ack.error.startswith("{"):
        return None
    if len(ack.error) > 65536:
        return None
    try:
        data = json.loads(ack.error)
    except (ValueError, RecursionError):  # deep nesting from a hostile node
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None
    ctx = data.get("session_context")
    if not isinstance(ctx, dict):
        return DenialNotice(data["error"], None, None, None)

    def num(key: str) -> int | None:
        v = ctx.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    return DenialNotice(
        data["error"], num("session_id"), num("message_id"), num("session_message_type")
    )


_FLOWS_MAX = 65536
_INVITE_BYTES = frozenset(
    (
        pb.SESSION_MESSAGE_TYPE_DISCOVERY_REQUEST,
        pb.SESSION_MESSAGE_TYPE_JOIN_REQUEST,
    )
)


def _flow_key(raw: bytes) -> bytes | None:
    """For a Publish laid out the way protobuf writes it: its whole header (source,
    destination, identity token, ...) plus one byte saying whether the session message type is
    an invite: everything a publish decision depends on, found with a handful of byte tests.
    The whole header, not just the fields the decision reads, so that two messages with the
    same key parse to the same decision whatever the encoding tricks (a repeated identity
    field, say). None for anything else (judged the slow way)."""
    try:
        if raw[0] != 0x1A:
            return None
        p = 2
        if raw[1] >= 0x80:
            if raw[2] >= 0x80:
                return None
            p = 3
        if raw[p] != 0x0A:
            return None
        hl = raw[p + 1]
        hs = p + 2
        if hl >= 0x80:
            if raw[hs] >= 0x80:
                return None
            hl = (hl & 0x7F) | (raw[hs] << 7)
            hs += 1
        he = hs + hl
        if raw[he] != 0x12:
            return None
        s = he + 2  # session header: session_type (1), session_message_type (2), ...
        if raw[he + 1] >= 0x80:
            return None
        if raw[s] == 0x08:
            s += 2
            if raw[s - 1] >= 0x80:
                return None
        smt = raw[s + 1] if raw[s] == 0x10 else 0
        if smt >= 0x80:
            return None
        return raw[hs:he] + (b"\x01" if smt in _INVITE_BYTES else b"\x00")
    except IndexError:
        return None


class _Msg(NamedTuple):
    """What the filter needs of one message, from the raw path or from protobuf."""

    kind: FrameKind
    identity: bytes
    source: NameKey
    destination: NameKey
    subscription_id: int
    ctx: _Ctx | None


def _from_proto(data: bytes) -> _Msg | None:
    try:
        msg = pb.Message.FromString(data)
    except DecodeError:
        return None
    kind = msg.WhichOneof("message_type")
    if kind == "publish":
        p = msg.publish
        s = p.session
        ctx = _Ctx(s.session_type, s.session_message_type, s.session_id, s.message_id)
        h = p.header
        return _Msg(
            FrameKind.PUBLISH, h.identity.encode(), _key(h.source), _key(h.destination), 0, ctx
        )
    if kind == "subscribe":
        sub = msg.subscribe
        return _Msg(
            FrameKind.SUBSCRIBE,
            sub.header.identity.encode(),
            _key(sub.header.source),
            _key(sub.header.destination),
            sub.subscription_id,
            None,
        )
    return None


def _key(name: pb.Name) -> NameKey:
    enc = name.name
    nid = enc.name_id
    return (
        enc.component_0,
        enc.component_1,
        enc.component_2,
        (nid.id_0 << 64 | nid.id_1) if enc.HasField("name_id") else (1 << 128) - 1,
    )


def _subscription_id(frame: Frame) -> int:
    raw = frame.raw
    sid = 0
    for num, wt, v, _ in _fields(raw, frame.body_start, frame.body_end):
        if num == 2 and wt == 0:
            sid = v
    return sid


class NodeAuthorizer:
    """The forwarder's ``authorizer``: decisions, per-link identities, counters, refusals.

    ``engine`` is anything with ``decide`` (a :class:`~slimwire.policy.PolicyEngine`).
    Allowed publishes are remembered per **flow** (the exact header bytes, so the same source,
    destination and token) until the token expires or the policy changes: a flow costs one
    decision, then a slice and a dict lookup per message (``flow_cache_size`` flows at most).
    ``self_certifying`` are name patterns of **self-certifying** apps: a message whose
    *source* matches one must come from a token whose key (``pubkey``) derives the source's
    id (``slimwire.auth.name_id_from_public_key``), or the reference's id of its subject;
    otherwise it is refused whatever the rules say (needs a
    :class:`~slimwire.policy.PolicyEngine`, which knows principals).
    """

    def __init__(
        self,
        engine: Authorizer,
        *,
        self_certifying: tuple[NamePattern, ...] = (),
        clock: Callable[[], float] = time.time,
        flow_cache_size: int = _FLOWS_MAX,
    ) -> None:
        self.engine = engine
        self._flows_max = max(1, flow_cache_size)
        self._clock = clock
        self.self_certifying = self_certifying
        self._bound: dict[tuple[bytes, NameKey], Decision | None] = {}
        # allowed publish flows: (source, destination, identity, invite?) bytes -> token expiry
        self._flows: dict[bytes, float] = {}
        self._flow_generation = -1
        self._fast_publish = 0
        self.allowed: Counter[str] = Counter()
        self.denied: Counter[str] = Counter()
        self._link_token: dict[int, bytes] = {}
        self._logged: Counter[tuple[str, str]] = Counter()

    def counters(self) -> dict[str, dict[str, int]]:
        """``{"allowed": {action: n}, "denied": {action: n}}`` since start."""
        allowed = dict(self.allowed)
        allowed["publish"] = allowed.get("publish", 0) + self._fast_publish
        return {
            "allowed": {a.value: allowed.get(a.value, 0) for a in Action},
            "denied": {a.value: self.denied[a.value] for a in Action},
        }

    def forget_link(self, conn_id: int) -> None:
        self._link_token.pop(conn_id, None)

    def decide(self, identity: bytes, action: Action, key: NameKey) -> Decision:
        """One decision, counted."""
        d = self.engine.decide(identity, action, key)
        (self.allowed if d.allowed else self.denied)[action.value] += 1
        return d

    def filter_batch(
        self,
        conn_id: int,
        batch: list[bytes],
        refuse: Callable[[Decision, FrameKind, bytes | None], None],
        mac_ok: Callable[[Frame], bool] | None = None,
    ) -> list[bytes]:
        """``batch`` without the messages the policy refuses; ``refuse(decision, kind, reply)``
        is called for each of those: the forwarder counts the drop and sends ``reply`` (the
        failed SubscriptionAck or the denial notice; None when there is nothing to answer) to
        the app.

        ``mac_ok`` (links with header MACs) is asked only about a refused message: one whose
        MAC does not verify stays in the batch so the forwarder counts it as a MAC failure, as
        it would without a policy. Messages neither raw path nor protobuf can read stay too
        (the forwarder drops them with its own reason).
        """
        store = getattr(self.engine, "store", None)
        generation = store.generation if store is not None else 0
        if generation != self._flow_generation:  # a new policy: every flow is judged again
            self._flows.clear()
            self._flow_generation = generation
        flows = self._flows
        now = self._clock()
        out: list[bytes] | None = None
        fast = 0
        for idx, data in enumerate(batch):
            key = _flow_key(data)
            if key is not None:
                until = flows.get(key)
                if until is not None and now <= until:
                    fast += 1
                    if out is not None:
                        out.append(data)
                    continue
            verdict = self._check(conn_id, data, mac_ok, key)
            if verdict is None:
                if out is not None:
                    out.append(data)
                continue
            if out is None:
                out = batch[:idx]
            refuse(*verdict)
        self._fast_publish += fast
        return batch if out is None else out

    def _check(
        self,
        conn_id: int,
        data: bytes,
        mac_ok: Callable[[Frame], bool] | None,
        flow: bytes | None = None,
    ) -> tuple[Decision, FrameKind, bytes | None] | None:
        frame = parse_frame(data)
        if frame is not None:
            if frame.kind is FrameKind.UNSUBSCRIBE:
                return None
            try:
                ident = frame_identity(frame)
                sid = _subscription_id(frame) if frame.kind is FrameKind.SUBSCRIBE else 0
            except (DecodeError, IndexError):
                return None
            m = _Msg(frame.kind, ident, frame.source, frame.destination, sid, None)
        else:
            parsed = _from_proto(data)
            if parsed is None:
                return None
            m = parsed
        ident = m.identity
        if m.kind is FrameKind.SUBSCRIBE:
            if not ident:
                ident = self._link_token.get(conn_id, b"")
            d = self.decide(ident, Action.SUBSCRIBE, m.destination)
        else:
            d = self.decide(ident, Action.PUBLISH, m.destination)
            if d.allowed:
                if flow is not None:  # the flow key's last byte: is it an invite?
                    invite = flow[-1] == 1
                else:
                    ctx = m.ctx if frame is None else _frame_session(frame)
                    invite = ctx is not None and ctx.session_message_type in _INVITE_TYPES
                if invite:
                    d = self.decide(ident, Action.INVITE, m.destination)
        if d.allowed and self.self_certifying:
            d = self._check_source(ident, m, d)
        if d.allowed:
            if flow is not None and m.kind is FrameKind.PUBLISH:
                self._remember_flow(flow, ident)
            if m.identity and self._link_token.get(conn_id) != m.identity:
                self._link_token[conn_id] = m.identity
            return None
        if frame is not None and mac_ok is not None and not mac_ok(frame):
            return None
        self._log(conn_id, ident, d)
        if m.kind is FrameKind.SUBSCRIBE:
            return d, m.kind, _failed_ack(m.subscription_id, d.reason)
        ctx = m.ctx if frame is None else _frame_session(frame)
        return d, m.kind, denial_notice(d.reason, ctx)

    def _remember_flow(self, flow: bytes, ident: bytes) -> None:
        """Cache an allowed publish flow until its token expires (engines that expose
        principals only: the expiry comes from there)."""
        principal_of = getattr(self.engine, "principal", None)
        if principal_of is None:
            return
        try:
            until = principal_of(ident)[0].expires_at
        except AuthError:
            return
        if len(self._flows) >= self._flows_max:
            self._flows.clear()
        self._flows[flow] = until

    def _check_source(self, ident: bytes, m: _Msg, d: Decision) -> Decision:
        """The self-certifying rule (cached per token and source)."""
        ck = (ident, m.source)
        if ck in self._bound:
            refused = self._bound[ck]
        else:
            refused = None
            if any(p.matches(m.source) for p in self.self_certifying):
                principal_of = getattr(self.engine, "principal", None)
                try:
                    principal = principal_of(ident)[0] if principal_of else None
                except AuthError as exc:
                    principal = None
                    refused = Decision(False, f"{m.kind.name.lower()} denied: {exc}")
                if refused is None and (principal is None or m.source[3] not in principal.own_ids):
                    refused = Decision(
                        False,
                        f"{m.kind.name.lower()} denied: source id {format_id(m.source[3])} "
                        "is not derived from the identity's key",
                    )
            if len(self._bound) >= 65536:
                self._bound.clear()
            self._bound[ck] = refused
        if refused is None:
            return d
        action = Action.SUBSCRIBE if m.kind is FrameKind.SUBSCRIBE else Action.PUBLISH
        self.allowed[action.value] -= 1
        self.denied[action.value] += 1
        return refused

    def _log(self, conn_id: int, ident: bytes, d: Decision) -> None:
        who = _subject_of(ident)
        key = (who, d.reason)
        self._logged[key] += 1
        level = logging.WARNING if self._logged[key] <= _MAX_LOGGED else logging.DEBUG
        if _log.isEnabledFor(level):
            _log.log(level, "conn %d: %s (identity %r)", conn_id, d.reason, who)
        if len(self._logged) > 4096:
            self._logged.clear()


def _subject_of(ident: bytes) -> str:
    """A short, log-safe name for a token: a shared-secret token's subject, a JWT's ``sub``
    (unverified: only for the log line), else a prefix."""
    text = ident.decode("utf-8", "replace")
    if not text:
        return "<none>"
    if text.count(".") == 2 and text.startswith("ey"):
        try:
            from slimwire.auth import decode_unverified

            _, claims, _, _ = decode_unverified(text)
            sub = claims.get("sub")
            if isinstance(sub, str):
                return sub[:120]
        except Exception:  # a log label must never fail the node
            pass
    return text.split(":", 1)[0][:120]
