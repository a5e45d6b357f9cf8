"""The layer's shortcut for the common data message must do exactly what the general path does.

``SessionLayer._receive_data`` takes an MSG or MSG_ACK of an established point-to-point session
without the session's dispatch. Each example builds the same scenario twice, once with the
shortcut disabled, feeds both receivers the same kind of message (sometimes one the shortcut
must decline: metadata, a stranger's source, another destination, a name without its string
form, a control type) and compares everything the layers hand out, with the random parts (ids,
names) mapped to roles.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name
from slimwire.session import (
    MessageDelivered,
    MessageReceived,
    SessionConfig,
    SessionLayer,
)
from slimwire.session._wire import ACK_FROM, PUBLISH_TO, TRUE, build_publish
from tests.session._net import Net, make_layer

MSG = pb.SESSION_MESSAGE_TYPE_MSG
MSG_ACK = pb.SESSION_MESSAGE_TYPE_MSG_ACK
HEARTBEAT = pb.SESSION_MESSAGE_TYPE_HEARTBEAT


def _established(reliable: bool) -> tuple[Net, SessionLayer, SessionLayer, int]:
    alice, bob = make_layer("alice"), make_layer("bob")
    net = Net([alice, bob])
    sid = alice.open(bob.local.without_id(), SessionConfig.p2p(reliable=reliable), net.now)
    net.settle()
    alice.take()
    bob.take()
    return net, alice, bob, sid


def _roles(value: object, roles: dict[object, str]) -> object:
    if isinstance(value, Name):
        return roles.get(value.key, str(value))
    return roles.get(value, value)


def _summary(layer: SessionLayer, roles: dict[object, str]) -> tuple[Any, ...]:
    out = layer.take()
    msgs = []
    for msg in out.messages:
        pub = msg.publish
        msgs.append(
            (
                pub.session.session_message_type,
                pub.session.message_id,
                _roles(Name.from_proto(pub.header.destination), roles),
                dict(msg.metadata),
            )
        )
    events = []
    for event in out.events:
        if isinstance(event, MessageReceived):
            m = event.message
            events.append(
                (
                    "received",
                    m.message_id,
                    _roles(m.source, roles),
                    _roles(m.destination, roles),
                    m.source.components,
                    m.payload,
                    m.payload_type,
                    dict(m.metadata),
                )
            )
        elif isinstance(event, MessageDelivered):
            events.append(("delivered", event.message_id))
        else:
            events.append((type(event).__name__,))
    return tuple(msgs), tuple(events), layer.next_deadline() is not None


def _compare(
    reliable: bool,
    kind: str,
    source: str,
    to_us: bool,
    metadata: dict[str, str],
    payload: bytes,
    payload_type: str,
    message_id: int,
    sent_first: bool,
    sent: int = 1,
) -> None:
    results = []
    for fast in (True, False):
        net, alice, bob, sid = _established(reliable)
        if sent_first:  # something for an MSG_ACK to acknowledge
            for _ in range(sent):
                bob.publish(sid, b"first", now=net.now)
            bob.take()
        stranger = make_layer("carol").local
        sender = stranger if source == "stranger" else alice.local
        mtype = {"msg": MSG, "ack": MSG_ACK, "heartbeat": HEARTBEAT}[kind]
        msg = build_publish(
            sender,
            bob.local if to_us else bob.local.without_id(),
            pb.SESSION_TYPE_POINT_TO_POINT,
            mtype,
            session_id=sid,
            message_id=message_id,
            payload=payload if kind == "msg" else None,
            payload_type=payload_type if kind == "msg" else "",
            metadata=metadata,
        )
        if source == "peer-no-strings":
            msg.publish.header.source.ClearField("str_name")
        raw = msg.SerializeToString()
        calls = []

        def spy(
            *args: Any,
            _orig: Any = bob._receive_data,
            _fast: bool = fast,
            _calls: list[bool] = calls,
        ) -> bool:
            taken: bool = _orig(*args) if _fast else False
            _calls.append(taken)
            return taken

        bob._receive_data = spy  # type: ignore[method-assign]
        try:
            bob.receive(pb.Message.FromString(raw), net.now + 0.5)
            error = None
        except ValueError as exc:  # a name without its string form: both paths refuse it
            error = type(exc)
        roles = {alice.local.key: "alice", bob.local.key: "bob", stranger.key: "carol"}
        results.append(((_summary(bob, roles), error), calls))
    (fast_out, fast_calls), (slow_out, _) = results
    assert fast_out == slow_out
    common = (
        kind in ("msg", "ack") and source == "peer" and (kind == "ack" or (to_us and not metadata))
    )
    assert fast_calls == [common]  # the shortcut took exactly the common case


@pytest.mark.parametrize("reliable", [False, True])
@pytest.mark.parametrize("kind", ["msg", "ack"])
@pytest.mark.parametrize("payload_type", ["", "msg"])
@pytest.mark.parametrize("message_id", [1, 2])
def test_shortcut_on_the_common_case(
    reliable: bool, kind: str, payload_type: str, message_id: int
) -> None:
    _compare(reliable, kind, "peer", True, {}, b"payload", payload_type, message_id, True)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reliable=st.booleans(),
    kind=st.sampled_from(["msg", "ack", "heartbeat"]),
    source=st.sampled_from(["peer", "stranger", "peer-no-strings"]),
    to_us=st.booleans(),
    metadata=st.sampled_from([{}, {"k": "v"}, {PUBLISH_TO: TRUE}, {ACK_FROM: "1"}]),
    payload=st.binary(max_size=64),
    payload_type=st.sampled_from(["", "msg", "text/plain"]),
    message_id=st.sampled_from([1, 2, 5]),
    sent_first=st.booleans(),
)
def test_shortcut_matches_the_general_path(
    reliable: bool,
    kind: str,
    source: str,
    to_us: bool,
    metadata: dict[str, str],
    payload: bytes,
    payload_type: str,
    message_id: int,
    sent_first: bool,
) -> None:
    _compare(reliable, kind, source, to_us, metadata, payload, payload_type, message_id, sent_first)


@pytest.mark.parametrize("message_id", [1, 2, 3])
def test_shortcut_takes_ranged_acks(message_id: int) -> None:
    """A ranged ack (from 1 to ``message_id``) completes the same messages on both paths."""
    _compare(True, "ack", "peer", True, {ACK_FROM: "1"}, b"", "", message_id, True, sent=4)


def test_shortcut_is_taken_under_load() -> None:
    """A stream of best-effort messages and reliable acks never needs the general path."""
    for reliable in (False, True):
        net, alice, bob, sid = _established(reliable)
        taken: list[bool] = []
        for layer in (alice, bob):

            def spy(
                *args: Any, _orig: Any = layer._receive_data, _taken: list[bool] = taken
            ) -> bool:
                result: bool = _orig(*args)
                _taken.append(result)
                return result

            layer._receive_data = spy  # type: ignore[method-assign]
        for _ in range(20):
            alice.publish(sid, b"data", now=net.now)
        net.settle()
        received = [e for e in net.events["bob"] if isinstance(e, MessageReceived)]
        assert [e.message.payload for e in received] == [b"data"] * 20
        assert all(taken)
        assert len(taken) == (40 if reliable else 20)  # the MSGs, and alice's acks
