"""External joins (RFC 9420 §12.4.3.2): a member publishes a signed GroupInfo with the group's
external public key; a newcomer that holds it commits itself into the group (an ExternalInit
proposal and an UpdatePath from the leftmost blank leaf) without a Welcome.

The reference configures ``allow_external_commit=false``, so SLIM sessions do not use this; it
is here for completeness of RFC 9420 and for applications that distribute GroupInfos. Members
process such commits through the ordinary commit path (sender type ``new_member_commit``).
"""

from __future__ import annotations

import dataclasses

from slimwire.mls._codec import DecodeError, Reader, Writer, decode_all
from slimwire.mls._commit import ratchet_tree_ext
from slimwire.mls._framing import sign_content
from slimwire.mls._group_state import GroupState
from slimwire.mls._key_schedule import epoch_from_init_secret, external_init_secret
from slimwire.mls._proposals import (
    CredentialValidator,
    InvalidProposalError,
    ProposalEntry,
    apply_proposals,
    check_credential,
)
from slimwire.mls._ratchet_tree import RatchetTree
from slimwire.mls._struct_content import Commit, ExternalInit
from slimwire.mls._struct_framing import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    MLSMessage,
    PublicMessage,
    Sender,
)
from slimwire.mls._struct_welcome import GroupInfo
from slimwire.mls._structs import (
    Extension,
    ExtensionType,
    GroupContext,
    LeafNode,
    SenderType,
    WireFormat,
    find_extension,
    ratchet_tree_from_extensions,
)
from slimwire.mls._suites import CipherSuite
from slimwire.mls._transcript import (
    confirmation_tag,
    confirmed_transcript_hash,
    interim_transcript_hash,
)
from slimwire.mls._treekem import TreePrivateKeys, create_update_path
from slimwire.mls._welcome import WelcomeError, sign_group_info, verify_group_info

__all__ = ["external_commit", "public_group_info"]


def public_group_info(state: GroupState) -> bytes:
    """A GroupInfo MLSMessage for external joiners: the current context, the external public
    key and the ratchet tree, signed by us."""
    external_pub = bytes(Writer().opaque(state.secrets.external_pub))
    info = GroupInfo(
        state.context,
        (Extension(ExtensionType.EXTERNAL_PUB, external_pub), ratchet_tree_ext(state.tree)),
        state.confirmation_tag,
        state.leaf_index,
    )
    return MLSMessage(sign_group_info(state.suite, state.signature_private_key, info)).to_bytes()


def _checked_tree(suite: CipherSuite, info: GroupInfo, supplied: RatchetTree | None) -> RatchetTree:
    nodes = ratchet_tree_from_extensions(info.extensions)
    tree = RatchetTree.from_nodes(suite, nodes) if nodes is not None else supplied
    if tree is None:
        raise WelcomeError("no ratchet tree in the GroupInfo and none supplied")
    context = info.group_context
    if tree.tree_hash() != context.tree_hash:
        raise WelcomeError("ratchet tree does not match the GroupInfo's tree hash")
    tree.validate(context.group_id)
    signer = tree.leaf(info.signer) if info.signer < tree.n_leaves else None
    if signer is None:
        raise WelcomeError("GroupInfo signer is not a member")
    verify_group_info(suite, info, signer.signature_key)
    return tree


def external_commit(
    suite: CipherSuite,
    info: GroupInfo,
    *,
    leaf_template: LeafNode,
    signature_private_key: bytes,
    ratchet_tree: RatchetTree | None = None,
    validate: CredentialValidator,
    authenticated_data: bytes = b"",
) -> tuple[GroupState, bytes]:
    """Join through an external commit: (our state in the new epoch, the commit to send).
    ``leaf_template`` gives our credential, capabilities and signature key."""
    context = info.group_context
    if context.cipher_suite != suite.id:
        raise WelcomeError("GroupInfo is for another cipher suite")
    tree = _checked_tree(suite, info, ratchet_tree)
    try:
        for _, leaf in tree.leaves():
            check_credential(validate, leaf)
    except InvalidProposalError as exc:
        raise WelcomeError(str(exc)) from None
    data = find_extension(info.extensions, ExtensionType.EXTERNAL_PUB)
    if data is None:
        raise WelcomeError("GroupInfo has no external_pub extension")
    try:
        external_pub = decode_all(data, Reader.opaque)
    except DecodeError:
        raise WelcomeError("malformed external_pub extension") from None
    kem_output, init_secret = external_init_secret(suite, external_pub)
    proposal = ExternalInit(kem_output)
    sender = Sender(SenderType.NEW_MEMBER_COMMIT)
    applied = apply_proposals(
        suite, tree, context, [ProposalEntry(proposal, sender)], committer=None, validate=validate
    )
    base = applied.tree
    index = next((i for i in range(base.n_leaves) if base.leaf(i) is None), None)
    if index is None:
        index = base.n_leaves
        base = base.extended()

    def provisional(tree_hash: bytes) -> GroupContext:
        return dataclasses.replace(
            context, epoch=context.epoch + 1, tree_hash=tree_hash, extensions=applied.extensions
        )

    created = create_update_path(
        base,
        TreePrivateKeys(index, {}),
        leaf_template,
        signature_private_key,
        group_id=context.group_id,
        group_context=lambda th: provisional(th).to_bytes(),
        external=True,
    )
    framed = FramedContent(
        context.group_id,
        context.epoch,
        sender,
        authenticated_data,
        Commit((proposal,), created.update_path),
    )
    signature = sign_content(
        suite, signature_private_key, WireFormat.PUBLIC_MESSAGE, framed, context
    )
    interim = interim_transcript_hash(
        suite, context.confirmed_transcript_hash, info.confirmation_tag
    )
    confirmed = confirmed_transcript_hash(
        suite,
        interim,
        AuthenticatedContent(
            WireFormat.PUBLIC_MESSAGE, framed, FramedContentAuthData(signature, b"")
        ),
    )
    new_context = dataclasses.replace(
        provisional(created.tree.tree_hash()), confirmed_transcript_hash=confirmed
    )
    secrets = epoch_from_init_secret(
        suite, init_secret, created.commit_secret, None, new_context.to_bytes()
    )
    tag = confirmation_tag(suite, secrets.confirmation_key, confirmed)
    message = MLSMessage(PublicMessage(framed, FramedContentAuthData(signature, tag), None))
    state = GroupState.new_epoch(
        suite,
        context=new_context,
        tree=created.tree,
        private_keys=created.private_keys,
        secrets=secrets,
        signature_private_key=signature_private_key,
        confirmation_tag=tag,
    )
    return state, message.to_bytes()
