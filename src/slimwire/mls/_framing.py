"""Message protection (RFC 9420 §6): signing content, PublicMessage membership tags, and
PrivateMessage encryption with sender-data encryption, reuse guard and padding.

Pure functions over explicit inputs, so the group state machine decides where keys come from.
A PrivateMessage is opened in two steps because the content key depends on what the first step
reveals: :func:`open_sender_data` gives the sender's leaf and generation, the caller fetches
that generation's key and nonce from its secret tree, and :func:`open_private_content` decrypts
and parses. Signature checks are separate (:func:`verify_content_signature`): the caller looks
up the sender's signature key in its tree. :func:`unprotect_private` chains the steps for
callers that can hand over the two lookups as callables.

What travels in the clear, and what binds it: a PublicMessage is signed over
``FramedContentTBS`` (which includes the group context for member senders, so a message cannot
be replayed into another group or epoch) and MACed with the epoch's membership key. A
PrivateMessage's ``authenticated_data``, group id, epoch and content type are the AEAD's
associated data; the sender data (leaf, generation, reuse guard) is itself encrypted under a key
derived from a sample of the content ciphertext, so an observer cannot tell who sent what.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from slimwire.errors import MlsError
from slimwire.mls._codec import Writer
from slimwire.mls._secret_tree import sender_data_key_nonce
from slimwire.mls._struct_content import ProposalRef
from slimwire.mls._struct_framing import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    PrivateMessage,
    PrivateMessageContent,
    PublicMessage,
    Sender,
    SenderData,
    framed_content_tbs,
)
from slimwire.mls._structs import ContentType, GroupContext, SenderType, WireFormat

if TYPE_CHECKING:
    from slimwire.mls._suites import CipherSuite

_TBS_LABEL = b"FramedContentTBS"
_PROPOSAL_REF_LABEL = b"MLS 1.0 Proposal Reference"
_REUSE_GUARD_LEN = 4


class FramingError(MlsError):
    """A protected message failed verification or decryption."""


class SignatureError(FramingError):
    """A content signature does not verify with the sender's key."""


class MembershipTagError(FramingError):
    """A PublicMessage's membership tag is missing or wrong: not from a current member."""


class DecryptionError(FramingError):
    """A PrivateMessage (sender data or content) does not decrypt under this epoch's keys."""


# -- signatures and the membership tag ---------------------------------------------------------


def sign_content(
    suite: CipherSuite,
    signature_private_key: bytes,
    wire_format: WireFormat,
    content: FramedContent,
    context: GroupContext | None,
) -> bytes:
    """``SignWithLabel(., "FramedContentTBS", FramedContentTBS)``."""
    tbs = framed_content_tbs(wire_format, content, context)
    return suite.sign_with_label(signature_private_key, _TBS_LABEL, tbs)


def verify_content_signature(
    suite: CipherSuite,
    signature_public_key: bytes,
    content: AuthenticatedContent,
    context: GroupContext | None,
) -> None:
    """Raise :class:`SignatureError` unless the sender's signature verifies."""
    tbs = framed_content_tbs(content.wire_format, content.content, context)
    try:
        ok = suite.verify_with_label(signature_public_key, _TBS_LABEL, tbs, content.auth.signature)
    except MlsError:  # a malformed public key (already an MlsError) is a bad signature here
        ok = False
    if not ok:
        raise SignatureError("content signature does not verify")


def _tbm(content: FramedContent, auth: FramedContentAuthData, context: GroupContext) -> bytes:
    """``AuthenticatedContentTBM``: FramedContentTBS followed by the auth data."""
    w = Writer().raw(framed_content_tbs(WireFormat.PUBLIC_MESSAGE, content, context))
    auth.encode(w)
    return bytes(w)


def membership_tag(
    suite: CipherSuite,
    membership_key: bytes,
    content: FramedContent,
    auth: FramedContentAuthData,
    context: GroupContext,
) -> bytes:
    """``MAC(membership_key, AuthenticatedContentTBM)`` (§6.2)."""
    return suite.mac(membership_key, _tbm(content, auth, context))


def proposal_ref(suite: CipherSuite, proposal: AuthenticatedContent) -> ProposalRef:
    """``RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent)`` (§5.2): how a commit
    names a proposal sent earlier in the epoch."""
    if proposal.content.content_type != ContentType.PROPOSAL:
        raise ValueError("only proposals have references")
    return ProposalRef(suite.ref_hash(_PROPOSAL_REF_LABEL, proposal.to_bytes()))


# -- PublicMessage -----------------------------------------------------------------------------


def protect_public(
    suite: CipherSuite,
    content: FramedContent,
    context: GroupContext,
    *,
    signature_private_key: bytes,
    membership_key: bytes | None,
    confirmation_tag: bytes | None = None,
) -> PublicMessage:
    """Sign ``content`` and, for a member sender, add the membership tag. A commit must come
    with its confirmation tag (computed by the caller from the new epoch's key schedule)."""
    ctx = _context_for(content, context)
    signature = sign_content(suite, signature_private_key, WireFormat.PUBLIC_MESSAGE, content, ctx)
    auth = FramedContentAuthData(signature, confirmation_tag)
    tag = None
    if content.sender.sender_type == SenderType.MEMBER:
        if membership_key is None:
            raise ValueError("a member sender needs the membership key")
        tag = membership_tag(suite, membership_key, content, auth, context)
    return PublicMessage(content, auth, tag)


def unprotect_public(
    suite: CipherSuite,
    message: PublicMessage,
    context: GroupContext,
    *,
    membership_key: bytes | None,
    signature_public_key: bytes,
) -> AuthenticatedContent:
    """Verify a PublicMessage (membership tag for member senders, then the signature) and
    return its AuthenticatedContent. The caller has checked group id and epoch and looked up
    ``signature_public_key`` for the sender. Application data in a PublicMessage is refused:
    RFC 9420 §6.2 requires it to be encrypted."""
    content, auth = message.content, message.auth
    _check_epoch(content.group_id, content.epoch, context)
    if content.content_type == ContentType.APPLICATION:
        raise FramingError("application data must come as a PrivateMessage")
    if content.sender.sender_type == SenderType.MEMBER:
        if membership_key is None or message.membership_tag is None:
            raise MembershipTagError("membership tag missing")
        expected = membership_tag(suite, membership_key, content, auth, context)
        if not hmac.compare_digest(expected, message.membership_tag):
            raise MembershipTagError("membership tag does not verify")
    result = AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, content, auth)
    verify_content_signature(suite, signature_public_key, result, _context_for(content, context))
    return result


def _check_epoch(group_id: bytes, epoch: int, context: GroupContext) -> None:
    if group_id != context.group_id or epoch != context.epoch:
        raise FramingError(f"message is for another group or epoch ({epoch})")


def _context_for(content: FramedContent, context: GroupContext) -> GroupContext | None:
    """Only member and new-member-commit senders sign over the group context."""
    if content.sender.sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT):
        return context
    return None


# -- PrivateMessage ----------------------------------------------------------------------------


def _sender_data_aad(group_id: bytes, epoch: int, content_type: ContentType) -> bytes:
    """``SenderDataAAD``."""
    return bytes(Writer().opaque(group_id).u64(epoch).u8(content_type))


def _content_aad(
    group_id: bytes, epoch: int, content_type: ContentType, authenticated_data: bytes
) -> bytes:
    """``PrivateContentAAD``."""
    w = Writer().opaque(group_id).u64(epoch).u8(content_type).opaque(authenticated_data)
    return bytes(w)


def _guarded_nonce(nonce: bytes, reuse_guard: bytes) -> bytes:
    """XOR the reuse guard into the first four nonce bytes (§6.3.1), so two senders that
    somehow reuse a generation still do not reuse an AEAD nonce."""
    head = bytes(a ^ b for a, b in zip(nonce[:_REUSE_GUARD_LEN], reuse_guard, strict=True))
    return head + nonce[_REUSE_GUARD_LEN:]


def padding_for(plaintext_len: int) -> int:
    """Default padding: round the PrivateMessageContent up to the next power of two below
    1 KiB and to a multiple of 1 KiB above, hiding the exact length at a bounded cost."""
    if plaintext_len <= 32:
        target = 32
    elif plaintext_len <= 1024:
        target = 1 << (plaintext_len - 1).bit_length()
    else:
        target = -(-plaintext_len // 1024) * 1024
    return target - plaintext_len


def protect_private(
    suite: CipherSuite,
    content: FramedContent,
    context: GroupContext,
    *,
    signature_private_key: bytes,
    sender_data_secret: bytes,
    generation: int,
    key: bytes,
    nonce: bytes,
    confirmation_tag: bytes | None = None,
    padding: int | Callable[[int], int] = padding_for,
    reuse_guard: bytes | None = None,
) -> PrivateMessage:
    """Sign and encrypt ``content`` from a member sender. ``generation``, ``key`` and ``nonce``
    are the sender's next ratchet output for the content type (handshake for proposals and
    commits, application otherwise); the caller consumes them from its secret tree."""
    if content.sender.sender_type != SenderType.MEMBER:
        raise ValueError("only members send PrivateMessages")
    signature = sign_content(
        suite, signature_private_key, WireFormat.PRIVATE_MESSAGE, content, context
    )
    auth = FramedContentAuthData(signature, confirmation_tag)
    unpadded = PrivateMessageContent(content.content, auth).to_bytes()
    pad = padding(len(unpadded)) if callable(padding) else padding
    if pad < 0:
        raise ValueError("negative padding")
    plaintext = unpadded + bytes(pad)

    guard = os.urandom(_REUSE_GUARD_LEN) if reuse_guard is None else reuse_guard
    content_type = content.content_type
    ciphertext = suite.seal(
        key,
        _guarded_nonce(nonce, guard),
        _content_aad(content.group_id, content.epoch, content_type, content.authenticated_data),
        plaintext,
    )
    sender_data = SenderData(content.sender.index, generation, guard)
    sd_key, sd_nonce = sender_data_key_nonce(suite, sender_data_secret, ciphertext)
    encrypted_sender_data = suite.seal(
        sd_key,
        sd_nonce,
        _sender_data_aad(content.group_id, content.epoch, content_type),
        sender_data.to_bytes(),
    )
    return PrivateMessage(
        content.group_id,
        content.epoch,
        content_type,
        content.authenticated_data,
        encrypted_sender_data,
        ciphertext,
    )


def open_sender_data(
    suite: CipherSuite, sender_data_secret: bytes, message: PrivateMessage
) -> SenderData:
    """Decrypt and parse a PrivateMessage's sender data."""
    sd_key, sd_nonce = sender_data_key_nonce(suite, sender_data_secret, message.ciphertext)
    aad = _sender_data_aad(message.group_id, message.epoch, message.content_type)
    try:
        plain = suite.open(sd_key, sd_nonce, aad, message.encrypted_sender_data)
    except MlsError:
        raise DecryptionError("sender data does not decrypt") from None
    return SenderData.from_bytes(plain)


def open_private_content(
    suite: CipherSuite,
    message: PrivateMessage,
    sender_data: SenderData,
    key: bytes,
    nonce: bytes,
) -> AuthenticatedContent:
    """Decrypt and parse the content with the key and nonce of ``sender_data``'s generation.
    The signature is not checked here (see :func:`verify_content_signature`)."""
    aad = _content_aad(
        message.group_id, message.epoch, message.content_type, message.authenticated_data
    )
    try:
        plain = suite.open(
            key, _guarded_nonce(nonce, sender_data.reuse_guard), aad, message.ciphertext
        )
    except MlsError:
        raise DecryptionError("content does not decrypt") from None
    inner = PrivateMessageContent.from_bytes(plain, message.content_type)
    framed = FramedContent(
        message.group_id,
        message.epoch,
        _member(sender_data.leaf_index),
        message.authenticated_data,
        inner.content,
    )
    return AuthenticatedContent(WireFormat.PRIVATE_MESSAGE, framed, inner.auth)


def _member(leaf_index: int) -> Sender:
    return Sender(SenderType.MEMBER, leaf_index)


KeyLookup = Callable[[int, ContentType, int], tuple[bytes, bytes]]
"""``(leaf_index, content_type, generation) -> (key, nonce)`` from the receiver's secret tree."""


def unprotect_private(
    suite: CipherSuite,
    message: PrivateMessage,
    context: GroupContext,
    *,
    sender_data_secret: bytes,
    key_for: KeyLookup,
    signature_key_for: Callable[[int], bytes],
) -> tuple[AuthenticatedContent, SenderData]:
    """Open a PrivateMessage of this group and epoch completely: sender data, content,
    signature. ``key_for`` may raise (unknown leaf, generation too far back or ahead); its
    error propagates."""
    _check_epoch(message.group_id, message.epoch, context)
    sender_data = open_sender_data(suite, sender_data_secret, message)
    key, nonce = key_for(sender_data.leaf_index, message.content_type, sender_data.generation)
    content = open_private_content(suite, message, sender_data, key, nonce)
    verify_content_signature(suite, signature_key_for(sender_data.leaf_index), content, context)
    return content, sender_data
