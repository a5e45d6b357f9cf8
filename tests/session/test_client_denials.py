"""The client's handling of node denial notices, fed arbitrary SubscriptionAcks (hypothesis):
it never raises while reading them, and a notice naming an open session makes that session's
next receive() (or publish()) raise PublishDenied with the node's reason, once."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import Identity, SharedSecretProvider, SharedSecretVerifier
from slimwire.client import App, Session
from slimwire.errors import PublishDenied, SlimwireTimeout
from slimwire.names import Name
from slimwire.policy import parse_denial_notice
from slimwire.session import SessionConfig

SECRET = "an-example-shared-secret-of-32-bytes!!"
SID = 4242


def _app() -> tuple[App, Session]:
    ident = Identity.generate("org/ns/alice")
    app = App(
        "http://127.0.0.1:9",  # never dialled: messages are fed to _on_raw directly
        Name("org", "ns", "alice", ident.name_id),
        SharedSecretProvider(ident, SECRET),
        SharedSecretVerifier(SECRET),
        node_id="test",
    )
    session = Session(app, SID, Name("org", "ns", "bob", 7), SessionConfig.p2p(), True)
    app._sessions[SID] = session
    return app, session


def _notice(reason: str, session_id: object, message_id: object) -> bytes:
    msg = pb.Message()
    msg.subscription_ack.subscription_id = 0
    msg.subscription_ack.success = False
    ctx = {"session_id": session_id, "message_id": message_id, "session_message_type": 1}
    msg.subscription_ack.error = json.dumps({"error": reason, "session_context": ctx})
    return msg.SerializeToString()


async def test_next_receive_raises_the_denial_once_then_the_session_goes_on() -> None:
    app, session = _app()
    app._on_raw(_notice("publish denied by rule 'x'", SID, 3))
    app._on_raw(_notice("publish denied by rule 'x'", SID, 3))  # a retransmission's notice
    with pytest.raises(PublishDenied, match="rule 'x'") as caught:
        await session.receive(timeout=1)
    assert (caught.value.session_id, caught.value.message_id) == (SID, 3)
    assert caught.value.reason == "publish denied by rule 'x'"
    with pytest.raises(SlimwireTimeout):  # reported once
        await session.receive(timeout=0.05)
    app._on_raw(_notice("publish denied by rule 'y'", SID, 4))
    with pytest.raises(PublishDenied, match="rule 'y'"):
        await session.publish(b"not sent")
    assert not session.closed


async def test_a_denial_wakes_a_waiting_receiver() -> None:
    app, session = _app()
    waiting = asyncio.ensure_future(session.receive(timeout=10))
    await asyncio.sleep(0)
    app._on_raw(_notice("publish denied: no rule allows it (default deny)", SID, 9))
    with pytest.raises(PublishDenied, match="default deny"):
        await waiting


_json_value = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
_error_text = st.one_of(
    st.text(max_size=200),
    st.builds(
        json.dumps,
        st.dictionaries(
            st.sampled_from(["error", "session_context", "other"]),
            st.one_of(
                _json_value,
                st.dictionaries(
                    st.sampled_from(["session_id", "message_id", "session_message_type"]),
                    st.one_of(_json_value, st.just(SID)),
                ),
            ),
        ),
    ),
)


async def test_arbitrary_acks_never_break_the_reader() -> None:
    app, session = _app()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        sub_id=st.one_of(st.just(0), st.integers(0, 2**64 - 1)),
        success=st.booleans(),
        error=_error_text,
    )
    def feed(sub_id: int, success: bool, error: str) -> None:
        session._denied = None
        session._denied_ids.clear()
        msg = pb.Message()
        ack = msg.subscription_ack
        ack.subscription_id = sub_id
        ack.success = success
        ack.error = error
        app._on_raw(msg.SerializeToString())
        notice = parse_denial_notice(ack)
        if notice is not None and notice.session_id == SID:
            assert session._denied is not None
            assert session._denied.reason == notice.error
            assert session._denied.message_id == notice.message_id
        else:
            assert session._denied is None

    feed()
    assert not session.closed
