"""Epoch changes: creating a commit (and its Welcome), processing a commit from another member,
and joining from a Welcome (RFC 9420 §12.4).

Every function takes a :class:`GroupState` and returns a new one; nothing is swapped until the
whole commit has verified (signature and membership tag before we get here, proposals, UpdatePath,
confirmation tag here), so a rejected commit leaves the member in its old epoch.

Both directions share :func:`~slimwire.mls._proposals.apply_proposals` and :func:`_next_epoch`, so
a committer and its receivers derive the new GroupContext and key schedule with the same code.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from slimwire.errors import MlsError
from slimwire.mls._codec import Writer, encode_varint
from slimwire.mls._framing import membership_tag, proposal_ref, sign_content
from slimwire.mls._group_state import GroupState, PendingProposal
from slimwire.mls._key_schedule import (
    EpochSecrets,
    epoch_from_init_secret,
    external_init_secret_from_kem_output,
)
from slimwire.mls._proposals import (
    AppliedProposals,
    CredentialValidator,
    InvalidProposalError,
    ProposalEntry,
    apply_proposals,
    check_credential,
    check_psk,
    check_reinit,
    validate_key_package,
)
from slimwire.mls._psk import MissingPskError, psk_secret
from slimwire.mls._ratchet_tree import RatchetTree, validate_leaf_node
from slimwire.mls._struct_content import (
    Add,
    Commit,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    ProposalRef,
    PSKType,
    ReInit,
    Remove,
    ResumptionPSKUsage,
    Update,
)
from slimwire.mls._struct_framing import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    MLSMessage,
    PublicMessage,
    Sender,
)
from slimwire.mls._struct_welcome import GroupInfo, GroupSecrets, Welcome
from slimwire.mls._structs import (
    Extension,
    ExtensionType,
    GroupContext,
    KeyPackage,
    LeafNodeSource,
    Node,
    SenderType,
    WireFormat,
    encode_node,
    ratchet_tree_from_extensions,
)
from slimwire.mls._suites import CipherSuite
from slimwire.mls._transcript import (
    confirmation_tag,
    confirmed_transcript_hash,
    verify_confirmation_tag,
)
from slimwire.mls._treekem import (
    TreeKemError,
    TreePrivateKeys,
    apply_update_path,
    create_update_path,
    joiner_path_secret,
)
from slimwire.mls._welcome import (
    WelcomeError,
    encrypt_group_info,
    open_welcome,
    seal_group_secrets,
    sign_group_info,
    verify_group_info,
)

__all__ = [
    "CommitError",
    "CommitOutcome",
    "CreatedCommit",
    "ExternalPskLookup",
    "LinkedPsk",
    "ResumptionPskLookup",
    "create_commit",
    "join_from_welcome",
    "process_commit",
    "receive_proposal",
]

ExternalPskLookup = Callable[[bytes], bytes | None]
"""``psk_id -> psk`` for external PSKs the application holds."""

LinkedPsk = tuple[PreSharedKeyID, bytes]
"""The reinit or branch resumption PSK (id, value) that links a new group to its old one; only
the first commit of the new group carries it (§11.2, §11.3)."""

ResumptionPskLookup = Callable[[PreSharedKeyID], bytes | None]
"""For a joiner: the value of a resumption PSK a Welcome names, from a group it is in."""


class CommitError(MlsError):
    """A commit cannot be created or does not verify against our state."""


def _no_external_psks(_: bytes) -> bytes | None:
    return None


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """What a processed commit did, as the application sees it."""

    committer: int | None  # None for an external commit (see ``joined``)
    added: tuple[int, ...]
    removed: tuple[int, ...]
    updated: tuple[int, ...]
    joined: int | None = None  # leaf an external committer took


@dataclass(frozen=True, slots=True)
class CreatedCommit:
    state: GroupState = field(repr=False)
    commit: bytes
    welcome: bytes | None
    outcome: CommitOutcome


# -- the ratchet_tree extension ----------------------------------------------------------------

_NODE_BYTES: dict[int, tuple[Node, bytes]] = {}
_NODE_CACHE_LIMIT = 1 << 14


def _node_bytes(node: Node) -> bytes:
    """``optional<Node>`` body of a present node. Encodings are memoised by object identity
    (the entry holds the node, so its id cannot be reused while cached): a commit changes a
    few nodes, and re-encoding a thousand unchanged leaves for every Welcome dominated the
    cost of an Add at 1,000 members."""
    hit = _NODE_BYTES.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    w = Writer().u8(1)
    encode_node(w, node)
    data = bytes(w)
    if len(_NODE_BYTES) >= _NODE_CACHE_LIMIT:
        _NODE_BYTES.clear()
    _NODE_BYTES[id(node)] = (node, data)
    return data


def ratchet_tree_ext(tree: RatchetTree) -> Extension:
    """The GroupInfo's ``ratchet_tree`` extension (the same bytes as
    :func:`~slimwire.mls._structs.ratchet_tree_extension`)."""
    body = b"".join(b"\x00" if n is None else _node_bytes(n) for n in tree.truncated_nodes())
    return Extension(ExtensionType.RATCHET_TREE, encode_varint(len(body)) + body)


# -- shared pieces ----------------------------------------------------------------------------


def _psk_value(
    state: GroupState,
    psk_id: PreSharedKeyID,
    external: ExternalPskLookup,
    link: LinkedPsk | None,
) -> bytes | None:
    """A PSK's value from the application (external), the link to an old group (reinit,
    branch), or this group's own recent epochs (application usage); None if we lack it."""
    if psk_id.psktype == PSKType.EXTERNAL:
        return external(psk_id.psk_id)
    if link is not None and psk_id == link[0]:
        return link[1]
    if psk_id.usage != ResumptionPSKUsage.APPLICATION:
        return None
    if psk_id.psk_group_id != state.context.group_id:
        return None
    if psk_id.psk_epoch == state.epoch:
        return state.secrets.resumption_psk
    return state.resumption_psk(psk_id.psk_epoch)


def _psk_secret(
    state: GroupState,
    ids: Sequence[PreSharedKeyID],
    external: ExternalPskLookup,
    link: LinkedPsk | None = None,
) -> bytes | None:
    if not ids:
        return None
    pairs = []
    for psk_id in ids:
        value = _psk_value(state, psk_id, external, link)
        if value is None:
            raise MissingPskError(f"unknown PSK (type {psk_id.psktype.name})")
        pairs.append((psk_id, value))
    return psk_secret(state.suite, pairs)


def _provisional(state: GroupState, applied: AppliedProposals, tree_hash: bytes) -> GroupContext:
    """The next epoch's context before the commit is known: epoch + 1, the new tree and
    extensions, the old confirmed transcript hash (§12.4.1)."""
    ctx = state.context
    return GroupContext(
        ctx.version,
        ctx.cipher_suite,
        ctx.group_id,
        ctx.epoch + 1,
        tree_hash,
        state.transcript.confirmed,
        applied.extensions,
    )


def _next_epoch(
    state: GroupState,
    applied: AppliedProposals,
    *,
    tree: RatchetTree,
    commit_content: AuthenticatedContent,
    commit_secret: bytes | None,
    init_secret: bytes,
    external_psks: ExternalPskLookup,
    link: LinkedPsk | None = None,
) -> tuple[GroupContext, EpochSecrets, bytes]:
    """(new context, new key schedule, confirmed transcript hash) for a commit whose signature
    is known (its confirmation tag need not be yet)."""
    suite = state.suite
    confirmed = confirmed_transcript_hash(suite, state.transcript.interim, commit_content)
    context = dataclasses.replace(
        _provisional(state, applied, tree.tree_hash()), confirmed_transcript_hash=confirmed
    )
    psk = _psk_secret(state, applied.psk_ids, external_psks, link)
    secrets = epoch_from_init_secret(suite, init_secret, commit_secret, psk, context.to_bytes())
    return context, secrets, confirmed


def _apply(
    state: GroupState,
    entries: Callable[[], Sequence[ProposalEntry]],
    committer: int | None,
    validate: CredentialValidator,
    link: ResumptionPSKUsage | None = None,
) -> AppliedProposals:
    """Resolve and apply a commit's proposals to this epoch's tree, by the same rules for
    commits we create and commits we receive; any invalid proposal is a :class:`CommitError`
    (``entries`` is called inside, so resolving references fails the same way)."""
    try:
        return apply_proposals(
            state.suite,
            state.tree,
            state.context,
            entries(),
            committer=committer,
            validate=validate,
            now=int(time.time()),
            link=link,
        )
    except InvalidProposalError as exc:
        raise CommitError(f"invalid proposals: {exc}") from None


def _successor(
    state: GroupState,
    *,
    context: GroupContext,
    tree: RatchetTree,
    keys: TreePrivateKeys,
    secrets: EpochSecrets,
    tag: bytes,
    reinit: ReInit | None,
) -> GroupState:
    new = GroupState.new_epoch(
        state.suite,
        context=context,
        tree=tree,
        private_keys=keys,
        secrets=secrets,
        signature_private_key=state.signature_private_key,
        confirmation_tag=tag,
        resumption_psks=state.remember_psk(
            state.resumption_psks, state.epoch, state.secrets.resumption_psk
        ),
    )
    # a commit carrying a ReInit still starts a full epoch (its resumption PSK is the link to
    # the new group) but suspends the group: nothing more is sent or accepted in it (§12.4.2)
    return new if reinit is None else dataclasses.replace(new, pending_reinit=reinit)


# -- proposals ----------------------------------------------------------------------------------


def receive_proposal(
    state: GroupState,
    content: AuthenticatedContent,
    validate: CredentialValidator,
) -> tuple[GroupState, ProposalRef]:
    """Check a proposal on its own (the list checks wait for the commit) and keep it."""
    proposal = content.content.content
    sender = content.content.sender
    suite = state.suite
    if sender.sender_type != SenderType.MEMBER:
        raise InvalidProposalError("only proposals from members are accepted")
    try:
        if isinstance(proposal, Add):
            validate_key_package(suite, proposal.key_package, validate, now=int(time.time()))
        elif isinstance(proposal, Update):
            validate_leaf_node(
                state.tree,
                proposal.leaf_node,
                source=LeafNodeSource.UPDATE,
                group_id=state.context.group_id,
                leaf_index=sender.index,
            )
        elif isinstance(proposal, Remove):
            if proposal.removed >= state.tree.n_leaves or state.tree.leaf(proposal.removed) is None:
                raise InvalidProposalError(f"Remove of blank leaf {proposal.removed}")
        elif isinstance(proposal, PreSharedKey):
            check_psk(suite, proposal.psk)
        elif isinstance(proposal, ReInit):
            check_reinit(state.context, proposal)
        elif not isinstance(proposal, (bytes, Commit)) and proposal.proposal_type > 7:
            raise InvalidProposalError(f"unsupported proposal type {proposal.proposal_type}")
    except InvalidProposalError:
        raise
    except MlsError as exc:
        raise InvalidProposalError(str(exc)) from None
    ref = proposal_ref(suite, content)
    if any(p.ref == ref for p in state.pending):
        raise InvalidProposalError("proposal already received")
    pending = (*state.pending, PendingProposal(ref, content))
    return dataclasses.replace(state, pending=pending), ref


def _resolve(
    state: GroupState, items: Sequence[ProposalOrRef], committer: Sender
) -> list[ProposalEntry]:
    by_ref = {p.ref: p.content for p in state.pending}
    entries = []
    for item in items:
        if isinstance(item, ProposalRef):
            content = by_ref.get(item)
            if content is None:
                raise CommitError("commit names a proposal we do not hold")
            body = content.content.content
            assert not isinstance(body, (bytes, Commit))
            entries.append(ProposalEntry(body, content.content.sender, item))
        else:
            entries.append(ProposalEntry(item, committer))
    return entries


# -- processing a commit ------------------------------------------------------------------------


def process_commit(
    state: GroupState,
    content: AuthenticatedContent,
    *,
    validate: CredentialValidator,
    external_psks: ExternalPskLookup = _no_external_psks,
) -> tuple[GroupState, CommitOutcome]:
    """Apply a commit whose framing (membership tag, signature) the caller has verified.
    Returns the next epoch's state; if the commit removes us, the returned state is the old
    one marked inactive."""
    commit = content.content.content
    if not isinstance(commit, Commit):
        raise CommitError("not a commit")
    sender = content.content.sender
    tag = content.auth.confirmation_tag
    assert tag is not None
    suite = state.suite
    me = state.leaf_index
    if sender.sender_type == SenderType.MEMBER:
        committer: int | None = sender.index
        if committer == me:
            raise CommitError("a commit from our own leaf (ours are applied when created)")
    elif sender.sender_type == SenderType.NEW_MEMBER_COMMIT:
        committer = None
    else:
        raise CommitError(f"a commit from a {sender.sender_type.name} sender")
    applied = _apply(state, lambda: _resolve(state, commit.proposals, sender), committer, validate)
    if applied.path_required and commit.path is None:
        raise CommitError("this commit needs an UpdatePath")
    outcome = CommitOutcome(
        committer,
        tuple(i for i, _ in applied.added),
        applied.removed,
        tuple(i for i, _ in applied.updated),
    )
    if me in applied.removed:
        return dataclasses.replace(state, active=False, pending=()), outcome

    keys = state.private_keys
    for index, leaf in applied.updated:
        if index == me:
            private = state.pending_updates.get(leaf.encryption_key)
            if private is None:
                raise CommitError("commit applies an Update of our leaf we did not send")
            keys = TreePrivateKeys.for_leaf(me, private)
    tree = applied.tree
    keys = keys.pruned(tree)

    init_secret = state.secrets.init_secret
    if committer is None:
        assert applied.external_init is not None
        private, _ = state.secrets.external_key_pair()
        try:
            init_secret = external_init_secret_from_kem_output(
                suite, private, applied.external_init.kem_output
            )
        except MlsError:
            raise CommitError("ExternalInit does not decapsulate") from None

    commit_secret = None
    if commit.path is not None:
        try:
            check_credential(validate, commit.path.leaf_node)
        except InvalidProposalError as exc:
            raise CommitError(str(exc)) from None
        path_sender = committer
        if path_sender is None:
            blank = next((i for i in range(tree.n_leaves) if tree.leaf(i) is None), None)
            if blank is None:
                blank = tree.n_leaves
                tree = tree.extended()
            path_sender = blank
            outcome = dataclasses.replace(outcome, joined=blank)
        try:
            result = apply_update_path(
                tree,
                path_sender,
                commit.path,
                keys,
                group_id=state.context.group_id,
                group_context=lambda th: _provisional(state, applied, th).to_bytes(),
                exclude_leaves=frozenset(outcome.added),
                external=committer is None,
            )
        except TreeKemError as exc:
            raise CommitError(f"UpdatePath: {exc}") from None
        tree, commit_secret, keys = result.tree, result.commit_secret, result.private_keys

    try:
        context, secrets, confirmed = _next_epoch(
            state,
            applied,
            tree=tree,
            commit_content=content,
            commit_secret=commit_secret,
            init_secret=init_secret,
            external_psks=external_psks,
        )
        verify_confirmation_tag(suite, secrets.confirmation_key, confirmed, tag)
    except MlsError as exc:
        raise CommitError(f"commit does not verify: {exc}") from None
    new = _successor(
        state,
        context=context,
        tree=tree,
        keys=keys,
        secrets=secrets,
        tag=tag,
        reinit=applied.reinit,
    )
    return new, outcome


# -- creating a commit --------------------------------------------------------------------------


def _committable(
    state: GroupState, by_value: Sequence[Proposal], with_reinit: bool
) -> list[ProposalEntry]:
    """Pending proposals we can commit by reference (not our own Updates, not a Remove of us,
    one change per leaf), then ours by value. A pending ReInit must be alone in its commit:
    any other proposal goes first (§12.1.5 says to prefer them; the ReInit can be sent again
    in a later epoch), else, if ``with_reinit``, the first ReInit alone."""
    if with_reinit and not by_value:
        others = [p for p in state.pending if not isinstance(p.content.content.content, ReInit)]
        if not others and state.pending:
            first = state.pending[0]
            body = first.content.content.content
            assert isinstance(body, ReInit)
            return [ProposalEntry(body, first.content.content.sender, first.ref)]
    me = state.leaf_index
    touched = {me}
    for p in by_value:
        if isinstance(p, Remove):
            touched.add(p.removed)
    entries: list[ProposalEntry] = []
    for pending in state.pending:
        body = pending.content.content.content
        sender = pending.content.content.sender
        assert not isinstance(body, (bytes, Commit))
        if isinstance(body, ReInit):
            continue
        leaf = (
            sender.index
            if isinstance(body, Update)
            else body.removed
            if isinstance(body, Remove)
            else None
        )
        if leaf is not None:
            if leaf in touched:
                continue
            touched.add(leaf)
        entries.append(ProposalEntry(body, sender, pending.ref))
    entries.extend(ProposalEntry(p, Sender.member(me)) for p in by_value)
    return entries


def create_commit(
    state: GroupState,
    by_value: Sequence[Proposal] = (),
    *,
    validate: CredentialValidator,
    force_path: bool = False,
    include_pending: bool = True,
    authenticated_data: bytes = b"",
    external_psks: ExternalPskLookup = _no_external_psks,
    link: LinkedPsk | None = None,
    with_reinit: bool = False,
) -> CreatedCommit:
    """Commit ``by_value`` (and the pending proposals) as a PublicMessage, the way the
    reference sends handshake messages. An UpdatePath is included when the proposals need one
    or ``force_path`` is set; a Welcome (tree in its GroupInfo) is made when anyone is added.
    ``link`` is the reinit or branch PSK of a new group's first commit (its id must also be
    among ``by_value``'s PreSharedKey proposals). A pending ReInit is committed (alone) only
    with ``with_reinit`` and nothing else to commit: a self-update must not end the group."""
    if not state.active:
        raise CommitError("we are no longer a member of this group")
    suite = state.suite
    me = state.leaf_index
    sender = Sender.member(me)
    entries = (
        _committable(state, by_value, with_reinit)
        if include_pending
        else [ProposalEntry(p, sender) for p in by_value]
    )
    applied = _apply(state, lambda: entries, me, validate, None if link is None else link[0].usage)
    added = frozenset(i for i, _ in applied.added)
    tree = applied.tree
    keys = state.private_keys.pruned(tree)
    commit_secret = None
    path = None
    created = None
    if force_path or applied.path_required:
        created = create_update_path(
            tree,
            keys,
            state.own_leaf,
            state.signature_private_key,
            group_id=state.context.group_id,
            group_context=lambda th: _provisional(state, applied, th).to_bytes(),
            exclude_leaves=added,
        )
        tree, commit_secret, keys = created.tree, created.commit_secret, created.private_keys
        path = created.update_path

    commit = Commit(tuple(e.ref if e.ref is not None else e.proposal for e in entries), path)
    framed = FramedContent(state.context.group_id, state.epoch, sender, authenticated_data, commit)
    signature = sign_content(
        suite, state.signature_private_key, WireFormat.PUBLIC_MESSAGE, framed, state.context
    )
    unconfirmed = AuthenticatedContent(
        WireFormat.PUBLIC_MESSAGE, framed, FramedContentAuthData(signature, b"")
    )
    context, secrets, confirmed = _next_epoch(
        state,
        applied,
        tree=tree,
        commit_content=unconfirmed,
        commit_secret=commit_secret,
        init_secret=state.secrets.init_secret,
        external_psks=external_psks,
        link=link,
    )
    tag = confirmation_tag(suite, secrets.confirmation_key, confirmed)
    auth = FramedContentAuthData(signature, tag)
    mtag = membership_tag(suite, state.secrets.membership_key, framed, auth, state.context)
    message = MLSMessage(PublicMessage(framed, auth, mtag)).to_bytes()

    welcome = None
    if applied.added:
        info = sign_group_info(
            suite,
            state.signature_private_key,
            GroupInfo(context, (ratchet_tree_ext(tree),), tag, me),
        )
        encrypted_info = encrypt_group_info(suite, secrets.welcome_secret, info)
        sealed = tuple(
            seal_group_secrets(
                suite,
                kp,
                encrypted_info,
                GroupSecrets(
                    secrets.joiner_secret,
                    joiner_path_secret(created, index) if created is not None else None,
                    applied.psk_ids,
                ),
            )
            for index, kp in applied.added
        )
        welcome = MLSMessage(Welcome(suite.id, sealed, encrypted_info)).to_bytes()

    new = _successor(
        state,
        context=context,
        tree=tree,
        keys=keys,
        secrets=secrets,
        tag=tag,
        reinit=applied.reinit,
    )
    outcome = CommitOutcome(
        me, tuple(sorted(added)), applied.removed, tuple(i for i, _ in applied.updated)
    )
    return CreatedCommit(new, message, welcome, outcome)


# -- joining ------------------------------------------------------------------------------------


def join_from_welcome(
    suite: CipherSuite,
    welcome: Welcome,
    key_package: KeyPackage,
    *,
    init_private_key: bytes,
    leaf_private_key: bytes,
    signature_private_key: bytes,
    ratchet_tree: RatchetTree | None = None,
    validate: CredentialValidator,
    external_psks: ExternalPskLookup = _no_external_psks,
    resumption_psks: ResumptionPskLookup | None = None,
) -> tuple[GroupState, tuple[PreSharedKeyID, ...]]:
    """Enter a group from a Welcome addressed to ``key_package`` (§12.4.3.1): the new state
    and the PSK ids the Welcome named (a reinit or branch link is checked further by the
    caller, who knows the old group). The tree comes from the GroupInfo's ratchet_tree
    extension, or else from ``ratchet_tree``. Resumption PSKs come from
    ``resumption_psks`` (a group we are already in), or are missing."""

    def lookup(psk_id: PreSharedKeyID) -> bytes | None:
        if psk_id.psktype == PSKType.EXTERNAL:
            return external_psks(psk_id.psk_id)
        return None if resumption_psks is None else resumption_psks(psk_id)

    opened = open_welcome(suite, welcome, key_package, init_private_key, lookup)
    info = opened.group_info
    context = info.group_context
    psk_ids = opened.group_secrets.psks
    linked = [
        p
        for p in psk_ids
        if p.psktype == PSKType.RESUMPTION and p.usage != ResumptionPSKUsage.APPLICATION
    ]
    if len(linked) > 1:
        raise WelcomeError("more than one reinit or branch PSK in the Welcome")
    if linked and context.epoch != 1:
        raise WelcomeError("a reinitialized or branched group starts at epoch 1")
    nodes = ratchet_tree_from_extensions(info.extensions)
    if nodes is not None:
        tree = RatchetTree.from_nodes(suite, nodes)
    elif ratchet_tree is not None:
        tree = ratchet_tree
    else:
        raise WelcomeError("no ratchet tree in the Welcome and none supplied")
    if tree.tree_hash() != context.tree_hash:
        raise WelcomeError("ratchet tree does not match the GroupInfo's tree hash")
    tree.validate(context.group_id)
    signer = tree.leaf(info.signer) if info.signer < tree.n_leaves else None
    if signer is None:
        raise WelcomeError("GroupInfo signer is not a member")
    verify_group_info(suite, info, signer.signature_key)
    me = next((i for i, leaf in tree.leaves() if leaf == key_package.leaf_node), None)
    if me is None:
        raise WelcomeError("our leaf is not in the group's tree")
    try:
        for _, leaf in tree.leaves():
            check_credential(validate, leaf)
    except InvalidProposalError as exc:
        raise WelcomeError(str(exc)) from None
    path_secret = opened.group_secrets.path_secret
    if path_secret is None:
        keys = TreePrivateKeys.for_leaf(me, leaf_private_key)
        if suite.kem_public_key(leaf_private_key) != key_package.leaf_node.encryption_key:
            raise WelcomeError("leaf private key does not match the key package")
    else:
        keys = TreePrivateKeys.joined(
            tree, me, leaf_private_key, committer=info.signer, path_secret=path_secret
        )
    state = GroupState.new_epoch(
        suite,
        context=context,
        tree=tree,
        private_keys=keys,
        secrets=opened.epoch,
        signature_private_key=signature_private_key,
        confirmation_tag=info.confirmation_tag,
    )
    return state, tuple(psk_ids)
