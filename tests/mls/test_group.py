"""The group API between independent clients: create, add (Welcome with the tree in-band, or
the tree out of band), application messages with AAD, removes and self-updates (commits with
UpdatePaths from members other than the creator), Update proposals committed by another
member, rejoin, exporter, persistence across a "restart", tampering and replays, and the
reference's own key packages (from captured traffic) added to our group."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json

import pytest

from slimwire.errors import MlsError
from slimwire.mls import (
    ApplicationMessage,
    CommitProcessed,
    Group,
    MlsClient,
    ProposalReceived,
)
from slimwire.mls._struct_framing import MLSMessage
from slimwire.mls._struct_welcome import GroupSecrets, Welcome
from slimwire.mls._structs import KeyPackage
from slimwire.mls._welcome import (
    decrypt_group_info,
    encrypt_group_info,
    seal_group_secrets,
    sign_group_info,
)
from tests.mls.test_captures import BLOBS

SUITES = [0x0001, 0x0002]


def _clients(n: int, suite: int, **kw: object) -> list[MlsClient]:
    return [MlsClient(f"member-{i}".encode(), suite_id=suite, **kw) for i in range(n)]  # type: ignore[arg-type]


def _group_of(n: int, suite: int) -> list[Group]:
    clients = _clients(n, suite)
    groups = [clients[0].create_group()]
    for c in clients[1:]:
        commit, welcome = groups[0].add([c.key_package()])
        for g in groups[1:]:
            assert isinstance(g.process(commit), CommitProcessed)
        groups.append(c.join(welcome))
    return groups


def _agree(groups: list[Group]) -> None:
    live = [g for g in groups if g.active]
    assert len({g.epoch for g in live}) == 1
    assert len({g.epoch_authenticator for g in live}) == 1
    assert len({g.ratchet_tree() for g in live}) == 1
    for sender in live:
        ct = sender.encrypt(b"hello from %d" % sender.leaf_index, b"aad")
        for receiver in live:
            if receiver is sender:
                continue
            pt, aad, who = receiver.decrypt(ct)
            assert (pt, aad, who) == (
                b"hello from %d" % sender.leaf_index,
                b"aad",
                sender.leaf_index,
            )


@pytest.mark.parametrize("suite", SUITES)
def test_create_add_join_and_talk(suite: int) -> None:
    groups = _group_of(4, suite)
    assert [g.epoch for g in groups] == [3, 3, 3, 3]
    assert [m.identity for m in groups[2].members] == [b"member-%d" % i for i in range(4)]
    _agree(groups)
    assert groups[1].export(b"label", b"ctx", 32) == groups[3].export(b"label", b"ctx", 32)
    assert groups[1].export(b"label", b"ctx", 32) != groups[1].export(b"label", b"ctx2", 32)


@pytest.mark.parametrize("suite", SUITES)
def test_remove_and_update_by_other_members(suite: int) -> None:
    groups = _group_of(5, suite)
    # a non-creator removes someone: a commit with an UpdatePath from leaf 3
    commit = groups[3].remove([b"member-1"])
    old_member = groups[1]
    for i, g in enumerate(groups):
        if i != 3:
            event = g.process(commit)
            assert isinstance(event, CommitProcessed)
            assert event.removed == (1,)
    assert not old_member.active
    with pytest.raises(MlsError):
        old_member.encrypt(b"x")
    live = [g for i, g in enumerate(groups) if i != 1]
    _agree(live)
    # a later epoch's messages are unreadable to the removed member
    ct = live[0].encrypt(b"secret")
    with pytest.raises(MlsError):
        old_member.decrypt(ct)
    # self-update by leaf 4, then by leaf 2
    for committer in (live[3], live[1]):
        commit = committer.self_update()
        for g in live:
            if g is not committer:
                assert isinstance(g.process(commit), CommitProcessed)
        _agree(live)


@pytest.mark.parametrize("suite", SUITES)
def test_update_proposal_committed_by_another_member(suite: int) -> None:
    groups = _group_of(3, suite)
    proposal = groups[2].propose_update()
    for g in groups[:2]:
        assert isinstance(g.process(proposal), ProposalReceived)
    commit, welcome = groups[0].commit_pending()
    assert welcome is None
    for g in groups[1:]:
        event = g.process(commit)
        assert isinstance(event, CommitProcessed)
        assert event.updated == (2,)
    _agree(groups)


@pytest.mark.parametrize("suite", SUITES)
def test_rejoin_and_out_of_band_tree(suite: int) -> None:
    groups = _group_of(3, suite)
    returning = MlsClient(b"member-1", suite_id=suite)
    commit, welcome = groups[0].rejoin(b"member-1", returning.key_package())
    groups[2].process(commit)
    assert isinstance(groups[1].process(commit), CommitProcessed)
    assert not groups[1].active
    groups[1] = returning.join(welcome)
    _agree(groups)

    # a Welcome without the tree extension: the joiner needs the tree out of band
    newcomer = MlsClient(b"member-9", suite_id=suite)
    kp = newcomer.key_package()
    commit, welcome = groups[0].add([kp])
    for g in groups[1:]:
        g.process(commit)
    stripped = _strip_tree(welcome, groups[0], kp)
    with pytest.raises(MlsError):
        newcomer.join(stripped)
    groups.append(newcomer.join(stripped, ratchet_tree=groups[0].ratchet_tree()))
    _agree(groups)


def _strip_tree(welcome: bytes, committer: Group, key_package: bytes) -> bytes:
    """Re-seal the Welcome's GroupInfo without the ratchet_tree extension (as a sender that
    distributes the tree out of band would); the GroupSecrets are bound to the encrypted
    GroupInfo, so they are sealed again for the joiner's key package."""
    state = committer.state
    suite = state.suite
    msg = MLSMessage.from_bytes(welcome)
    assert isinstance(msg.body, Welcome)
    info = decrypt_group_info(suite, state.secrets.welcome_secret, msg.body.encrypted_group_info)
    info = sign_group_info(
        suite, state.signature_private_key, dataclasses.replace(info, extensions=())
    )
    encrypted = encrypt_group_info(suite, state.secrets.welcome_secret, info)
    kp = MLSMessage.from_bytes(key_package).body
    assert isinstance(kp, KeyPackage)
    secrets = GroupSecrets(state.secrets.joiner_secret)
    sealed = (seal_group_secrets(suite, kp, encrypted, secrets),)
    return MLSMessage(Welcome(suite.id, sealed, encrypted)).to_bytes()


@pytest.mark.parametrize("suite", SUITES)
def test_persistence_round_trip(suite: int) -> None:
    groups = _group_of(3, suite)
    ct1 = groups[1].encrypt(b"before restart")
    # members keep their groups across a restart, mid-epoch (secret tree consumed in part)
    restored = [Group.from_bytes(g.to_bytes()) for g in groups]
    assert [r.to_bytes() for r in restored] == [g.to_bytes() for g in groups]
    assert restored[2].decrypt(ct1)[0] == b"before restart"
    # the restored sender does not reuse its generation
    ct2 = restored[1].encrypt(b"after restart")
    assert groups[2].decrypt(ct2)[0] == b"after restart"
    commit = restored[0].remove([2])
    assert isinstance(restored[1].process(commit), CommitProcessed)
    _agree(restored[:2])
    with pytest.raises(MlsError):
        Group.from_bytes(groups[0].to_bytes()[:-1])


@pytest.mark.parametrize("suite", SUITES)
def test_tampered_replayed_and_foreign_messages(suite: int) -> None:
    groups = _group_of(3, suite)
    ct = groups[0].encrypt(b"payload", b"header digest")
    before = groups[1].to_bytes()
    for bad in (ct[:-1], ct[:20], ct[:-1] + bytes([ct[-1] ^ 1]), b"", b"\x00\x01\x00\x02"):
        with pytest.raises(MlsError):
            groups[1].decrypt(bad)
    assert groups[1].to_bytes() == before
    assert groups[1].decrypt(ct) == (b"payload", b"header digest", 0)
    with pytest.raises(MlsError):  # replay
        groups[1].decrypt(ct)
    event = groups[2].process(ct)
    assert isinstance(event, ApplicationMessage)
    assert event.plaintext == b"payload"

    commit = groups[1].self_update()
    state = groups[2].to_bytes()
    for i in range(0, len(commit), 7):
        flipped = commit[:i] + bytes([commit[i] ^ 0x40]) + commit[i + 1 :]
        with pytest.raises(MlsError):
            groups[2].process(flipped)
        assert groups[2].to_bytes() == state
    groups[2].process(commit)
    with pytest.raises(MlsError):  # replayed commit: wrong epoch now
        groups[2].process(commit)
    other = _group_of(2, suite)
    with pytest.raises(MlsError):
        groups[2].decrypt(other[0].encrypt(b"elsewhere"))


def test_credential_validator_rejects() -> None:
    def only_alice(identity: bytes, key: bytes) -> bool:
        return identity.startswith(b"alice")

    alice = MlsClient(b"alice", validate_credential=only_alice)
    group = alice.create_group()
    mallory = MlsClient(b"mallory")
    with pytest.raises(MlsError):
        group.add([mallory.key_package()])
    assert group.epoch == 0
    group.add([MlsClient(b"alice-2").key_package()])
    assert group.epoch == 1


def _token_pubkey(token: bytes) -> bytes:
    try:
        claims_b64 = token.decode().rsplit(":", 4)[-2]
        claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
        return base64.b64decode(claims["pubkey"], validate=True)
    except (ValueError, KeyError, IndexError, binascii.Error):
        return b""


def test_reference_key_packages_join_our_group() -> None:
    """Key packages mls-rs generated (captured from the reference) are accepted by our Group
    with a SLIM-token validator (pubkey claim = signature key), and the Welcome we produce is
    accepted by our own joiner, whose tree then holds the reference's leaves."""

    def slim_token(identity: bytes, key: bytes) -> bool:
        return (
            identity == b"our-moderator"
            or identity == b"our-joiner"
            or (_token_pubkey(identity) == key)
        )

    kps: dict[bytes, bytes] = {}
    for blob in BLOBS:
        if blob.kind == "key_package":
            body = MLSMessage.from_bytes(blob.data).body
            assert isinstance(body, KeyPackage)
            kps.setdefault(body.leaf_node.signature_key, blob.data)
    assert kps
    moderator = MlsClient(b"our-moderator", validate_credential=slim_token)
    joiner = MlsClient(b"our-joiner", validate_credential=slim_token)
    group = moderator.create_group()
    _, welcome = group.add([*kps.values(), joiner.key_package()])
    joined = joiner.join(welcome)
    assert joined.epoch_authenticator == group.epoch_authenticator
    keys = {m.signature_key for m in joined.members}
    assert set(kps) <= keys
    assert joined.decrypt(group.encrypt(b"hi"))[0] == b"hi"
    # and a remove of a reference member is a commit with a path our joiner processes
    ref_leaf = next(m.leaf_index for m in group.members if m.signature_key in kps)
    event = joined.process(group.remove([ref_leaf]))
    assert isinstance(event, CommitProcessed)
    assert joined.epoch_authenticator == group.epoch_authenticator


@pytest.mark.parametrize("suite", SUITES)
def test_fast_and_general_decrypt_paths_agree(suite: int) -> None:
    """decrypt() takes the hot path, process() the general one: same answers, same state,
    for in-order, out-of-order, empty, large (2-byte and 4-byte length) and AAD-carrying
    messages, and the same refusals."""
    groups = _group_of(3, suite)
    sender = groups[0]
    saved = groups[1].to_bytes()
    fast, general = Group.from_bytes(saved), Group.from_bytes(saved)
    msgs = [
        sender.encrypt(b"", b""),
        sender.encrypt(b"x" * 100, b"a" * 70),
        sender.encrypt(b"y" * 20_000, b"digest"),
        groups[2].encrypt(b"from 2", b""),
        sender.encrypt(b"z" * 1024, b""),
    ]
    for ct in [msgs[1], msgs[0], msgs[4], msgs[3], msgs[2]]:
        event = general.process(ct)
        assert isinstance(event, ApplicationMessage)
        assert fast.decrypt(ct) == (event.plaintext, event.authenticated_data, event.sender)
        assert fast.to_bytes() == general.to_bytes()
    for ct in msgs:
        with pytest.raises(MlsError):
            fast.decrypt(ct)
        with pytest.raises(MlsError):
            general.process(ct)
    assert fast.to_bytes() == general.to_bytes()


def test_ratchet_tree_extension_encoding_matches_the_struct_codec() -> None:
    """The memoised extension encoder gives the codec's bytes, before and after edits."""
    from slimwire.mls._commit import ratchet_tree_ext
    from slimwire.mls._structs import ratchet_tree_extension

    groups = _group_of(5, 0x0001)
    for _ in range(2):
        tree = groups[0].state.tree
        assert ratchet_tree_ext(tree) == ratchet_tree_extension(tree.truncated_nodes())
        groups[1].process(groups[0].remove([groups[0].members[-1].leaf_index]))


@pytest.mark.parametrize("suite", SUITES)
def test_external_commit_join(suite: int) -> None:
    """A newcomer joins from a published GroupInfo with an external commit (no Welcome); the
    members process it (ExternalInit + path from a blank leaf) and all agree; a tampered
    GroupInfo is refused."""
    groups = _group_of(4, suite)
    commit = groups[0].remove([1])  # leaves a blank leaf for the newcomer to take
    for g in (groups[2], groups[3]):
        g.process(commit)
    members = [groups[0], groups[2], groups[3]]
    info = groups[2].group_info()
    newcomer = MlsClient(b"external", suite_id=suite)
    with pytest.raises(MlsError):
        newcomer.join_external(info[:-1] + bytes([info[-1] ^ 1]))
    joined, commit = newcomer.join_external(info)
    assert joined.leaf_index == 1
    for g in members:
        event = g.process(commit)
        assert isinstance(event, CommitProcessed)
        assert (event.committer, event.joined) == (None, 1)
    members.append(joined)
    _agree(members)
    # and into a full group (the tree grows)
    info = members[0].group_info()
    second, commit = MlsClient(b"external-2", suite_id=suite).join_external(info)
    for g in members:
        g.process(commit)
    _agree([*members, second])
    assert second.leaf_index == 4


def test_expired_key_package_is_refused() -> None:
    """A key package whose lifetime ended (beyond the tolerated clock skew) is not added."""
    from slimwire.mls._structs import Lifetime
    from slimwire.mls._welcome import sign_key_package, sign_leaf_node

    group = MlsClient(b"owner").create_group()
    late = MlsClient(b"late")
    kp = MLSMessage.from_bytes(late.key_package()).body
    assert isinstance(kp, KeyPackage)
    suite = group.state.suite
    signing_key = late._signature_private_key
    leaf = sign_leaf_node(
        suite, signing_key, dataclasses.replace(kp.leaf_node, lifetime=Lifetime(0, 1000))
    )
    expired = sign_key_package(suite, signing_key, dataclasses.replace(kp, leaf_node=leaf))
    with pytest.raises(MlsError, match="lifetime"):
        group.add([MLSMessage(expired).to_bytes()])
    assert group.epoch == 0


@pytest.mark.parametrize("suite", SUITES)
def test_expected_aad_mismatch_is_refused_without_using_up_the_key(suite: int) -> None:
    """``decrypt(ct, expected_aad=...)`` compares before the key is consumed: the message is
    refused, the receiver unchanged, and the same message with the right AAD still opens."""
    groups = _group_of(2, suite)
    ct = groups[0].encrypt(b"payload", b"header digest")
    before = groups[1].to_bytes()
    with pytest.raises(MlsError, match="authenticated data"):
        groups[1].decrypt(ct, expected_aad=b"another digest")
    assert groups[1].to_bytes() == before
    assert groups[1].decrypt(ct, expected_aad=b"header digest") == (
        b"payload",
        b"header digest",
        0,
    )
    with pytest.raises(MlsError):  # and now it is used up
        groups[1].decrypt(ct, expected_aad=b"header digest")
