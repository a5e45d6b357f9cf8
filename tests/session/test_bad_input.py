"""Bad input to the session layer: each is dropped with a logged reason, and the session goes on.

The probe is a GROUP_CLOSE from the initiator: accepted, it closes the responder's session (a
strong, visible effect), so a forged, mis-signed, id-0 or replayed one that is refused leaves the
session established and still delivering. A correctly signed fresh close is the control case.
"""

from __future__ import annotations

import logging
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import Identity, SharedSecretProvider, SharedSecretVerifier, sign_header
from slimwire.names import Name
from slimwire.session import (
    ControlReplayGuard,
    MessageReceived,
    SessionClosed,
    SessionConfig,
    SessionEstablished,
    SessionLayer,
    TokenCache,
)
from slimwire.session._wire import build_publish, command
from tests.session._net import SECRET, Net

GROUP_CLOSE = pb.SESSION_MESSAGE_TYPE_GROUP_CLOSE


def _layer(service: str, secret: str = SECRET, **kw: float) -> tuple[SessionLayer, Identity]:
    ident = Identity.generate(f"org/ns/{service}")
    local = Name("org", "ns", service, ident.name_id)
    layer = SessionLayer(
        local, SharedSecretProvider(ident, secret), SharedSecretVerifier(secret), **kw
    )
    return layer, ident


def _mls_pair() -> tuple[Net, SessionLayer, Identity, SessionLayer, int]:
    (alice, ident), (bob, _) = _layer("alice"), _layer("bob")
    net = Net([alice, bob])
    sid = alice.open(bob.local, SessionConfig.p2p(mls=True), net.now)
    net.settle()
    assert net.of("bob", SessionEstablished)
    return net, alice, ident, bob, sid


def _close(
    alice: SessionLayer, bob: SessionLayer, sid: int, ident: Identity, *, mid: int, token: str
) -> pb.Message:
    """A GROUP_CLOSE from alice to bob, signed with ``ident``'s key over ``token``."""
    cp = pb.GroupClosePayload()
    bob.local.fill_proto(cp.participants.add())
    alice.local.fill_proto(cp.participants.add())
    msg = build_publish(
        alice.local,
        bob.local,
        pb.SESSION_TYPE_POINT_TO_POINT,
        GROUP_CLOSE,
        session_id=sid,
        message_id=mid,
        cmd=command(group_close=cp),
    )
    msg.publish.header.identity = token
    sign_header(msg.publish, ident.signing_key)
    return msg


def _still_works(net: Net, alice: SessionLayer, bob: SessionLayer, sid: int) -> None:
    assert not net.of("bob", SessionClosed)
    assert bob.established(sid)
    alice.publish(sid, b"still here", now=net.now)
    net.settle()
    assert net.of("bob", MessageReceived)[-1].message.payload == b"still here"


def _deliver(net: Net, bob: SessionLayer, msg: pb.Message) -> None:
    bob.receive(pb.Message.FromString(msg.SerializeToString()), net.now)
    net.settle()


def test_control_case_a_fresh_signed_close_closes() -> None:
    net, alice, ident, bob, sid = _mls_pair()
    token = SharedSecretProvider(ident, SECRET).token()
    _deliver(net, bob, _close(alice, bob, sid, ident, mid=secrets.randbits(32) | 1, token=token))
    assert net.of("bob", SessionClosed) == [SessionClosed(sid, by_peer=True)]


def test_forged_token_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    net, alice, ident, bob, sid = _mls_pair()
    forged = SharedSecretProvider(ident, "not-the-deployment-secret-but-32-bytes!").token()
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        _deliver(net, bob, _close(alice, bob, sid, ident, mid=12345, token=forged))
    assert "unverifiable control message" in caplog.text
    _still_works(net, alice, bob, sid)


def test_bad_e2e_header_sig_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    net, alice, ident, bob, sid = _mls_pair()
    token = SharedSecretProvider(ident, SECRET).token()
    msg = _close(alice, bob, sid, ident, mid=12345, token=token)
    sig = bytearray(msg.publish.header.e2e_header_sig)
    sig[-1] ^= 1
    msg.publish.header.e2e_header_sig = bytes(sig)
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        _deliver(net, bob, msg)
    assert "unverifiable control message" in caplog.text
    _still_works(net, alice, bob, sid)


def test_signature_by_another_key_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    net, alice, ident, bob, sid = _mls_pair()
    token = SharedSecretProvider(ident, SECRET).token()  # alice's token, mallory's signature
    mallory = Identity.generate("org/ns/mallory")
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        _deliver(net, bob, _close(alice, bob, sid, mallory, mid=777, token=token))
    assert "unverifiable control message" in caplog.text
    _still_works(net, alice, bob, sid)


def test_control_message_id_zero_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    net, alice, ident, bob, sid = _mls_pair()
    token = SharedSecretProvider(ident, SECRET).token()
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        _deliver(net, bob, _close(alice, bob, sid, ident, mid=0, token=token))
    assert "control message id 0" in caplog.text
    _still_works(net, alice, bob, sid)


def test_replayed_control_message_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    net, alice, _, bob, sid = _mls_pair()
    # every command bob accepted from alice, recorded on the wire, fed back
    recorded = [
        m
        for m in net.sent
        if m.publish.header.source.name.component_2 == alice.local.encoded[2]
        and m.publish.session.session_message_type == pb.SESSION_MESSAGE_TYPE_GROUP_WELCOME
    ]
    assert recorded
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        _deliver(net, bob, recorded[0])
    assert "replayed control message id" in caplog.text
    _still_works(net, alice, bob, sid)


def test_replayed_close_is_refused_after_a_fresh_one_was_seen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net, alice, ident, bob, sid = _mls_pair()
    token = SharedSecretProvider(ident, SECRET).token()
    heartbeat_like = _close(alice, bob, sid, ident, mid=4242, token=token)
    heartbeat_like.publish.session.session_message_type = pb.SESSION_MESSAGE_TYPE_HEARTBEAT
    heartbeat_like.publish.msg.command_payload.Clear()
    heartbeat_like.publish.msg.command_payload.heartbeat.epoch = 1
    sign_header(heartbeat_like.publish, ident.signing_key)
    _deliver(net, bob, heartbeat_like)  # accepted: id 4242 now seen
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        _deliver(net, bob, _close(alice, bob, sid, ident, mid=4242, token=token))
    assert "replayed control message id 4242" in caplog.text
    _still_works(net, alice, bob, sid)


def test_replayed_mls_data_message_is_not_delivered_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net, alice, _, bob, sid = _mls_pair()
    alice.publish(sid, b"once", now=net.now)
    net.collect()
    [(target, data)] = net.in_flight
    net.settle()
    assert [e.message.payload for e in net.of("bob", MessageReceived)] == [b"once"]
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        target.receive(pb.Message.FromString(data), net.now)
        net.settle()
    assert "fails MLS" in caplog.text
    assert [e.message.payload for e in net.of("bob", MessageReceived)] == [b"once"]
    _still_works(net, alice, bob, sid)


def test_message_for_unknown_session_is_logged_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (alice, _), (bob, _) = _layer("alice"), _layer("bob")
    net = Net([alice, bob])
    sid = alice.open(bob.local, SessionConfig.p2p(), net.now)
    net.settle()
    stray = build_publish(
        alice.local,
        bob.local,
        pb.SESSION_TYPE_POINT_TO_POINT,
        pb.SESSION_MESSAGE_TYPE_MSG,
        session_id=sid ^ 0x5A5A,
        message_id=1,
        payload=b"stray",
        payload_type="msg",
    )
    stray.publish.header.identity = "whatever"
    with caplog.at_level(logging.INFO, logger="slimwire.session"):
        _deliver(net, bob, stray)
    assert f"unknown session {sid ^ 0x5A5A}" in caplog.text
    assert not [e for e in net.of("bob", MessageReceived) if e.message.payload == b"stray"]
    assert not bob.take().messages  # nothing answered
    _still_works(net, alice, bob, sid)


def test_replay_guard_sizes() -> None:
    guard = ControlReplayGuard(max_ids=3, max_senders=2)
    a, b, c = (1, 1, 1, 1), (2, 2, 2, 2), (3, 3, 3, 3)
    assert guard.check(a, 0) == "control message id 0"
    assert [guard.check(a, i) for i in (1, 2, 3)] == [None, None, None]
    assert guard.check(a, 2) is not None
    assert guard.check(a, 4) is None  # evicts 1 (least recently seen)
    assert guard.check(a, 1) is None
    assert guard.check(b, 1) is None
    assert guard.check(c, 1) is None  # evicts sender a
    assert guard.check(a, 4) is None


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6)), max_size=60))
def test_replay_guard_matches_a_model(events: list[tuple[int, int]]) -> None:
    """Refused exactly when the id is 0 or among the sender's last 4 distinct ids seen."""
    guard = ControlReplayGuard(max_ids=4, max_senders=3)
    model: dict[int, list[int]] = {}
    for sender, mid in events:
        got = guard.check((sender, 0, 0, 0), mid)
        if mid == 0:
            assert got is not None
            continue
        recent = model.setdefault(sender, [])
        assert (got is not None) == (mid in recent)
        if mid in recent:
            recent.remove(mid)
        recent.append(mid)
        del recent[:-4]


class _Counting:
    def __init__(self) -> None:
        self.minted = 0
        self.identity = Identity.generate("org/ns/x")

    def token(self) -> str:
        self.minted += 1
        return f"t{self.minted}"


def test_token_cache_reuses_for_a_bounded_time() -> None:
    now = [0.0]
    provider = _Counting()
    cache = TokenCache(provider, 10.0, clock=lambda: now[0])
    assert [cache.token() for _ in range(3)] == ["t1", "t1", "t1"]
    now[0] = 9.9
    assert cache.token() == "t1"
    now[0] = 10.0
    assert cache.token() == "t2"
    assert cache.fresh() == "t3"
    assert cache.token() == "t2"
    per_message = TokenCache(provider, 0.0)
    assert [per_message.token() for _ in range(2)] == ["t4", "t5"]
    with pytest.raises(ValueError, match=">= 0"):
        TokenCache(provider, -1.0)


@pytest.mark.parametrize("reuse", [0.0, 60.0])
def test_layer_stamps_data_with_the_cached_token_and_commands_fresh(reuse: float) -> None:
    (alice, _), (bob, _) = _layer("alice", token_reuse=reuse), _layer("bob")
    net = Net([alice, bob])
    sid = alice.open(bob.local, SessionConfig.p2p(), net.now)
    net.settle()
    for i in range(3):
        alice.publish(sid, b"%d" % i, now=net.now)
    net.settle()
    mine = [
        m.publish
        for m in net.sent
        if m.publish.header.source.name.component_2 == (alice.local.encoded[2])
    ]
    data = {p.header.identity for p in mine if p.session.session_message_type == 1}
    commands = [p.header.identity for p in mine if p.session.session_message_type != 1]
    assert len(data) == (3 if reuse == 0 else 1)
    assert len(set(commands)) == len(commands) >= 2
    assert len(net.of("bob", MessageReceived)) == 3


@pytest.mark.parametrize("kind", ["p2p", "group"])
def test_welcome_that_could_not_be_joined_is_retried_not_refused_as_replay(
    kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A welcome whose MLS join fails (a signer's key not fetched yet, say) is not acked; its
    retransmission, same message id, must be tried again rather than refused as a replay."""
    from slimwire.errors import MlsError
    from slimwire.session._config import CONTROL_INTERVAL
    from slimwire.session._mls import MlsCrypto

    real_join = MlsCrypto.join
    calls = []

    def join_failing_once(self: MlsCrypto, welcome: bytes) -> None:
        calls.append(welcome)
        if len(calls) == 1:
            raise MlsError("credential not verifiable yet")
        real_join(self, welcome)

    monkeypatch.setattr(MlsCrypto, "join", join_failing_once)
    (alice, _), (bob, _) = _layer("alice"), _layer("bob")
    net = Net([alice, bob])
    if kind == "p2p":
        alice.open(bob.local, SessionConfig.p2p(mls=True), net.now)
    else:
        sid = alice.create_group(Name("org", "ns", "chat"), SessionConfig.group(mls=True), 0)
        alice.invite(sid, bob.local.without_id(), net.now)
    with caplog.at_level(logging.WARNING, logger="slimwire.session"):
        net.settle()
        assert len(calls) == 1
        assert not net.of("bob", SessionEstablished)
        net.advance(CONTROL_INTERVAL)  # the welcome goes again
        net.settle()
    assert len(calls) == 2
    assert calls[0] == calls[1]
    assert net.of("bob", SessionEstablished)
    assert "replayed control message" not in caplog.text
