"""Property tests of the group API: random sequences of add / remove / self-update / Update
proposal + commit by another member / application messages, among up to 20 independent clients,
for suites 0x0001 and 0x0002. After every epoch all members agree (epoch, authenticator, tree)
and read each other's messages; removed members cannot read later epochs; a bit-flipped or
truncated message is rejected with the receiver's state byte-for-byte unchanged; the state
survives a serialization round trip at any point."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from slimwire.errors import MlsError
from slimwire.mls import CommitProcessed, Group, MlsClient, ProposalReceived

MAX_MEMBERS = 20

# A fixed history that fills the group to MAX_MEMBERS, then exercises every operation.
FULL_GROUP = [
    *[("add", k, 0, 3) for k in range(7)],
    ("remove", 1, 2, 3),
    ("update", 5, 0, 1),
    ("propose", 3, 4, 1),
    ("restore", 0, 0, 1),
    ("add", 2, 0, 3),
    ("message", 2, 2, 1),
]

OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "remove", "update", "propose", "message", "restore"]),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=14,
)


@dataclass
class World:
    suite: int
    live: list[Group]
    gone: list[Group] = field(default_factory=list)
    counter: int = 0

    def client(self) -> MlsClient:
        self.counter += 1
        return MlsClient(b"client-%d" % self.counter, suite_id=self.suite)

    def broadcast(self, commit: bytes, committer: Group) -> None:
        for g in [*self.live, *self.gone]:
            if g is committer or not g.active:
                continue
            event = g.process(commit)
            assert isinstance(event, CommitProcessed)
        newly_gone = [g for g in self.live if not g.active]
        self.live = [g for g in self.live if g.active]
        self.gone.extend(newly_gone)

    def check(self, sender_pick: int, flip: int) -> None:
        live = self.live
        assert len({g.epoch for g in live}) == 1
        assert len({g.epoch_authenticator for g in live}) == 1
        assert len({g.ratchet_tree() for g in live}) == 1
        assert sorted(m.leaf_index for m in live[0].members) == sorted(g.leaf_index for g in live)
        sender = live[sender_pick % len(live)]
        text = b"epoch %d from %d" % (sender.epoch, sender.leaf_index)
        ct = sender.encrypt(text, b"aad")
        receivers = [g for g in live if g is not sender]
        if receivers:
            # tampering first: the receiver must stay exactly as it was
            victim = receivers[flip % len(receivers)]
            state = victim.to_bytes()
            i = flip % len(ct)
            for bad in (ct[:i], ct[:i] + bytes([ct[i] ^ (1 << (flip % 8))]) + ct[i + 1 :]):
                try:
                    victim.decrypt(bad)
                except MlsError:
                    pass
                else:
                    raise AssertionError("a tampered message was accepted")
                assert victim.to_bytes() == state
        for g in receivers:
            assert g.decrypt(ct) == (text, b"aad", sender.leaf_index)
        for g in self.gone:
            try:
                g.decrypt(ct)
            except MlsError:
                pass
            else:
                raise AssertionError("a removed member read a later epoch")


def _run(suite: int, ops: list[tuple[str, int, int, int]]) -> None:
    first = MlsClient(b"client-0", suite_id=suite)
    world = World(suite, [first.create_group()])
    for op, a, b, n in ops:
        live = world.live
        actor = live[a % len(live)]
        if op == "add" and len(live) < MAX_MEMBERS:
            clients = [world.client() for _ in range(min(n, MAX_MEMBERS - len(live)))]
            commit, welcome = actor.add([c.key_package() for c in clients])
            world.broadcast(commit, actor)
            world.live.extend(c.join(welcome) for c in clients)
        elif op == "remove" and len(live) > 1:
            others = [g for g in live if g is not actor]
            targets = {others[(b + k) % len(others)].leaf_index for k in range(n)}
            commit = actor.remove(sorted(targets))
            # a flipped commit is refused by a member with its state unchanged
            witness = next((g for g in others if g.leaf_index not in targets), None)
            if witness is not None:
                state = witness.to_bytes()
                i = b % len(commit)
                flipped = commit[:i] + bytes([commit[i] ^ 0x01]) + commit[i + 1 :]
                try:
                    witness.process(flipped)
                except MlsError:
                    pass
                else:
                    raise AssertionError("a tampered commit was accepted")
                assert witness.to_bytes() == state
            world.broadcast(commit, actor)
        elif op == "update":
            world.broadcast(actor.self_update(), actor)
        elif op == "propose" and len(live) > 1:
            # n members propose Updates; any member (maybe a proposer) commits them by reference
            proposers = [live[(a + k) % len(live)] for k in range(min(n, len(live)))]
            for proposer in proposers:
                proposal = proposer.propose_update()
                for g in live:
                    if g is not proposer:
                        assert isinstance(g.process(proposal), ProposalReceived)
            committer = live[b % len(live)]
            commit, welcome = committer.commit_pending()
            assert welcome is None
            expected = sorted(p.leaf_index for p in proposers if p is not committer)
            for g in live:
                if g is not committer:
                    event = g.process(commit)
                    assert isinstance(event, CommitProcessed)
                    assert sorted(event.updated) == expected
        elif op == "restore":
            world.live = [Group.from_bytes(g.to_bytes()) for g in live]
        world.check(a + b, b)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=OPS)
@example(ops=FULL_GROUP)
def test_random_group_histories_suite1(ops: list[tuple[str, int, int, int]]) -> None:
    _run(0x0001, ops)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=OPS)
@example(ops=FULL_GROUP)
def test_random_group_histories_suite2(ops: list[tuple[str, int, int, int]]) -> None:
    _run(0x0002, ops)


def _fixture() -> tuple[bytes, MlsClient, list[bytes]]:
    """A member's saved state and valid messages it has not seen: a commit with a path, a
    proposal, an application message, a Welcome (for a client of its own)."""
    alice, bob = MlsClient(b"alice"), MlsClient(b"bob")
    group = alice.create_group()
    _, welcome = group.add([bob.key_package()])
    bobs = bob.join(welcome)
    saved = bobs.to_bytes()
    carol = MlsClient(b"carol")
    proposal = group.propose_update()
    app = group.encrypt(b"hello", b"aad")
    commit, welcome = group.add([carol.key_package()])
    return saved, carol, [commit, proposal, app, welcome]


_SAVED, _CAROL, _VALID = _fixture()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[i : i + draw(st.integers(1, 8))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        if not data:
            break
    return bytes(data)


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(_mutated(), st.binary(max_size=200)))
def test_mutated_messages_raise_mls_error_and_change_nothing(data: bytes) -> None:
    """Mutated valid messages (and garbage) fed to process/decrypt/join/from_bytes raise
    MlsError and nothing else; the receiver's state is unchanged."""
    group = Group.from_bytes(_SAVED)
    for call in (group.process, group.decrypt):
        try:
            call(data)
        except MlsError:
            assert group.to_bytes() == _SAVED
        else:
            group = Group.from_bytes(_SAVED)  # a mutation that kept the message valid
    for other in (_CAROL.join, Group.from_bytes):
        with contextlib.suppress(MlsError):
            other(data)
