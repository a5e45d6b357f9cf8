"""Random presence traffic (state updates, NACKs, rejoin requests and replies with random
fields, correctly signed by members, so it gets past the MLS command check) fed to a live MLS
group: the layers neither raise nor lose the group."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import sign_header
from slimwire.names import Name
from slimwire.session import SessionConfig
from slimwire.session._wire import build_publish
from tests.session._net import Net, make_layer

MOD, P0, P1 = make_layer("fz-mod"), make_layer("fz-p0"), make_layer("fz-p1")
NET = Net([MOD, P0, P1])
SID = MOD.create_group(Name("org", "fz", "chan"), SessionConfig.group(mls=True), 0.0)
for _m in (P0, P1):
    MOD.invite(SID, _m.local.without_id(), 0.0)
NET.settle()
assert len(MOD.session(SID).roster) == 3  # type: ignore[union-attr]

LAYERS = {layer.local.key: layer for layer in (MOD, P0, P1)}
names = st.sampled_from([MOD.local, P0.local, P1.local, Name("a", "b", "c", 5)])
T = pb


def _payload(kind: int, who: Name, state: int, epoch: int, blob: bytes) -> pb.CommandPayload:
    if kind == T.SESSION_MESSAGE_TYPE_UPDATE_PARTICIPANT_STATE:
        p = pb.UpdateParticipantStatePayload(new_state=state, epoch=epoch)  # type: ignore[arg-type]
        who.fill_proto(p.participant)
        return pb.CommandPayload(update_participant_state=p)
    if kind == T.SESSION_MESSAGE_TYPE_REJOIN_REQUEST:
        r = pb.RejoinRequestPayload(key_package=blob)
        who.fill_proto(r.participant)
        return pb.CommandPayload(rejoin_request=r)
    if kind == T.SESSION_MESSAGE_TYPE_REJOIN_REPLY:
        return pb.CommandPayload(
            rejoin_reply=pb.RejoinReplyPayload(commit_id=epoch % 9, mls_content=blob)
        )
    return pb.CommandPayload(group_nack=pb.GroupNackPayload())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src=names,
    dst=names,
    who=names,
    kind=st.sampled_from(
        [
            T.SESSION_MESSAGE_TYPE_UPDATE_PARTICIPANT_STATE,
            T.SESSION_MESSAGE_TYPE_REJOIN_REQUEST,
            T.SESSION_MESSAGE_TYPE_REJOIN_REPLY,
            T.SESSION_MESSAGE_TYPE_GROUP_NACK,
        ]
    ),
    state=st.integers(0, 3),
    epoch=st.integers(0, 2**64 - 1),
    mid=st.integers(0, 2**32 - 1),
    blob=st.binary(max_size=64),
    own_update=st.booleans(),
)
def test_random_presence_traffic_never_crashes(
    src: Name,
    dst: Name,
    who: Name,
    kind: int,
    state: int,
    epoch: int,
    mid: int,
    blob: bytes,
    own_update: bool,
) -> None:
    if own_update:  # a real update of ours in flight, so NACKs and replies can match it
        P1.update_state(SID, bool(state % 2), NET.now)
        NET.collect()
        NET.in_flight.clear()
    msg = build_publish(
        src,
        dst,
        pb.SESSION_TYPE_MULTICAST,
        kind,
        session_id=SID,
        message_id=mid,
        cmd=_payload(kind, who, state, epoch, blob),
    )
    sender = LAYERS.get(src.key)
    if sender is not None:  # signed as the real member would (MLS sessions verify commands)
        provider = sender._provider
        msg.publish.header.identity = provider.token()
        sign_header(msg.publish, provider.identity.signing_key)
    for layer in (MOD, P0, P1):
        layer.receive(msg, NET.now)
        layer.take()
    assert SID in MOD.sessions
