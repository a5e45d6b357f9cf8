"""Reinitialization (RFC 9420 §11.2), subgroup branching (§11.3) and resumption PSKs (§8.6)
between independent clients in suites 1 and 2: a ReInit to another cipher suite with every old
member joining the new group and talking there, the suspended old group refusing messages and
commits, Welcomes whose link PSK or parameters do not match refused, ReInit proposals mixed with
others refused (by the committer and by receivers of a forged commit), branches with a subset of
members, application resumption PSKs from earlier epochs, and persistence in the middle."""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.errors import MlsError
from slimwire.mls import (
    ApplicationMessage,
    CommitError,
    CommitProcessed,
    Extension,
    Group,
    GroupSuspendedError,
    InvalidProposalError,
    MlsClient,
    ProposalReceived,
    ReInit,
)
from slimwire.mls._codec import DecodeError, Reader, Writer, decode_all
from slimwire.mls._commit import create_commit
from slimwire.mls._framing import membership_tag, sign_content
from slimwire.mls._group import parse_key_package
from slimwire.mls._group_resume import link_psk
from slimwire.mls._group_state import GroupState, state_from_bytes, state_to_bytes
from slimwire.mls._psk import MissingPskError
from slimwire.mls._struct_content import (
    Add,
    Commit,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    PSKType,
    Remove,
    ResumptionPSKUsage,
    decode_proposal,
    encode_proposal,
)
from slimwire.mls._struct_framing import (
    FramedContent,
    FramedContentAuthData,
    MLSMessage,
    PublicMessage,
    Sender,
)
from slimwire.mls._structs import ExtensionType, KeyPackage, RequiredCapabilities, WireFormat
from slimwire.mls._welcome import WelcomeError

SUITES = [0x0001, 0x0002]
OTHER = {0x0001: 0x0002, 0x0002: 0x0001}


def _clients(n: int, suite: int) -> list[MlsClient]:
    return [MlsClient(b"member-%d" % i, suite_id=suite) for i in range(n)]


def _group(clients: list[MlsClient]) -> list[Group]:
    groups = [clients[0].create_group()]
    commit, welcome = groups[0].add([c.key_package() for c in clients[1:]])
    assert commit
    groups += [c.join(welcome) for c in clients[1:]]
    return groups


def _agree(groups: list[Group]) -> None:
    assert len({g.epoch for g in groups}) == 1
    assert len({g.epoch_authenticator for g in groups}) == 1
    assert len({g.group_id for g in groups}) == 1
    for sender in groups:
        ct = sender.encrypt(b"from %d" % sender.leaf_index, b"aad")
        for receiver in groups:
            if receiver is not sender:
                assert receiver.decrypt(ct) == (
                    b"from %d" % sender.leaf_index,
                    b"aad",
                    sender.leaf_index,
                )


def _deliver(commit: bytes, groups: list[Group]) -> list[CommitProcessed]:
    events = []
    for g in groups:
        event = g.process(commit)
        assert isinstance(event, CommitProcessed)
        events.append(event)
    return events


def _forge_commit(group: Group, proposals: list[Proposal]) -> bytes:
    """A commit by ``group``'s member, properly signed and membership-tagged, carrying a list
    our own committer refuses to build: what a faulty or hostile member could send. Its
    confirmation tag is junk; receivers must refuse the list before they get that far."""
    state = group.state
    framed = FramedContent(
        state.context.group_id,
        state.epoch,
        Sender.member(state.leaf_index),
        b"",
        Commit(tuple(proposals), None),
    )
    signature = sign_content(
        state.suite, state.signature_private_key, WireFormat.PUBLIC_MESSAGE, framed, state.context
    )
    auth = FramedContentAuthData(signature, bytes(state.suite.hash_len))
    tag = membership_tag(state.suite, state.secrets.membership_key, framed, auth, state.context)
    return MLSMessage(PublicMessage(framed, auth, tag)).to_bytes()


def _rogue(group: Group) -> Group:
    """A member that ignores the suspension (a broken or hostile implementation)."""
    return Group(dataclasses.replace(group.state, pending_reinit=None))


# -- reinitialization ---------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_reinit_to_another_suite(suite: int) -> None:
    new_suite = OTHER[suite]
    old_clients = _clients(3, suite)
    new_clients = _clients(3, new_suite)
    old = _group(old_clients)
    _agree(old)
    before = old[0].epoch

    # member 1 proposes and commits the ReInit; everyone (itself at once) is suspended
    new_id = os.urandom(16)
    extensions = (
        Extension(ExtensionType.REQUIRED_CAPABILITIES, RequiredCapabilities().to_bytes()),
    )
    commit = old[1].commit_reinit(new_id, cipher_suite=new_suite, extensions=extensions)
    events = _deliver(commit, [old[0], old[2]])
    expected = ReInit(new_id, 1, new_suite, extensions)
    assert all(e.reinit == expected for e in events)
    for g in old:
        assert g.suspended
        assert g.active
        assert g.pending_reinit == expected
        assert g.epoch == before + 1
    assert len({g.epoch_authenticator for g in old}) == 1

    # the old group sends and accepts nothing more
    with pytest.raises(GroupSuspendedError):
        old[0].encrypt(b"late")
    with pytest.raises(GroupSuspendedError):
        old[0].self_update()
    with pytest.raises(GroupSuspendedError):
        old[0].add([old_clients[0].key_package()])
    with pytest.raises(GroupSuspendedError):
        old[0].propose_update()
    rogue = _rogue(old[2])
    late = rogue.encrypt(b"after the reinit")
    rogue_commit = rogue.self_update()
    for receive in (old[0].decrypt, old[0].process):
        with pytest.raises(GroupSuspendedError):
            receive(late)
    with pytest.raises(GroupSuspendedError):
        old[1].process(rogue_commit)

    # member 2 (not the committer) drives the new group; the others join from its Welcome
    new_group, welcome = new_clients[2].reinit(
        old[2], [new_clients[0].key_package(), new_clients[1].key_package()]
    )
    joined = [new_clients[i].join(welcome, old_group=old[i]) for i in (0, 1)]
    new = [*joined, new_group]
    for g in new:
        assert g.epoch == 1
        assert g.cipher_suite == new_suite
        assert g.group_id == new_id
        assert g.state.context.extensions == extensions
        assert sorted(m.identity for m in g.members) == [b"member-0", b"member-1", b"member-2"]
        assert not g.suspended
    _agree(new)
    # and the new group goes on as any group does
    commit = new[0].self_update()
    _deliver(commit, new[1:])
    _agree(new)


@pytest.mark.parametrize("suite", SUITES)
def test_reinit_by_reference_and_other_proposals_first(suite: int) -> None:
    clients = _clients(3, suite)
    groups = _group(clients)
    reinit = groups[1].propose_reinit(b"next group")
    assert isinstance(groups[0].process(reinit), ProposalReceived)
    assert isinstance(groups[2].process(reinit), ProposalReceived)
    update = groups[2].propose_update()
    assert isinstance(groups[0].process(update), ProposalReceived)
    assert isinstance(groups[1].process(update), ProposalReceived)

    # with another proposal pending, the committer prefers it (§12.1.5); the ReInit waits
    commit, _ = groups[0].commit_pending()
    events = _deliver(commit, groups[1:])
    assert events[0].updated == (2,)
    assert events[0].reinit is None
    assert not any(g.suspended for g in groups)
    _agree(groups)

    # a self-update does not commit a pending ReInit either (only commit_pending does)
    reinit = groups[1].propose_reinit(b"next group")
    for g in (groups[0], groups[2]):
        g.process(reinit)
    events = _deliver(groups[2].self_update(), groups[:2])
    assert all(e.reinit is None for e in events)
    assert not any(g.suspended for g in groups)

    # sent again, alone, it is committed by reference and suspends everyone
    reinit = groups[1].propose_reinit(b"next group")
    for g in (groups[0], groups[2]):
        g.process(reinit)
    commit, welcome = groups[0].commit_pending()
    assert welcome is None
    _deliver(commit, groups[1:])
    assert all(g.pending_reinit == ReInit(b"next group", 1, suite, ()) for g in groups)

    # a new group with the same suite, driven by the committer this time
    group, welcome = clients[0].reinit(
        groups[0], [clients[1].key_package(), clients[2].key_package()]
    )
    new = [group, *(clients[i].join(welcome, old_group=groups[i]) for i in (1, 2))]
    _agree(new)


@pytest.mark.parametrize("suite", SUITES)
def test_reinit_mixed_with_other_proposals_is_refused(suite: int) -> None:
    clients = _clients(3, suite)
    groups = _group(clients)
    reinit = ReInit(b"next", 1, suite, ())
    mixes: list[list[Proposal]] = [
        [reinit, Remove(2)],
        [Add(_key_package(clients[0])), reinit],
        [reinit, reinit],
    ]
    for proposals in mixes:
        # our own committer will not build it ...
        with pytest.raises(CommitError, match="only proposal"):
            create_commit(
                groups[0].state,
                proposals,
                validate=lambda _i, _k: True,
                include_pending=False,
            )
        # ... and a receiver refuses it from someone who did, and stays where it was
        forged = _forge_commit(groups[0], proposals)
        before = groups[1].to_bytes()
        with pytest.raises(CommitError, match="only proposal"):
            groups[1].process(forged)
        assert groups[1].to_bytes() == before
        assert not groups[1].suspended
    # a ReInit may not lower the protocol version (§12.2)
    with pytest.raises(InvalidProposalError, match="version"):
        groups[0].propose_reinit(version=0)
    with pytest.raises(CommitError, match="version"):
        groups[1].process(_forge_commit(groups[0], [ReInit(b"next", 0, suite, ())]))
    _agree(groups)


def _key_package(client: MlsClient) -> KeyPackage:
    return parse_key_package(client.key_package())


@pytest.mark.parametrize("suite", SUITES)
def test_reinit_welcome_must_match(suite: int) -> None:
    new_suite = OTHER[suite]
    clients = _clients(3, suite)
    new_clients = _clients(3, new_suite)
    groups = _group(clients)
    other = _group(_clients(3, suite))  # another group of the same identities
    for g in (groups, other):
        _deliver(g[0].commit_reinit(b"new", cipher_suite=new_suite), g[1:])

    def creator_state(group_id: bytes) -> GroupState:
        return new_clients[0]._new_state(group_id, ())

    kps = [new_clients[i].key_package() for i in (1, 2)]
    _, welcome = new_clients[0].reinit(groups[0], kps)

    # without the old group, or with another (suspended) one, the PSK is missing
    with pytest.raises(MissingPskError):
        new_clients[1].join(welcome)
    with pytest.raises(MissingPskError):
        new_clients[1].join(welcome, old_group=other[1])
    # a Welcome with no link at all is no reinit of the old group
    plain = new_clients[0].create_group(b"new")
    _, plain_welcome = plain.add([new_clients[1].key_package()])
    with pytest.raises(WelcomeError, match="no reinit or branch PSK"):
        new_clients[1].join(plain_welcome, old_group=groups[1])

    def forged(group_id: bytes, members: tuple[int, ...], value: bytes | None = None) -> bytes:
        psk_id, psk = link_psk(new_clients[0].suite, ResumptionPSKUsage.REINIT, groups[0].state)
        adds: list[Proposal] = [Add(_key_package(new_clients[i])) for i in members]
        created = create_commit(
            creator_state(group_id),
            [*adds, PreSharedKey(psk_id)],
            validate=lambda _i, _k: True,
            include_pending=False,
            link=(psk_id, psk if value is None else value),
        )
        assert created.welcome is not None
        return created.welcome

    # the right link PSK id, but not its value: the Welcome does not even open
    with pytest.raises(WelcomeError):
        new_clients[1].join(forged(b"new", (1, 2), os.urandom(32)), old_group=groups[1])
    # the right PSK, but a group id other than the ReInit's
    with pytest.raises(WelcomeError, match="parameters"):
        new_clients[1].join(forged(b"not the agreed id", (1, 2)), old_group=groups[1])
    # the right PSK and parameters, but member 2 left out (our reinit() refuses that too)
    with pytest.raises(WelcomeError, match="missing"):
        new_clients[1].join(forged(b"new", (1,)), old_group=groups[1])
    with pytest.raises(MlsError, match="missing"):
        new_clients[0].reinit(groups[0], [new_clients[1].key_package()])
    # a key package of the wrong suite, or a driver of the wrong suite
    with pytest.raises(MlsError, match="cipher suite"):
        clients[0].reinit(groups[0], [clients[1].key_package(), clients[2].key_package()])
    # and the genuine Welcome is still fine
    joined = [new_clients[i].join(welcome, old_group=groups[i]) for i in (1, 2)]
    _agree(joined)


# -- branching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_branch_with_a_subset(suite: int) -> None:
    clients = _clients(4, suite)
    groups = _group(clients)
    _deliver(groups[0].self_update(), groups[1:])
    epoch = groups[1].epoch

    branch, welcome = clients[1].branch(groups[1], [clients[3].key_package()], b"subgroup")
    # member 3 has moved on in the old group before it sees the Welcome: the branch PSK of
    # the earlier epoch is still kept
    _deliver(groups[2].self_update(), [groups[0], groups[1], groups[3]])
    assert groups[3].epoch == epoch + 1
    sub = [branch, clients[3].join(welcome, old_group=groups[3])]
    for g in sub:
        assert (g.group_id, g.epoch, g.cipher_suite) == (b"subgroup", 1, suite)
        assert [m.identity for m in g.members] == [b"member-1", b"member-3"]
    _agree(sub)
    # the old group is not affected
    _agree(groups)

    # joined without the old group, or with the wrong one, it is refused
    _, welcome = clients[1].branch(groups[1], [clients[2].key_package()], b"subgroup 2")
    with pytest.raises(MissingPskError):
        clients[2].join(welcome)
    with pytest.raises(MissingPskError):
        clients[2].join(welcome, old_group=sub[1])
    # only old members may be in a branch, the id must be new, the suite the same
    outsider = MlsClient(b"outsider", suite_id=suite)
    with pytest.raises(MlsError, match="not a member"):
        clients[1].branch(groups[1], [outsider.key_package()], b"subgroup 3")
    with pytest.raises(MlsError, match="new group id"):
        clients[1].branch(groups[1], [clients[2].key_package()], groups[1].group_id)
    with pytest.raises(MlsError, match="cipher suite"):
        MlsClient(b"member-1", suite_id=OTHER[suite]).branch(groups[1], [], b"x")


@pytest.mark.parametrize("suite", SUITES)
def test_branch_psk_outside_a_new_group_is_refused(suite: int) -> None:
    groups = _group(_clients(3, suite))
    state = groups[0].state
    for usage in (ResumptionPSKUsage.REINIT, ResumptionPSKUsage.BRANCH):
        psk = PreSharedKeyID(
            PSKType.RESUMPTION,
            os.urandom(state.suite.hash_len),
            usage=usage,
            psk_group_id=state.context.group_id,
            psk_epoch=state.epoch,
        )
        with pytest.raises(InvalidProposalError, match="not valid here"):
            groups[0]._propose(PreSharedKey(psk))
        with pytest.raises(CommitError, match="not valid here"):
            groups[1].process(_forge_commit(groups[0], [PreSharedKey(psk)]))
    _agree(groups)


# -- application resumption PSKs ----------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_application_resumption_psk(suite: int) -> None:
    groups = _group(_clients(3, suite))
    first = groups[0].epoch
    _deliver(groups[0].commit_psk(), groups[1:])  # the current epoch's
    _agree(groups)
    for _ in range(3):
        _deliver(groups[1].self_update(), [groups[0], groups[2]])
    # by value, an epoch back; by reference, the first epoch, committed by someone else
    _deliver(groups[2].commit_psk(epoch=first), groups[:2])
    _agree(groups)
    proposal = groups[1].propose_psk(epoch=first + 1)
    groups[0].process(proposal)
    groups[2].process(proposal)
    commit, _ = groups[0].commit_pending()
    _deliver(commit, groups[1:])
    _agree(groups)

    # a member that lost the old PSK cannot follow, and its state is untouched
    forgetful = Group(dataclasses.replace(groups[2].state, resumption_psks=()))
    commit = groups[0].commit_psk(epoch=first)
    with pytest.raises(CommitError, match="PSK"):
        forgetful.process(commit)
    assert forgetful.epoch == groups[2].epoch
    _deliver(commit, [groups[1], groups[2]])
    _agree(groups)
    # only a bounded history is kept
    for _ in range(40):
        _deliver(groups[0].self_update(), groups[1:])
    with pytest.raises(MlsError, match="no resumption PSK"):
        groups[0].commit_psk(epoch=first)
    _deliver(groups[0].commit_psk(epoch=groups[0].epoch - 31), groups[1:])
    _agree(groups)


# -- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_reinit_with_state_restored_in_the_middle(suite: int) -> None:
    new_suite = OTHER[suite]
    clients = _clients(3, suite)
    new_clients = _clients(3, new_suite)
    groups = _group(clients)
    _deliver(groups[2].commit_psk(), groups[:2])
    groups = [clients[i].restore(g.to_bytes()) for i, g in enumerate(groups)]
    _deliver(groups[0].commit_reinit(b"restored", cipher_suite=new_suite), groups[1:])

    # a restart between the ReInit commit and the new group's Welcome
    saved = [g.to_bytes() for g in groups]
    restored = [clients[i].restore(data) for i, data in enumerate(saved)]
    for before, after in zip(groups, restored, strict=True):
        assert after.suspended
        assert after.pending_reinit == before.pending_reinit
        assert after.epoch_authenticator == before.epoch_authenticator
        with pytest.raises(GroupSuspendedError):
            after.encrypt(b"x")
    assert state_to_bytes(state_from_bytes(saved[1])) == saved[1]

    new_group, welcome = new_clients[1].reinit(
        restored[1], [new_clients[0].key_package(), new_clients[2].key_package()]
    )
    new = [new_clients[i].join(welcome, old_group=restored[i]) for i in (0, 2)]
    new.insert(1, new_group)
    new = [new_clients[i].restore(g.to_bytes()) for i, g in enumerate(new)]
    _agree(new)


def test_format_1_state_is_still_read() -> None:
    """Groups saved before ReInit support (format 1: no pending ReInit field) restore."""
    groups = _group(_clients(2, 0x0002))
    data = groups[0].to_bytes()
    assert data[0] == 2
    assert data[-1] == 0
    old_format = b"\x01" + data[1:-1]
    restored = Group.from_bytes(old_format)
    assert restored.to_bytes() == data
    ct = restored.encrypt(b"still here")
    assert groups[1].decrypt(ct)[0] == b"still here"
    with pytest.raises(DecodeError):
        Group.from_bytes(b"\x03" + data[1:])


# -- the ReInit proposal on the wire ------------------------------------------------------------


_extensions = st.lists(
    st.builds(Extension, st.integers(0, 0xFFFF), st.binary(max_size=20)), max_size=3
).map(tuple)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), _extensions)
def test_reinit_proposal_round_trip(group_id: bytes, version: int, suite: int, ext: tuple) -> None:  # type: ignore[type-arg]
    proposal = ReInit(group_id, version, suite, ext)
    w = Writer()
    encode_proposal(w, proposal)
    assert decode_all(bytes(w), decode_proposal) == proposal


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_reinit_decode_fuzz(data: bytes) -> None:
    """Arbitrary bytes either decode to a ReInit that re-encodes to them, or raise
    DecodeError; nothing else escapes."""
    try:
        value = decode_all(data, ReInit.decode)
    except DecodeError:
        return
    assert value.to_bytes() == data
    r = Reader(data)
    assert ReInit.decode(r) == value


def test_application_messages_are_events_in_a_live_group() -> None:
    """process() still hands application data to a live (not suspended) group."""
    groups = _group(_clients(2, 0x0001))
    ct = groups[0].encrypt(b"hi")
    event = groups[1].process(ct)
    assert isinstance(event, ApplicationMessage)
    assert event.plaintext == b"hi"


@pytest.mark.parametrize("suite", SUITES)
def test_external_psk_commit(suite: int) -> None:
    psks = {b"shared key id": os.urandom(32)}
    clients = [MlsClient(b"member-%d" % i, suite_id=suite, external_psks=psks) for i in range(2)]
    clients.append(MlsClient(b"member-2", suite_id=suite))  # holds no PSK
    groups = _group(clients)
    commit = groups[0].commit_psk(external_id=b"shared key id")
    with pytest.raises(CommitError, match="PSK"):
        groups[2].process(commit)
    _deliver(commit, groups[1:2])
    _agree(groups[:2])
    with pytest.raises(ValueError, match="not both"):
        groups[0].propose_psk(epoch=groups[0].epoch, external_id=b"shared key id")
