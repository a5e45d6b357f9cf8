"""An MLS group whose members have JWT identities (as the authority issues them, ``sub`` a DID
or the app's token id): the moderator rejoins a member that missed a commit and removes members,
both of which find the member's MLS leaf by the app id of its JWT ``sub``."""

from __future__ import annotations

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import Identity, JwsAlgorithm, JwtProvider, JwtSigner, JwtVerifier, StaticKeys
from slimwire.names import Name, app_id_from_token_id
from slimwire.session import MessageReceived, SessionConfig, SessionLayer, TaskDone
from tests.session._net import Net

CHANNEL = Name("org", "grp", "jwt-members")
SIGNER = JwtSigner.generate(JwsAlgorithm.ES256, "k1")


def _jwt_layer(service: str, subject: str | None = None) -> SessionLayer:
    ident = Identity.generate(f"org/ns/{service}")
    provider = JwtProvider(ident, SIGNER, audience="slim", subject=subject)
    local = Name("org", "ns", service, app_id_from_token_id(provider.subject))
    verifier = JwtVerifier(StaticKeys([SIGNER.public]), audience="slim")
    return SessionLayer(local, provider, verifier)


def _payloads(net: Net, who: str) -> list[bytes]:
    return [e.message.payload for e in net.of(who, MessageReceived)]


def test_rejoin_and_remove_jwt_members_of_an_mls_group() -> None:
    mod = _jwt_layer("moderator")
    p0 = _jwt_layer("p0", subject="did:key:zP0IssuedByTheAuthority")
    p1 = _jwt_layer("p1", subject="did:key:zP1IssuedByTheAuthority")
    net = Net([mod, p0, p1])
    sid = mod.create_group(CHANNEL, SessionConfig.group(reliable=True, mls=True), net.now)
    for member in (p0, p1):
        mod.invite(sid, member.local.without_id(), net.now)
    net.settle()
    assert len(mod.session(sid).roster) == 3

    # p1 goes away and misses a commit; coming back, it is rejoined by app id
    p1.update_state(sid, False, net.now)
    net.settle()
    net.layers.remove(p1)
    p2 = _jwt_layer("p2")
    net.layers.append(p2)
    mod.invite(sid, p2.local.without_id(), net.now)
    net.settle()
    net.layers.append(p1)
    start = len(net.sent)
    task = p1.update_state(sid, True, net.now)
    net.settle()
    updates = [
        m.publish.msg.command_payload.group_update
        for m in net.sent[start:]
        if m.publish.session.session_message_type == pb.SESSION_MESSAGE_TYPE_GROUP_UPDATE
    ]
    assert [u.op for u in updates] == [pb.REJOIN]
    assert net.of("p1", TaskDone)[-1] == TaskDone(sid, task, p1.local)
    assert len({layer.session(sid).crypto.epoch for layer in (mod, p0, p1, p2)}) == 1

    # the moderator removes p0 (a DID subject) and p2 (the token id as subject)
    for gone in (p0, p2):
        task = mod.remove(sid, gone.local, net.now)
        net.settle()
        done = [e for e in net.of("moderator", TaskDone) if e.task_id == task]
        assert done, "the remove never finished"
        assert not done[-1].error, done[-1].error
    assert set(mod.session(sid).roster.values()) == {mod.local, p1.local}
    mod.publish(sid, b"to the two of us", now=net.now)
    net.settle()
    assert b"to the two of us" in _payloads(net, "p1")
    assert b"to the two of us" not in _payloads(net, "p0")
