"""Proposal lists: validation (RFC 9420 §12.2) and application to the tree (§12.3).

A commit names proposals by value (sent by the committer inside the commit) or by reference
(sent earlier in the epoch, held as pending). Both a committer building its commit and a member
processing one run the same function, :func:`apply_proposals`, so they cannot disagree about
what a list of proposals means: it validates the list as a whole, applies it in the RFC's order
(GroupContextExtensions, Update, Remove, Add, PreSharedKey) to an immutable tree, and returns
everything the key schedule and the Welcome need. Nothing is changed in place; an invalid list
raises :class:`InvalidProposalError` and the caller's state stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from slimwire.errors import MlsError
from slimwire.mls._codec import DecodeError
from slimwire.mls._ratchet_tree import RatchetTree, validate_leaf_node
from slimwire.mls._struct_content import (
    Add,
    CustomProposal,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalRef,
    PSKType,
    ReInit,
    Remove,
    ResumptionPSKUsage,
    Update,
)
from slimwire.mls._struct_framing import Sender
from slimwire.mls._structs import (
    CredentialType,
    Extension,
    ExtensionType,
    GroupContext,
    KeyPackage,
    LeafNode,
    LeafNodeSource,
    ProposalType,
    ProtocolVersion,
    RequiredCapabilities,
    SenderType,
    find_extension,
)
from slimwire.mls._suites import CipherSuite
from slimwire.mls._welcome import verify_key_package

__all__ = [
    "AppliedProposals",
    "CredentialValidator",
    "InvalidProposalError",
    "ProposalEntry",
    "accept_any_credential",
    "apply_proposals",
    "check_credential",
    "check_psk",
    "check_reinit",
    "path_required",
]

CredentialValidator = Callable[[bytes, bytes], bool]
"""``(credential identity, signature public key) -> accepted``: the identity layer's hook (a
SLIM token whose ``pubkey`` claim must equal the leaf's signature key)."""

CLOCK_SKEW = 3600
"""Seconds of clock difference tolerated when checking a key package's lifetime."""

# Proposal types whose commit needs no UpdatePath (§12.4).
_PATH_OPTIONAL = frozenset({ProposalType.ADD, ProposalType.PSK, ProposalType.REINIT})


class InvalidProposalError(MlsError):
    """A proposal, or a list of proposals in a commit, breaks RFC 9420 §12.2."""


def accept_any_credential(identity: bytes, signature_key: bytes) -> bool:
    """The default hook: MLS checks only; suitable for tests and closed deployments."""
    return True


def check_credential(validate: CredentialValidator, leaf: LeafNode) -> None:
    """Only basic credentials are spoken (as by the reference); the hook decides the rest."""
    cred = leaf.credential
    if cred.credential_type != CredentialType.BASIC:
        raise InvalidProposalError(f"unsupported credential type {cred.credential_type}")
    if not validate(cred.identity, leaf.signature_key):
        raise InvalidProposalError("credential rejected by the identity validator")


@dataclass(frozen=True, slots=True)
class ProposalEntry:
    """One proposal in a commit's list, with who proposed it; ``ref`` is None when the commit
    carries it by value."""

    proposal: Proposal
    sender: Sender
    ref: ProposalRef | None = None


@dataclass(frozen=True, slots=True)
class AppliedProposals:
    """The outcome of a proposal list: the tree before any UpdatePath, who came and went, and
    what the key schedule needs next."""

    tree: RatchetTree
    added: tuple[tuple[int, KeyPackage], ...]
    removed: tuple[int, ...]
    updated: tuple[tuple[int, LeafNode], ...]
    psk_ids: tuple[PreSharedKeyID, ...]
    extensions: tuple[Extension, ...]
    external_init: ExternalInit | None
    reinit: ReInit | None
    path_required: bool


def path_required(proposals: Sequence[Proposal]) -> bool:
    """An empty commit, or one with any proposal but Add/PSK/ReInit, needs an UpdatePath."""
    return not proposals or any(p.proposal_type not in _PATH_OPTIONAL for p in proposals)


def check_psk(
    suite: CipherSuite, psk: PreSharedKeyID, link: ResumptionPSKUsage | None = None
) -> None:
    """§12.1.4: a PSK's nonce is Nh bytes, and a resumption PSK of usage reinit or branch is
    only valid in the first commit of the group that a reinitialization or a branch creates
    (``link`` names which); anywhere else it would let a commit claim a link that never was."""
    if len(psk.psk_nonce) != suite.hash_len:
        raise InvalidProposalError("PSK nonce must be Nh bytes")
    if psk.psktype == PSKType.RESUMPTION and psk.usage not in (
        ResumptionPSKUsage.APPLICATION,
        link,
    ):
        raise InvalidProposalError(f"a {psk.usage.name.lower()} resumption PSK is not valid here")


def check_reinit(context: GroupContext, reinit: ReInit) -> None:
    """§12.2: a ReInit may not lower the protocol version."""
    if reinit.version < context.version:
        raise InvalidProposalError("a ReInit may not lower the protocol version")


def _required_capabilities(extensions: Sequence[Extension]) -> RequiredCapabilities | None:
    data = find_extension(extensions, ExtensionType.REQUIRED_CAPABILITIES)
    if data is None:
        return None
    try:
        return RequiredCapabilities.from_bytes(data)
    except DecodeError:
        raise InvalidProposalError("malformed required_capabilities extension") from None


def _supports_extensions(leaf: LeafNode, extensions: Sequence[Extension]) -> bool:
    caps = leaf.capabilities
    for ext in extensions:
        if ext.extension_type > ExtensionType.EXTERNAL_SENDERS and (
            ext.extension_type not in caps.extensions
        ):
            return False
    required = _required_capabilities(extensions)
    return required is None or (
        set(required.extension_types) <= set(caps.extensions)
        and set(required.proposal_types) <= set(caps.proposals)
        and set(required.credential_types) <= set(caps.credentials)
    )


def validate_key_package(
    suite: CipherSuite,
    key_package: KeyPackage,
    validate: CredentialValidator,
    required: RequiredCapabilities | None = None,
    now: int | None = None,
) -> None:
    """A KeyPackage as an Add carries it (§10.1): version, suite, both signatures, leaf
    validation for the key_package source, credential policy."""
    if key_package.version != ProtocolVersion.MLS10:
        raise InvalidProposalError("key package is not for MLS 1.0")
    try:
        verify_key_package(suite, key_package)
        validate_leaf_node(
            None,
            key_package.leaf_node,
            source=LeafNodeSource.KEY_PACKAGE,
            required=required,
            suite=suite,
        )
    except MlsError as exc:
        raise InvalidProposalError(f"invalid key package: {exc}") from None
    lifetime = key_package.leaf_node.lifetime
    # tolerate clock skew between the key package's creator and us
    if (
        now is not None
        and lifetime is not None
        and not lifetime.not_before - CLOCK_SKEW <= now <= lifetime.not_after + CLOCK_SKEW
    ):
        raise InvalidProposalError("key package lifetime does not cover the current time")
    check_credential(validate, key_package.leaf_node)


def apply_proposals(
    suite: CipherSuite,
    tree: RatchetTree,
    context: GroupContext,
    entries: Sequence[ProposalEntry],
    *,
    committer: int | None,
    validate: CredentialValidator,
    now: int | None = None,
    link: ResumptionPSKUsage | None = None,
) -> AppliedProposals:
    """Validate the list of a commit by member ``committer`` (None: an external commit) and
    apply it; ``now`` (Unix seconds) enables the lifetime check of added key packages.
    ``link`` is set only for the first commit of a group created by a reinitialization or a
    branch: it admits one resumption PSK of that usage. Raises :class:`InvalidProposalError`."""
    external = committer is None
    gce: list[GroupContextExtensions] = []
    updates: list[tuple[int, LeafNode]] = []
    removes: list[int] = []
    adds: list[KeyPackage] = []
    psks: list[PreSharedKeyID] = []
    reinits: list[ReInit] = []
    inits: list[ExternalInit] = []
    touched: set[int] = set()
    for entry in entries:
        p, sender = entry.proposal, entry.sender
        if isinstance(p, CustomProposal):
            raise InvalidProposalError(f"unsupported proposal type {p.custom_type}")
        if isinstance(p, Update):
            if sender.sender_type != SenderType.MEMBER or entry.ref is None:
                raise InvalidProposalError("an Update must come by reference from a member")
            if sender.index == committer:
                raise InvalidProposalError("the committer cannot commit its own Update")
            if sender.index in touched:
                raise InvalidProposalError(f"leaf {sender.index} updated or removed twice")
            touched.add(sender.index)
            updates.append((sender.index, p.leaf_node))
        elif isinstance(p, Remove):
            if p.removed == committer:
                raise InvalidProposalError("a committer cannot remove itself")
            if p.removed in touched:
                raise InvalidProposalError(f"leaf {p.removed} updated or removed twice")
            if not 0 <= p.removed < tree.n_leaves or tree.leaf(p.removed) is None:
                raise InvalidProposalError(f"Remove of blank leaf {p.removed}")
            touched.add(p.removed)
            removes.append(p.removed)
        elif isinstance(p, Add):
            adds.append(p.key_package)
        elif isinstance(p, PreSharedKey):
            check_psk(suite, p.psk, link)
            if p.psk in psks:
                raise InvalidProposalError("the same PSK is proposed twice")
            psks.append(p.psk)
        elif isinstance(p, GroupContextExtensions):
            gce.append(p)
        elif isinstance(p, ReInit):
            check_reinit(context, p)
            reinits.append(p)
        else:
            inits.append(p)

    if len(gce) > 1:
        raise InvalidProposalError("more than one GroupContextExtensions proposal")
    if reinits and len(entries) != 1:
        raise InvalidProposalError("a ReInit must be the only proposal of its commit")
    linked = [
        p
        for p in psks
        if p.psktype == PSKType.RESUMPTION and p.usage != ResumptionPSKUsage.APPLICATION
    ]
    if len(linked) > 1:
        raise InvalidProposalError("more than one reinit or branch resumption PSK")
    if external:
        if len(inits) != 1:
            raise InvalidProposalError("an external commit carries exactly one ExternalInit")
        if updates or adds or gce or reinits:
            raise InvalidProposalError("an external commit may only carry Remove and PSK")
        if any(e.ref is not None for e in entries):
            raise InvalidProposalError("an external commit has no proposals by reference")
    elif inits:
        raise InvalidProposalError("ExternalInit only in an external commit")

    extensions = gce[0].extensions if gce else context.extensions
    required = _required_capabilities(extensions)
    if gce:
        for i, leaf in tree.leaves():
            if i not in removes and not _supports_extensions(leaf, extensions):
                raise InvalidProposalError(f"leaf {i} does not support the new extensions")

    new = tree
    try:
        for leaf_index, leaf in updates:
            validate_leaf_node(
                new,
                leaf,
                source=LeafNodeSource.UPDATE,
                group_id=context.group_id,
                leaf_index=leaf_index,
                required=required,
            )
            old = new.leaf(leaf_index)
            assert old is not None
            if old.signature_key != leaf.signature_key or leaf.credential != old.credential:
                check_credential(validate, leaf)
            new = new.update_leaf(leaf_index, leaf)
        for leaf_index in removes:
            new = new.remove_leaf(leaf_index)
        added: list[tuple[int, KeyPackage]] = []
        seen: set[bytes] = set()
        for kp in adds:
            if kp.cipher_suite != suite.id:
                raise InvalidProposalError("key package for another cipher suite")
            if kp.leaf_node.signature_key in seen:
                raise InvalidProposalError("two Adds for the same client")
            seen.add(kp.leaf_node.signature_key)
            validate_key_package(suite, kp, validate, required, now)
            validate_leaf_node(new, kp.leaf_node, source=LeafNodeSource.KEY_PACKAGE)
            new, index = new.add_leaf(kp.leaf_node)
            added.append((index, kp))
    except InvalidProposalError:
        raise
    except MlsError as exc:
        raise InvalidProposalError(str(exc)) from None

    return AppliedProposals(
        tree=new,
        added=tuple(added),
        removed=tuple(removes),
        updated=tuple(updates),
        psk_ids=tuple(psks),
        extensions=tuple(extensions),
        external_init=inits[0] if inits else None,
        reinit=reinits[0] if reinits else None,
        path_required=external or path_required([e.proposal for e in entries]),
    )
