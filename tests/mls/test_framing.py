"""Properties of message protection beyond the vectors: any content, authenticated data and
padding survives protect/unprotect, and garbage fed to the PrivateMessage path only ever raises
MlsError subclasses (it is the path every received application message takes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.errors import MlsError
from slimwire.mls._framing import (
    DecryptionError,
    open_private_content,
    open_sender_data,
    padding_for,
    protect_private,
)
from slimwire.mls._secret_tree import RatchetType, SecretTree
from slimwire.mls._struct_framing import FramedContent, MLSMessage, PrivateMessage, Sender
from slimwire.mls._structs import ContentType, GroupContext
from slimwire.mls._suites import cipher_suite

SUITE = cipher_suite(0x0002)  # what the reference uses
SIG_PRIV, SIG_PUB = SUITE.generate_signature_key_pair()
CONTEXT = GroupContext(1, SUITE.id, b"g" * 16, 5, b"t" * 32, b"c" * 32)
ENCRYPTION_SECRET = b"e" * 32
SENDER_DATA_SECRET = b"s" * 32


def _protect(
    app: bytes, aad: bytes, padding: int | Callable[[int], int], leaf: int = 1
) -> tuple[PrivateMessage, int]:
    key = SecretTree(SUITE, ENCRYPTION_SECRET, 4).next_key(leaf, RatchetType.APPLICATION)
    content = FramedContent(CONTEXT.group_id, CONTEXT.epoch, Sender.member(leaf), aad, app)
    msg = protect_private(
        SUITE,
        content,
        CONTEXT,
        signature_private_key=SIG_PRIV,
        sender_data_secret=SENDER_DATA_SECRET,
        generation=key.generation,
        key=key.key,
        nonce=key.nonce,
        padding=padding,
    )
    return msg, key.generation


@settings(max_examples=60, deadline=None)
@given(
    app=st.binary(max_size=600),
    aad=st.binary(max_size=64),
    padding=st.integers(0, 300),
    leaf=st.integers(0, 3),
)
def test_private_round_trip(app: bytes, aad: bytes, padding: int, leaf: int) -> None:
    msg, _ = _protect(app, aad, padding, leaf)
    wire = MLSMessage.from_bytes(MLSMessage(msg).to_bytes()).body
    assert isinstance(wire, PrivateMessage)
    sender = open_sender_data(SUITE, SENDER_DATA_SECRET, wire)
    assert sender.leaf_index == leaf
    key = SecretTree(SUITE, ENCRYPTION_SECRET, 4).key_for(
        leaf, RatchetType.APPLICATION, sender.generation
    )
    content = open_private_content(SUITE, wire, sender, key.key, key.nonce)
    assert content.content.content == app
    assert content.content.authenticated_data == aad


def test_default_padding_hides_small_differences() -> None:
    sizes = {len(_protect(b"x" * n, b"", padding_for)[0].ciphertext) for n in range(10)}
    assert len(sizes) == 1
    assert {n + padding_for(n) for n in range(1, 33)} == {32}
    assert {n + padding_for(n) for n in range(600, 1025)} == {1024}
    assert all(padding_for(n) >= 0 for n in range(5000))


@settings(max_examples=200, deadline=None)
@given(
    sender_data=st.binary(max_size=40),
    ciphertext=st.binary(max_size=80),
    content_type=st.sampled_from(list(ContentType)),
)
def test_garbage_private_messages_raise_mls_errors(
    sender_data: bytes, ciphertext: bytes, content_type: ContentType
) -> None:
    msg = PrivateMessage(
        CONTEXT.group_id, CONTEXT.epoch, content_type, b"", sender_data, ciphertext
    )
    with pytest.raises(MlsError):
        open_sender_data(SUITE, SENDER_DATA_SECRET, msg)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_bit_flips_in_ciphertext_are_rejected(data: st.DataObject) -> None:
    msg, generation = _protect(b"payload", b"aad", 0)
    field = data.draw(st.sampled_from(["encrypted_sender_data", "ciphertext"]))
    raw = bytearray(getattr(msg, field))
    pos = data.draw(st.integers(0, 10**6)) % len(raw)
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    forged = PrivateMessage(
        msg.group_id,
        msg.epoch,
        msg.content_type,
        msg.authenticated_data,
        bytes(raw) if field == "encrypted_sender_data" else msg.encrypted_sender_data,
        bytes(raw) if field == "ciphertext" else msg.ciphertext,
    )
    with pytest.raises(DecryptionError):
        _open(forged, generation)


def _open(msg: PrivateMessage, generation: int) -> None:
    sender = open_sender_data(SUITE, SENDER_DATA_SECRET, msg)
    key = SecretTree(SUITE, ENCRYPTION_SECRET, 4).key_for(
        sender.leaf_index, RatchetType.APPLICATION, generation
    )
    open_private_content(SUITE, msg, sender, key.key, key.nonce)
