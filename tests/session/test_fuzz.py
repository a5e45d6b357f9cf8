"""Whatever arrives from the network, the session layer neither crashes nor misbehaves.

Random publishes (any message type, any session id including live ones, random payloads and
headers) and raw random bytes decoded as messages are fed into layers that have a live session;
the layer must swallow them (or answer them) without raising.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name
from slimwire.session import SessionConfig
from slimwire.session._wire import build_publish
from tests.session._net import Net, make_layer

ALICE = make_layer("alice")
BOB = make_layer("bob")
NET = Net([ALICE, BOB])
SID = ALICE.open(BOB.local.without_id(), SessionConfig.p2p(reliable=True), 0.0)
NET.settle()
assert ALICE.established(SID)

names = st.sampled_from([ALICE.local, BOB.local, BOB.local.without_id(), Name("a", "b", "c", 5)])
commands = st.sampled_from(
    [
        None,
        pb.CommandPayload(join_request=pb.JoinRequestPayload()),
        pb.CommandPayload(group_welcome=pb.GroupWelcomePayload()),
        pb.CommandPayload(group_close=pb.GroupClosePayload()),
        pb.CommandPayload(join_reply=pb.JoinReplyPayload()),
        pb.CommandPayload(heartbeat=pb.HeartbeatPayload(epoch=3)),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src=names,
    dst=names,
    stype=st.integers(0, 3),
    mtype=st.integers(0, 25),
    sid=st.one_of(st.just(SID), st.integers(0, 2**32 - 1)),
    mid=st.integers(0, 2**32 - 1),
    cmd=commands,
    blob=st.binary(max_size=20),
    error=st.one_of(st.none(), st.booleans()),
    identity=st.sampled_from(["", "garbage", "a:b:c:d:e"]),
    now=st.floats(0, 1000),
)
def test_random_publishes_never_crash(
    src: Name,
    dst: Name,
    stype: int,
    mtype: int,
    sid: int,
    mid: int,
    cmd: pb.CommandPayload | None,
    blob: bytes,
    error: bool | None,
    identity: str,
    now: float,
) -> None:
    msg = build_publish(
        src, dst, stype, mtype, session_id=sid, message_id=mid, cmd=cmd, payload=blob, error=error
    )
    msg.publish.header.identity = identity
    for layer in (ALICE, BOB):
        layer.receive(msg, now)
        layer.handle_timeout(now)
        layer.take()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    try:
        msg = pb.Message.FromString(raw)
    except DecodeError:  # not a message at all: the driver drops these before the layer
        return
    ALICE.receive(msg, 0.0)
    ALICE.take()
