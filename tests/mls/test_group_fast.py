"""The application-message hot path's per-epoch caches (``_group_fast.FastPath``).

Sending joins the message from bytes precomputed per group state; these tests pin that the
result is exactly what the general framing code (``protect_private``) produces, and that the
caches follow the group: after every kind of epoch change (a commit by the sender, by another
member, a proposal received) the next message carries the new epoch and opens for the members
of that epoch only, and a removed member can neither read nor send.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.errors import MlsError
from slimwire.mls import ApplicationMessage, CommitProcessed, Group, MlsClient
from slimwire.mls._codec import encode_varint
from slimwire.mls._framing import open_sender_data, protect_private
from slimwire.mls._secret_tree import RatchetType
from slimwire.mls._struct_framing import FramedContent, MLSMessage, PrivateMessage, Sender

# EdDSA suites sign deterministically, so two encoders can be compared byte for byte:
# 0x0001 (AES-128-GCM, SHA-256), 0x0003 (ChaCha20-Poly1305), 0x0004 (SHA-512: a ciphertext
# shorter than Nh = 64 is its own sender-data sample), 0x0006 (Ed448, ChaCha20)
DETERMINISTIC = [0x0001, 0x0003, 0x0004, 0x0006]
SIZES = [(b"", b""), (b"x" * 100, b"a" * 70), (b"y" * 20_000, b"h" * 400), (b"z" * 1024, b"")]


def _group_of(n: int, suite: int) -> list[Group]:
    clients = [MlsClient(b"member-%d" % i, suite_id=suite) for i in range(n)]
    groups = [clients[0].create_group()]
    for client in clients[1:]:
        commit, welcome = groups[0].add([client.key_package()])
        for g in groups[1:]:
            assert isinstance(g.process(commit), CommitProcessed)
        groups.append(client.join(welcome))
    return groups


def _private(ciphertext: bytes) -> PrivateMessage:
    body = MLSMessage.from_bytes(ciphertext).body
    assert isinstance(body, PrivateMessage)
    return body


@pytest.mark.parametrize("suite", DETERMINISTIC)
def test_encrypt_gives_the_bytes_of_the_general_framing(suite: int) -> None:
    """Group.encrypt's joined bytes equal protect_private's for the same key, reuse guard and
    (deterministic) signature: empty, 1-, 2- and 4-byte length fields, with and without AAD,
    the first message of the ratchet and later ones."""
    sender, _ = _group_of(2, suite)
    twin = Group.from_bytes(sender.to_bytes())  # the same position in the same epoch
    state = twin.state
    for plaintext, aad in SIZES * 2:
        ciphertext = sender.encrypt(plaintext, aad)
        sender_data = open_sender_data(
            state.suite, state.secrets.sender_data_secret, _private(ciphertext)
        )
        key = state.secret_tree.next_key(state.leaf_index, RatchetType.APPLICATION)
        assert (sender_data.leaf_index, sender_data.generation) == (0, key.generation)
        general = protect_private(
            state.suite,
            FramedContent(state.context.group_id, state.epoch, Sender.member(0), aad, plaintext),
            state.context,
            signature_private_key=state.signature_private_key,
            sender_data_secret=state.secrets.sender_data_secret,
            generation=key.generation,
            key=key.key,
            nonce=key.nonce,
            reuse_guard=sender_data.reuse_guard,
        )
        assert ciphertext == MLSMessage(general).to_bytes()
    assert sender.to_bytes() == twin.to_bytes()


@pytest.mark.parametrize("suite", [0x0001, 0x0002])
def test_the_caches_follow_every_epoch_change(suite: int) -> None:
    """Messages sent after a commit by the sender, a commit by another member and an Update
    proposal carry the new epoch and open for the members; the previous epoch's messages no
    longer open (the receivers moved on)."""
    a, b, c = _group_of(3, suite)
    for g in (a, b, c):  # every member has built its hot path for this epoch
        other = b if g is a else a
        assert other.decrypt(g.encrypt(b"warm", b"h"))[0] == b"warm"
    old = a.encrypt(b"old epoch")

    def round_trip(epoch: int) -> None:
        for sender in (a, b, c):
            ciphertext = sender.encrypt(b"epoch %d" % epoch, b"aad")
            assert _private(ciphertext).epoch == epoch
            for receiver in (a, b, c):
                if receiver is not sender:
                    assert receiver.decrypt(ciphertext) == (
                        b"epoch %d" % epoch,
                        b"aad",
                        sender.leaf_index,
                    )

    commit = a.self_update()  # the sender's own commit moves it at once
    for g in (b, c):
        g.process(commit)
    round_trip(a.epoch)
    with pytest.raises(MlsError):
        b.decrypt(old)
    commit = b.self_update()  # another member's commit
    for g in (a, c):
        g.process(commit)
    round_trip(b.epoch)
    proposal = c.propose_update()  # a proposal changes the state value, not the epoch
    for g in (a, b):
        g.process(proposal)
    round_trip(a.epoch)
    commit, _ = a.commit_pending()
    for g in (b, c):
        g.process(commit)
    round_trip(a.epoch)


@pytest.mark.parametrize("suite", [0x0001, 0x0002])
def test_a_removed_member_can_neither_read_nor_send(suite: int) -> None:
    """After its removal, a member (whose hot path was built for the last epoch it knew)
    cannot open the group's messages, and cannot send."""
    a, b, c = _group_of(3, suite)
    assert c.decrypt(a.encrypt(b"before"))[0] == b"before"
    assert a.decrypt(c.encrypt(b"before"))[0] == b"before"
    commit = a.remove([c.leaf_index])
    b.process(commit)
    after = a.encrypt(b"after", b"h")
    assert b.decrypt(after)[0] == b"after"
    with pytest.raises(MlsError):  # c, still in the old epoch, cannot open it
        c.decrypt(after)
    event = c.process(commit)
    assert isinstance(event, CommitProcessed)
    assert not event.active
    for attempt in (lambda: c.decrypt(after), lambda: c.encrypt(b"still here?")):
        with pytest.raises(MlsError):
            attempt()


def _fixture() -> tuple[bytes, list[bytes], list[tuple[int, ...]]]:
    """A receiver's saved state, application messages it has not seen, with AADs whose
    length fields take each encoded size the hot path reads inline or hands to ``_span``
    (1 byte, 2 bytes at both ends, 4 bytes) and payloads that do the same inside, and the
    offsets of each message's three length fields."""
    sender, receiver = _group_of(2, 0x0001)
    saved = receiver.to_bytes()
    shapes = [(0, 0), (63, 5), (64, 63), (330, 100), (16_383, 64), (16_384, 20_000)]
    messages = [sender.encrypt(b"p" * size, b"a" * aad) for aad, size in shapes]
    head = 4 + len(encode_varint(len(sender.group_id))) + len(sender.group_id) + 8 + 1
    offsets = []
    for aad, _ in shapes:
        sd_field = head + len(encode_varint(aad)) + aad
        offsets.append((head, sd_field, sd_field + 1 + 28))
    return saved, messages, offsets


_SAVED, _MESSAGES, _LENGTH_FIELDS = _fixture()


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[int, bytes]:
    """One of the messages with 1-3 edits, mostly in its first bytes (head, length fields,
    sender data) where the hot path parses by hand, often right on a length field."""
    index = draw(st.integers(0, len(_MESSAGES) - 1))
    data = bytearray(_MESSAGES[index])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "set", "length"]))
        limit = len(data) - 1 if draw(st.booleans()) else min(len(data) - 1, 80)
        i = draw(st.integers(0, limit))
        if kind == "length":
            i = min(draw(st.sampled_from(_LENGTH_FIELDS[index])), len(data) - 1)
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind in ("set", "length"):
            data[i] = draw(st.sampled_from([0x00, 0x1C, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0]))
        elif kind == "cut":
            del data[i : i + draw(st.integers(1, 8))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        if not data:
            break
    return index, bytes(data)


@settings(max_examples=300, deadline=None)
@given(case=_mutated())
def test_mutated_messages_are_refused_alike_and_consume_nothing(case: tuple[int, bytes]) -> None:
    """decrypt (the hot path, falling back to the general one) and process (the general
    path) agree on every mutated message: both raise MlsError with the state unchanged (and
    the genuine message still opens), or both open it identically."""
    index, data = case
    fast, general = Group.from_bytes(_SAVED), Group.from_bytes(_SAVED)
    try:
        opened = fast.decrypt(data)
    except MlsError:
        assert fast.to_bytes() == _SAVED
        with pytest.raises(MlsError):
            general.process(data)
        assert general.to_bytes() == _SAVED
        assert fast.decrypt(_MESSAGES[index])[0] == general.decrypt(_MESSAGES[index])[0]
    else:
        event = general.process(data)
        assert isinstance(event, ApplicationMessage)
        assert opened == (event.plaintext, event.authenticated_data, event.sender)
        assert fast.to_bytes() == general.to_bytes()
