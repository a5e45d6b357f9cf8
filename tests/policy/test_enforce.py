"""The forwarder's authorizer hook, sans-IO: refused subscribes get a failed ack and change
nothing, refused publishes reach nobody and come back as a denial notice, invites, the fused
path on MAC'd edge links, self-certifying sources, and a fuzz of the raw readers."""

from __future__ import annotations

import contextlib

from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import (
    DEFAULT_VALIDITY_WINDOW,
    Identity,
    SharedSecretProvider,
    SharedSecretVerifier,
)
from slimwire.auth._ni import name_id_from_public_key
from slimwire.dataplane import ConnType, Forwarder
from slimwire.link import parse_frame
from slimwire.names import Name
from slimwire.policy import (
    NamePattern,
    NodeAuthorizer,
    PolicyEngine,
    frame_identity,
    load_policy,
    parse_denial_notice,
)
from tests.dataplane._helpers import TestMac

SECRET = "abcdefghijklmnopqrstuvwxyz012345"
POLICY = {
    "default": "deny",
    "rules": [
        {"id": "alice", "effect": "allow", "subjects": ["org/ns/alice*"], "actions": "*",
         "names": ["org/ns"]},
        {"id": "bob-reads", "effect": "allow", "subjects": ["org/ns/bob*"],
         "actions": ["subscribe"], "names": ["org/ns/bob"]},
        {"id": "bob-writes", "effect": "allow", "subjects": ["org/ns/bob*"],
         "actions": ["publish"], "names": ["org/ns/alice"]},
        {"id": "no-invite", "effect": "deny", "subjects": ["org/ns/bob*"],
         "actions": ["invite"], "names": ["*"]},
    ],
}  # fmt: skip


def _token(base: str) -> tuple[Identity, str]:
    ident = Identity.generate(base)
    return ident, SharedSecretProvider(ident, SECRET).token()


def _sub(name: Name, sid: int, token: str, mac: object | None = None) -> bytes:
    msg = pb.Message()
    s = msg.subscribe
    s.subscription_id = sid
    name.fill_proto(s.header.source)
    name.fill_proto(s.header.destination)
    s.header.fanout = 1
    s.header.ttl = 8
    s.header.identity = token
    if mac is not None:
        mac.sign(s.header)  # type: ignore[attr-defined]
    return msg.SerializeToString()


def _pub(
    src: Name, dst: Name, token: str, *, smt: int = 1, mac: object | None = None, sid: int = 9
) -> bytes:
    msg = pb.Message()
    p = msg.publish
    src.fill_proto(p.header.source)
    dst.fill_proto(p.header.destination)
    p.header.fanout = 1
    p.header.ttl = 8
    p.header.identity = token
    p.session.session_id = sid
    p.session.message_id = 3
    p.session.session_message_type = smt  # type: ignore[assignment]
    p.msg.app_payload.blob = b"x"
    if mac is not None:
        mac.sign(p.header)  # type: ignore[attr-defined]
    return msg.SerializeToString()


def _node(
    conn_type: ConnType = ConnType.EDGE, **kw: object
) -> tuple[Forwarder, NodeAuthorizer, dict[str, object]]:
    engine = PolicyEngine(load_policy(POLICY), SharedSecretVerifier(SECRET))
    auth = NodeAuthorizer(engine, **kw)  # type: ignore[arg-type]
    fwd = Forwarder("n", authorizer=auth)
    macs = {k: TestMac(k.encode()) for k in ("a", "b")}
    ids: dict[str, object] = {}
    for k, mac in macs.items():
        use_mac = mac if conn_type is ConnType.EDGE else None
        ids[k] = fwd.add_connection(conn_type, mac=use_mac, remote=k)
        ids[k + "mac"] = use_mac
    return fwd, auth, ids


def _outputs(fwd: Forwarder) -> dict[int, list[pb.Message]]:
    return {cid: [pb.Message.FromString(m) for m in msgs] for cid, msgs in fwd.take_outputs()}


ALICE = Name("org", "ns", "alice", 1)
BOB = Name("org", "ns", "bob", 2)


def test_subscribe_allowed_and_denied_with_reason_in_ack() -> None:
    fwd, auth, ids = _node()
    _, ta = _token("org/ns/alice")
    _, tb = _token("org/ns/bob")
    fwd.receive(ids["a"], _sub(ALICE, 11, ta, ids["amac"]))  # type: ignore[arg-type]
    fwd.receive(ids["b"], _sub(ALICE, 12, tb, ids["bmac"]))  # type: ignore[arg-type]
    out = _outputs(fwd)
    assert out[ids["a"]][0].subscription_ack.success  # type: ignore[index]
    ack = out[ids["b"]][0].subscription_ack  # type: ignore[index]
    assert not ack.success
    assert ack.subscription_id == 12
    assert "subscribe denied" in ack.error
    assert "default deny" in ack.error
    assert [e.edge for e in fwd.subscriptions()] == [(ids["a"],)]
    assert auth.counters()["denied"]["subscribe"] == 1
    assert auth.counters()["allowed"]["subscribe"] == 1


def test_denied_publish_reaches_nobody_and_sender_gets_notice() -> None:
    fwd, auth, ids = _node()
    _, ta = _token("org/ns/alice")
    _, tb = _token("org/ns/bob")
    amac, bmac = ids["amac"], ids["bmac"]
    fwd.receive(ids["a"], _sub(ALICE, 11, ta, amac))  # type: ignore[arg-type]
    fwd.receive(ids["b"], _sub(BOB, 12, tb, bmac))  # type: ignore[arg-type]
    fwd.take_outputs()
    # bob may publish to alice (fused path on the MAC'd link), not to himself's neighbours
    batch = [_pub(BOB, ALICE, tb, mac=bmac) for _ in range(3)]
    batch.insert(1, _pub(BOB, Name("org", "ns", "carol", 5), tb, mac=bmac, sid=77))
    fwd.receive_batch(ids["b"], batch)  # type: ignore[arg-type]
    out = _outputs(fwd)
    assert len(out[ids["a"]]) == 3  # type: ignore[index]
    notices = [m.subscription_ack for m in out[ids["b"]]]  # type: ignore[index]
    assert len(notices) == 1
    notice = parse_denial_notice(notices[0])
    assert notice is not None
    assert notice.session_id == 77
    assert notice.message_id == 3
    assert "publish denied" in notice.error
    assert auth.counters()["denied"]["publish"] == 1
    assert auth.counters()["allowed"]["publish"] == 3
    drops = next(c.drops for c in fwd.connections() if c.conn_id == ids["b"])
    assert {r.value: n for r, n in drops.items()} == {"denied": 1}


def test_invite_checked_on_discovery_and_join_requests() -> None:
    fwd, auth, ids = _node(ConnType.LOCAL)
    _, ta = _token("org/ns/alice")
    _, tb = _token("org/ns/bob")
    fwd.receive(ids["a"], _sub(ALICE, 11, ta))  # type: ignore[arg-type]
    fwd.take_outputs()
    for smt in (pb.SESSION_MESSAGE_TYPE_DISCOVERY_REQUEST, pb.SESSION_MESSAGE_TYPE_JOIN_REQUEST):
        fwd.receive(ids["b"], _pub(BOB, ALICE, tb, smt=smt))  # type: ignore[arg-type]
    out = _outputs(fwd)
    assert ids["a"] not in out
    assert all("invite denied" in m.subscription_ack.error for m in out[ids["b"]])  # type: ignore[index]
    assert auth.counters()["denied"]["invite"] == 2


def test_refused_publish_with_bad_mac_is_a_mac_drop_without_notice() -> None:
    fwd, auth, ids = _node()
    _, tb = _token("org/ns/bob")
    carol = Name("org", "ns", "carol", 5)
    fwd.receive(ids["b"], _pub(BOB, carol, tb, mac=TestMac(b"wrong")))  # type: ignore[arg-type]
    assert fwd.take_outputs() == []
    conn = next(c for c in fwd.connections() if c.conn_id == ids["b"])
    assert any(r.value == "bad_mac" for r in conn.drops)
    assert auth.counters()["denied"]["publish"] == 1


def test_subscribe_without_token_uses_the_links_identity() -> None:
    fwd, _, ids = _node(ConnType.LOCAL)
    _, ta = _token("org/ns/alice")
    fwd.receive(ids["a"], _sub(ALICE, 11, ta))
    fwd.receive(ids["a"], _sub(Name("org", "ns", "chat", 0), 12, ""))  # type: ignore[arg-type]
    fwd.receive(ids["b"], _sub(Name("org", "ns", "chat", 0), 13, ""))  # type: ignore[arg-type]
    out = _outputs(fwd)
    assert [m.subscription_ack.success for m in out[ids["a"]]] == [True, True]  # type: ignore[index]
    assert not out[ids["b"]][0].subscription_ack.success  # type: ignore[index]


def test_self_certifying_source_must_match_the_tokens_key() -> None:
    fwd, auth, ids = _node(ConnType.LOCAL, self_certifying=(NamePattern.parse("org/ns/alice"),))
    ident, ta = _token("org/ns/alice")
    own = Name("org", "ns", "alice", name_id_from_public_key(ident.public_key))
    other, _ = _token("org/ns/alice")
    forged = Name("org", "ns", "alice", name_id_from_public_key(other.public_key))
    fwd.receive(ids["a"], _sub(own, 11, ta))  # type: ignore[arg-type]
    fwd.receive(ids["a"], _sub(forged, 12, ta))  # type: ignore[arg-type]
    out = _outputs(fwd)
    acks = [m.subscription_ack for m in out[ids["a"]]]  # type: ignore[index]
    assert acks[0].success
    assert not acks[1].success
    assert "not derived from the identity's key" in acks[1].error
    assert auth.counters()["denied"]["subscribe"] == 1


def test_forged_token_denied() -> None:
    fwd, _, ids = _node(ConnType.LOCAL)
    ident = Identity.generate("org/ns/alice")
    forged = SharedSecretProvider(ident, "x" * 32).token()
    fwd.receive(ids["a"], _sub(ALICE, 11, forged))  # type: ignore[arg-type]
    ack = _outputs(fwd)[ids["a"]][0].subscription_ack  # type: ignore[index]
    assert not ack.success
    assert "invalid identity" in ack.error


def test_no_authorizer_no_checks() -> None:
    fwd = Forwarder("n")
    a = fwd.add_connection(ConnType.LOCAL)
    fwd.receive(a, _sub(ALICE, 11, ""))
    assert pb.Message.FromString(fwd.take_outputs()[0][1][0]).subscription_ack.success


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_raw_readers_never_raise(data: bytes) -> None:
    fwd, _, ids = _node(ConnType.LOCAL)
    frame = parse_frame(data)
    if frame is not None:
        with contextlib.suppress(DecodeError, IndexError):  # the documented decode errors
            frame_identity(frame)
    fwd.receive_batch(ids["a"], [data])  # type: ignore[arg-type]
    fwd.take_outputs()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.integers(0, 2**32 - 1))
def test_identity_and_session_read_like_protobuf(token: str, sid: int) -> None:
    raw = _pub(BOB, ALICE, token, sid=sid)
    frame = parse_frame(raw)
    assert frame is not None
    assert frame_identity(frame) == token.encode()
    notice = pb.SubscriptionAck()
    from slimwire.policy._enforce import _frame_session, denial_notice

    ctx = _frame_session(frame)
    assert ctx is not None
    assert ctx.session_id == sid
    assert ctx.message_id == 3
    notice.ParseFromString(pb.Message.FromString(denial_notice("r", ctx)).subscription_ack
                           .SerializeToString())  # fmt: skip
    parsed = parse_denial_notice(notice)
    assert parsed is not None
    assert parsed.session_id == sid
    assert parsed.error == "r"


def test_flow_cache_follows_reload_and_token_expiry() -> None:
    from slimwire.policy import PolicyStore

    now = [1_800_000_000.0]
    store = PolicyStore(load_policy(POLICY))
    engine = PolicyEngine(store, SharedSecretVerifier(SECRET, clock=lambda: now[0]),
                          clock=lambda: now[0])  # fmt: skip
    auth = NodeAuthorizer(engine, clock=lambda: now[0])
    fwd = Forwarder("n", authorizer=auth)
    a = fwd.add_connection(ConnType.LOCAL)
    b = fwd.add_connection(ConnType.LOCAL)
    ident = Identity.generate("org/ns/alice")
    ta = SharedSecretProvider(ident, SECRET, clock=lambda: now[0]).token()
    fwd.receive(a, _sub(ALICE, 11, ta))
    fwd.take_outputs()

    def send() -> bool:
        fwd.receive(b, _pub(BOB, ALICE, ta))
        out = _outputs(fwd)
        return a in out and out[a][0].WhichOneof("message_type") == "publish"

    assert send()
    assert send()  # from the flow cache
    assert auth.counters()["allowed"]["publish"] == 2
    store.replace(load_policy({"default": "deny", "rules": POLICY["rules"][1:]}))
    assert not send()  # a new policy: judged again, now denied
    store.replace(load_policy(POLICY))
    assert send()
    now[0] += DEFAULT_VALIDITY_WINDOW + 1  # the token expired: its cached flow is not used
    assert not send()


def test_repeated_identity_field_is_judged_like_protobuf() -> None:
    fwd, _, ids = _node(ConnType.LOCAL)
    _, ta = _token("org/ns/alice")
    _, tb = _token("org/ns/bob")
    fwd.receive(ids["a"], _sub(ALICE, 11, ta))  # type: ignore[arg-type]
    fwd.take_outputs()
    carol = Name("org", "ns", "carol", 5)
    allowed = _pub(ALICE, carol, ta)  # alice may publish anywhere in org/ns (no subscriber)
    msg = pb.Message.FromString(allowed)
    # bob's token appended as a second identity field: protobuf (and receivers) see bob
    extra = b"\x1a" + bytes([len(tb)]) + tb.encode() if len(tb) < 128 else b""
    if not extra:
        extra = b"\x1a" + bytes([len(tb) & 0x7F | 0x80, len(tb) >> 7]) + tb.encode()
    header = msg.publish.header.SerializeToString() + extra
    assert pb.SLIMHeader.FromString(header).identity == tb
    fwd.receive(ids["b"], allowed)  # type: ignore[arg-type]
    raw = bytearray()
    body = b"\x0a" + _len(header) + header + b"\x12" + _len(sess := msg.publish.session
            .SerializeToString()) + sess + b"\x1a" + _len(c := msg.publish.msg
            .SerializeToString()) + c  # fmt: skip
    raw += b"\x1a" + _len(body) + body
    fwd.take_outputs()
    fwd.receive(ids["b"], bytes(raw))  # type: ignore[arg-type]
    out = _outputs(fwd)
    notice = parse_denial_notice(out[ids["b"]][0].subscription_ack)  # type: ignore[index]
    assert notice is not None
    assert "publish denied" in notice.error


def _len(b: bytes) -> bytes:
    n = len(b)
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), st.booleans(), st.text(max_size=200))
def test_parse_denial_notice_never_raises(sid: int, success: bool, error: str) -> None:
    ack = pb.SubscriptionAck(subscription_id=sid, success=success, error=error)
    notice = parse_denial_notice(ack)
    if sid != 0 or success:
        assert notice is None
    elif notice is not None:
        assert isinstance(notice.error, str)


def test_parse_denial_notice_deep_nesting() -> None:
    deep = '{"error": ' + "[" * 50000 + "]" * 50000 + "}"
    assert parse_denial_notice(pb.SubscriptionAck(subscription_id=0, error=deep)) is None
    nested = '{"error":"x","session_context":' + "[" * 5000 + "]" * 5000 + "}"
    assert parse_denial_notice(pb.SubscriptionAck(subscription_id=0, error=nested)) is None
