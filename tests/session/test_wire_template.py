"""build_publish (from cached serialized templates) equals the message built field by field."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire._constants import DEFAULT_TTL, SLIM_VERSION
from slimwire._proto import data_plane_pb2 as pb
from slimwire.names import Name
from slimwire.session._wire import build_publish, command

names = st.builds(
    Name,
    st.sampled_from(["org", "o2"]),
    st.sampled_from(["ns", "n2"]),
    st.sampled_from(["a", "b", "svc"]),
    st.integers(0, 2**64 - 1),
)


def _by_hand(src: Name, dst: Name, stype: int, mtype: int, **kw: object) -> pb.Message:
    msg = pb.Message()
    pub = msg.publish
    src.fill_proto(pub.header.source)
    dst.fill_proto(pub.header.destination)
    pub.header.fanout = kw["fanout"]  # type: ignore[assignment]
    pub.header.version = SLIM_VERSION
    pub.header.ttl = DEFAULT_TTL
    if kw["error"] is not None:
        pub.header.error = kw["error"]  # type: ignore[assignment]
    pub.session.session_type = stype  # type: ignore[assignment]
    pub.session.session_message_type = mtype  # type: ignore[assignment]
    pub.session.session_id = kw["session_id"]  # type: ignore[assignment]
    pub.session.message_id = kw["message_id"]  # type: ignore[assignment]
    if kw["cmd"] is not None:
        pub.msg.command_payload.CopyFrom(kw["cmd"])  # type: ignore[arg-type]
    else:
        app = pub.msg.app_payload
        app.SetInParent()
        app.payload_type = kw["payload_type"]  # type: ignore[assignment]
        app.blob = kw["payload"]  # type: ignore[assignment]
    msg.metadata.update(kw["metadata"] or {})  # type: ignore[call-overload]
    return msg


@settings(max_examples=200, deadline=None)
@given(
    src=names,
    dst=names,
    stype=st.sampled_from([pb.SESSION_TYPE_POINT_TO_POINT, pb.SESSION_TYPE_MULTICAST]),
    mtype=st.integers(1, 20),
    session_id=st.integers(0, 2**32 - 1),
    message_id=st.integers(0, 2**32 - 1),
    fanout=st.sampled_from([1, 256]),
    payload=st.binary(max_size=40),
    payload_type=st.text(max_size=8),
    metadata=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    error=st.none() | st.booleans(),
    with_cmd=st.booleans(),
)
def test_template_build_matches_field_by_field(
    src: Name, dst: Name, stype: int, mtype: int, with_cmd: bool, **kw: object
) -> None:
    kw["cmd"] = command(group_ack=pb.GroupAckPayload()) if with_cmd else None
    built = build_publish(src, dst, stype, mtype, **kw)  # type: ignore[arg-type]
    assert built == _by_hand(src, dst, stype, mtype, **kw)
    # and the same again from the warm cache, untouched by the first message's fields
    assert build_publish(src, dst, stype, mtype, **kw) == built  # type: ignore[arg-type]
