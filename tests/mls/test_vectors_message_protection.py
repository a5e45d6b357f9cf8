"""message-protection.json: verify and decrypt the vector's PublicMessages and PrivateMessages
(proposal, commit, application) from leaf 1 of a two-member group, then protect the same
content with our own code and unprotect it again (RFC 9420 §6)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from slimwire.mls._framing import (
    DecryptionError,
    FramingError,
    MembershipTagError,
    SignatureError,
    open_private_content,
    open_sender_data,
    protect_private,
    protect_public,
    unprotect_private,
    unprotect_public,
    verify_content_signature,
)
from slimwire.mls._secret_tree import RatchetType, SecretTree
from slimwire.mls._struct_content import Commit, proposal_from_bytes
from slimwire.mls._struct_framing import (
    Content,
    FramedContent,
    MLSMessage,
    PrivateMessage,
    PublicMessage,
    Sender,
)
from slimwire.mls._structs import ContentType, GroupContext
from slimwire.mls._suites import CipherSuite, cipher_suite
from tests.mls._vectors import cases, h

_SENDER = 1
_N_LEAVES = 2


class Group:
    """The vector's group, as the member at leaf 0 sees it."""

    def __init__(self, case: dict[str, Any]) -> None:
        self.case = case
        self.suite: CipherSuite = cipher_suite(case["cipher_suite"])
        self.context = GroupContext(
            1,
            self.suite.id,
            h(case["group_id"]),
            case["epoch"],
            h(case["tree_hash"]),
            h(case["confirmed_transcript_hash"]),
        )
        self.sender_data_secret = h(case["sender_data_secret"])
        self.membership_key = h(case["membership_key"])
        # The P-521 vector gives a 65-byte scalar (its top byte is zero and was dropped);
        # the suite takes the fixed-width big-endian form, so widen it without changing it.
        priv = h(case["signature_priv"])
        width = {0x0005: 66, 0x0007: 48, 0x0002: 32}.get(self.suite.id, len(priv))
        self.sig_priv = priv.rjust(width, b"\x00")
        self.sig_pub = h(case["signature_pub"])

    def tree(self) -> SecretTree:
        return SecretTree(self.suite, h(self.case["encryption_secret"]), _N_LEAVES)

    def unprotect_public(self, data: bytes) -> Content:
        msg = MLSMessage.from_bytes(data)
        assert isinstance(msg.body, PublicMessage)
        assert msg.body.content.sender == Sender.member(_SENDER)
        content = unprotect_public(
            self.suite,
            msg.body,
            self.context,
            membership_key=self.membership_key,
            signature_public_key=self.sig_pub,
        )
        assert content.content.group_id == self.context.group_id
        assert content.content.epoch == self.context.epoch
        return content.content.content

    def unprotect_private(self, data: bytes, tree: SecretTree) -> Content:
        msg = MLSMessage.from_bytes(data)
        assert isinstance(msg.body, PrivateMessage)

        def key_for(leaf: int, content_type: ContentType, generation: int) -> tuple[bytes, bytes]:
            kind = (
                RatchetType.APPLICATION
                if content_type == ContentType.APPLICATION
                else RatchetType.HANDSHAKE
            )
            key = tree.key_for(leaf, kind, generation)
            return key.key, key.nonce

        def signature_key_for(leaf: int) -> bytes:
            assert leaf == _SENDER
            return self.sig_pub

        content, sender_data = unprotect_private(
            self.suite,
            msg.body,
            self.context,
            sender_data_secret=self.sender_data_secret,
            key_for=key_for,
            signature_key_for=signature_key_for,
        )
        assert sender_data.leaf_index == _SENDER
        assert content.content.sender == Sender.member(_SENDER)
        return content.content.content

    def framed(self, content: Content, aad: bytes = b"") -> FramedContent:
        return FramedContent(
            self.context.group_id, self.context.epoch, Sender.member(_SENDER), aad, content
        )


def _expected(case: dict[str, Any]) -> dict[str, Content]:
    return {
        "proposal": proposal_from_bytes(h(case["proposal"])),
        "commit": Commit.from_bytes(h(case["commit"])),
        "application": h(case["application"]),
    }


@pytest.mark.parametrize("case", cases("message-protection"))
def test_vector_messages_verify_and_decrypt(case: dict[str, Any]) -> None:
    group = Group(case)
    for kind, content in _expected(case).items():
        if kind != "application":
            assert group.unprotect_public(h(case[f"{kind}_pub"])) == content, kind
        # Each message was protected on its own (the proposal and the commit both use
        # handshake generation 0), so each gets a fresh secret tree.
        assert group.unprotect_private(h(case[f"{kind}_priv"]), group.tree()) == content, kind


@pytest.mark.parametrize("case", cases("message-protection"))
def test_our_messages_round_trip(case: dict[str, Any]) -> None:
    """Protect with our code (as leaf 1), unprotect as leaf 0; also tamper and expect errors."""
    group = Group(case)
    suite = group.suite
    sender_tree, receiver_tree = group.tree(), group.tree()
    tag = bytes(range(suite.hash_len))
    for kind, content in _expected(case).items():
        confirmation_tag = tag if kind == "commit" else None
        framed = group.framed(content, aad=b"slim header digest")
        if kind != "application":
            pub = protect_public(
                suite,
                framed,
                group.context,
                signature_private_key=group.sig_priv,
                membership_key=group.membership_key,
                confirmation_tag=confirmation_tag,
            )
            data = MLSMessage(pub).to_bytes()
            assert group.unprotect_public(data) == content

        ratchet = RatchetType.APPLICATION if kind == "application" else RatchetType.HANDSHAKE
        for _ in range(2):  # two generations: the second must use a fresh key
            key = sender_tree.next_key(_SENDER, ratchet)
            priv = protect_private(
                suite,
                framed,
                group.context,
                signature_private_key=group.sig_priv,
                sender_data_secret=group.sender_data_secret,
                generation=key.generation,
                key=key.key,
                nonce=key.nonce,
                confirmation_tag=confirmation_tag,
            )
            assert priv.authenticated_data == b"slim header digest"
            assert group.unprotect_private(MLSMessage(priv).to_bytes(), receiver_tree) == content


@pytest.mark.parametrize("case", cases("message-protection")[:3])
def test_tampering_is_detected(case: dict[str, Any]) -> None:
    group = Group(case)
    suite = group.suite
    app = group.framed(b"hello", aad=b"aad")
    key = group.tree().next_key(_SENDER, RatchetType.APPLICATION)
    priv = protect_private(
        suite,
        app,
        group.context,
        signature_private_key=group.sig_priv,
        sender_data_secret=group.sender_data_secret,
        generation=key.generation,
        key=key.key,
        nonce=key.nonce,
        padding=0,
        reuse_guard=b"\x01\x02\x03\x04",
    )
    sender_data = open_sender_data(suite, group.sender_data_secret, priv)
    assert (sender_data.leaf_index, sender_data.generation) == (_SENDER, 0)
    assert sender_data.reuse_guard == b"\x01\x02\x03\x04"

    # authenticated_data is bound by the content AEAD.
    forged = PrivateMessage(
        priv.group_id,
        priv.epoch,
        priv.content_type,
        b"other",
        priv.encrypted_sender_data,
        priv.ciphertext,
    )
    with pytest.raises(DecryptionError):
        open_private_content(suite, forged, sender_data, key.key, key.nonce)
    # Sender data from another epoch does not decrypt.
    other_epoch = PrivateMessage(
        priv.group_id,
        priv.epoch + 1,
        priv.content_type,
        priv.authenticated_data,
        priv.encrypted_sender_data,
        priv.ciphertext,
    )
    with pytest.raises(DecryptionError):
        open_sender_data(suite, group.sender_data_secret, other_epoch)
    # A signature by another key fails.
    content = open_private_content(suite, priv, sender_data, key.key, key.nonce)
    with pytest.raises(SignatureError):
        verify_content_signature(
            suite, suite.generate_signature_key_pair()[1], content, group.context
        )

    # PublicMessage: a wrong membership key or a wrong signer is rejected.
    proposal = group.framed(proposal_from_bytes(h(case["proposal"])))
    pub = protect_public(
        suite,
        proposal,
        group.context,
        signature_private_key=group.sig_priv,
        membership_key=group.membership_key,
    )
    with pytest.raises(MembershipTagError):
        unprotect_public(
            suite,
            pub,
            group.context,
            membership_key=bytes(len(group.membership_key)),
            signature_public_key=group.sig_pub,
        )
    with pytest.raises(SignatureError):
        unprotect_public(
            suite,
            pub,
            group.context,
            membership_key=group.membership_key,
            signature_public_key=suite.generate_signature_key_pair()[1],
        )


@pytest.mark.parametrize("case", cases("message-protection")[:1])
def test_wrong_epoch_and_public_application_are_refused(case: dict[str, Any]) -> None:
    group = Group(case)
    suite = group.suite
    msg = MLSMessage.from_bytes(h(case["proposal_pub"])).body
    assert isinstance(msg, PublicMessage)
    later = dataclasses.replace(group.context, epoch=group.context.epoch + 1)
    with pytest.raises(FramingError, match="epoch"):
        unprotect_public(
            suite,
            msg,
            later,
            membership_key=group.membership_key,
            signature_public_key=group.sig_pub,
        )
    # A PublicMessage carrying application data is well-formed on the wire but not allowed.
    app = protect_public(
        suite,
        group.framed(b"cleartext"),
        group.context,
        signature_private_key=group.sig_priv,
        membership_key=group.membership_key,
    )
    with pytest.raises(FramingError, match="PrivateMessage"):
        unprotect_public(
            suite,
            app,
            group.context,
            membership_key=group.membership_key,
            signature_public_key=group.sig_pub,
        )
