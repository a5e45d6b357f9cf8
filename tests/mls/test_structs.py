"""Properties of the MLS wire structs beyond the vectors: every parser fed by the network either
rejects its input with a DecodeError or decodes it to a value that re-encodes to the same bytes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.mls._codec import DecodeError, decode_all
from slimwire.mls._struct_content import (
    Commit,
    ProposalRef,
    Remove,
    proposal_from_bytes,
    proposal_to_bytes,
)
from slimwire.mls._struct_framing import (
    FramedContent,
    FramedContentAuthData,
    MLSMessage,
    PrivateMessageContent,
    PublicMessage,
    Sender,
    SenderData,
)
from slimwire.mls._struct_welcome import GroupSecrets
from slimwire.mls._structs import (
    ContentType,
    Credential,
    CredentialType,
    KeyPackage,
    SenderType,
    decode_ratchet_tree,
    ratchet_tree_to_bytes,
)
from tests.conftest import MLS_VECTORS

_CASES = json.loads((MLS_VECTORS / "messages.json").read_text())
_SAMPLES = [
    bytes.fromhex(_CASES[i][field])
    for i in (0, 1, 7)
    for field in (
        "mls_welcome",
        "mls_group_info",
        "mls_key_package",
        "public_message_application",
        "public_message_proposal",
        "public_message_commit",
        "private_message",
    )
]


def _round_trips_or_rejects(parse: Callable[[bytes], bytes], data: bytes) -> None:
    try:
        out = parse(data)
    except DecodeError:
        return
    assert out == data


def _mls(data: bytes) -> bytes:
    return MLSMessage.from_bytes(data).to_bytes()


@given(st.binary(max_size=300))
def test_mls_message_random_bytes(data: bytes) -> None:
    _round_trips_or_rejects(_mls, data)


@settings(max_examples=300)
@given(st.sampled_from(_SAMPLES), st.data())
def test_mls_message_mutations(sample: bytes, data: st.DataObject) -> None:
    """Flip, cut or splice a real message: a strict decoder never crashes and never accepts
    bytes it would not reproduce."""
    buf = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del buf[pos : pos + data.draw(st.integers(1, 8))]
        else:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        if not buf:
            break
    _round_trips_or_rejects(_mls, bytes(buf))


@given(st.binary(max_size=200))
def test_other_network_parsers(data: bytes) -> None:
    _round_trips_or_rejects(lambda d: GroupSecrets.from_bytes(d).to_bytes(), data)
    _round_trips_or_rejects(lambda d: SenderData.from_bytes(d).to_bytes(), data)
    _round_trips_or_rejects(
        lambda d: ratchet_tree_to_bytes(decode_all(d, decode_ratchet_tree)), data
    )
    for content_type in ContentType:
        _round_trips_or_rejects(
            lambda d, ct=content_type: PrivateMessageContent.from_bytes(d, ct).to_bytes(), data
        )
    _round_trips_or_rejects(lambda d: Commit.from_bytes(d).to_bytes(), data)
    _round_trips_or_rejects(lambda d: KeyPackage.from_bytes(d).to_bytes(), data)
    _round_trips_or_rejects(lambda d: proposal_to_bytes(proposal_from_bytes(d)), data)


@given(
    leaf=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 2**64 - 1),
    aad=st.binary(max_size=40),
    app=st.binary(max_size=100),
    sig=st.binary(max_size=80),
    tag=st.binary(max_size=64),
)
def test_public_message_round_trip(
    leaf: int, epoch: int, aad: bytes, app: bytes, sig: bytes, tag: bytes
) -> None:
    content = FramedContent(b"group", epoch, Sender.member(leaf), aad, app)
    msg = MLSMessage(PublicMessage(content, FramedContentAuthData(sig), tag))
    assert MLSMessage.from_bytes(msg.to_bytes()) == msg


def test_private_content_padding_must_be_zero() -> None:
    auth = FramedContentAuthData(b"sig")
    plain = PrivateMessageContent(b"hello", auth, padding=5)
    data = plain.to_bytes()
    assert data.endswith(bytes(5))
    assert PrivateMessageContent.from_bytes(data, ContentType.APPLICATION) == plain
    with pytest.raises(DecodeError, match="padding"):
        PrivateMessageContent.from_bytes(data[:-1] + b"\x01", ContentType.APPLICATION)


def test_selectors_must_be_known() -> None:
    with pytest.raises(DecodeError, match="SenderType"):
        Sender.from_bytes(b"\x09\x00\x00\x00\x01")
    with pytest.raises(DecodeError, match="version"):
        MLSMessage.from_bytes(b"\x00\x02\x00\x01")
    with pytest.raises(DecodeError, match="WireFormat"):
        MLSMessage.from_bytes(b"\x00\x01\x00\x09")


def test_commit_with_references_and_custom_credentials_round_trip() -> None:
    commit = Commit((ProposalRef(b"\x01" * 32), Remove(3)))
    assert Commit.from_bytes(commit.to_bytes()) == commit
    custom = Credential(0xF0F0, b"opaque custom body")
    assert Credential.from_bytes(custom.to_bytes()) == custom
    x509 = Credential(CredentialType.X509, certificates=(b"cert-a", b"cert-b"))
    assert Credential.from_bytes(x509.to_bytes()) == x509


def test_sender_kinds() -> None:
    for sender in (
        Sender.member(7),
        Sender(SenderType.EXTERNAL, 2),
        Sender(SenderType.NEW_MEMBER_COMMIT),
        Sender(SenderType.NEW_MEMBER_PROPOSAL),
    ):
        assert Sender.from_bytes(sender.to_bytes()) == sender
    assert len(Sender(SenderType.NEW_MEMBER_COMMIT).to_bytes()) == 1
    with pytest.raises(ValueError, match="no index"):
        Sender(SenderType.NEW_MEMBER_COMMIT, 3)
