"""The group API the session layer drives: :class:`MlsClient` (one identity: key packages,
creating and joining groups) and :class:`Group` (one member's handle on one group).

The session layer moves opaque bytes (key packages, commits, Welcomes, ciphertexts) and never
sees MLS internals. ``Group`` is sans-IO and synchronous: every call returns bytes to send or an
event, and either succeeds or raises :class:`~slimwire.errors.MlsError` with the group exactly
as it was (new state values are built and swapped in only on success). Handshake messages go out
as PublicMessages and application data as PrivateMessages, as the reference (mls-rs with
``encrypt_control_messages=false``) does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from slimwire.errors import MlsError
from slimwire.mls._codec import DecodeError
from slimwire.mls._commit import (
    CreatedCommit,
    ExternalPskLookup,
    create_commit,
    process_commit,
    receive_proposal,
)
from slimwire.mls._framing import (
    FramingError,
    open_private_content,
    open_sender_data,
    protect_public,
    unprotect_public,
    verify_content_signature,
)
from slimwire.mls._group_external import public_group_info
from slimwire.mls._group_fast import FastPath, check_aad
from slimwire.mls._group_state import GroupState, state_from_bytes, state_to_bytes
from slimwire.mls._proposals import CredentialValidator, accept_any_credential
from slimwire.mls._secret_tree import PendingKey, RatchetType
from slimwire.mls._struct_content import (
    Add,
    Commit,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    PSKType,
    ReInit,
    Remove,
    ResumptionPSKUsage,
    Update,
)
from slimwire.mls._struct_framing import (
    AuthenticatedContent,
    FramedContent,
    MLSMessage,
    PrivateMessage,
    PublicMessage,
    Sender,
    mls_message_from_bytes,
)
from slimwire.mls._structs import (
    ContentType,
    Extension,
    KeyPackage,
    LeafNode,
    LeafNodeSource,
    ProtocolVersion,
    SenderType,
    WireFormat,
)
from slimwire.mls._suites import cipher_suite as cipher_suite_of
from slimwire.mls._welcome import sign_leaf_node

__all__ = [
    "ApplicationMessage",
    "CommitProcessed",
    "Group",
    "GroupEvent",
    "GroupSuspendedError",
    "Member",
    "ProposalReceived",
]

logger = logging.getLogger(__name__)


class Member(NamedTuple):
    """A member as the application sees it: its leaf, its credential (a SLIM identity token
    for the reference) and its signature key."""

    leaf_index: int
    identity: bytes
    signature_key: bytes


@dataclass(frozen=True, slots=True)
class CommitProcessed:
    """A commit moved the group to ``epoch``; ``active`` is False if it removed us; ``reinit``
    is set if it carried a ReInit (the group is now suspended)."""

    epoch: int
    committer: int | None
    added: tuple[int, ...]
    removed: tuple[int, ...]
    updated: tuple[int, ...]
    active: bool
    joined: int | None = None  # the leaf an external committer took
    reinit: ReInit | None = None


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A proposal was stored for a later commit to name by reference."""

    sender: int
    proposal_type: int
    ref: bytes


@dataclass(frozen=True, slots=True)
class ApplicationMessage:
    plaintext: bytes
    authenticated_data: bytes
    sender: int


GroupEvent = CommitProcessed | ProposalReceived | ApplicationMessage


class GroupSuspendedError(MlsError):
    """The group committed a ReInit (RFC 9420 §11.2): it sends and accepts nothing more; the
    members move to the new group (:meth:`MlsClient.reinit`, ``MlsClient.join(old_group=)``)."""


class Group:
    """One member's handle on one MLS group. Not thread-safe; drive it from one task."""

    __slots__ = ("_external_psks", "_fast", "_state", "_validate")

    def __init__(
        self,
        state: GroupState,
        *,
        validate_credential: CredentialValidator = accept_any_credential,
        external_psks: ExternalPskLookup | None = None,
    ) -> None:
        self._state = state
        self._fast: FastPath | None = None  # for the current state only
        self._validate = validate_credential
        self._external_psks: ExternalPskLookup = external_psks or (lambda _: None)

    def __repr__(self) -> str:
        return (
            f"Group(id={self.group_id.hex()[:16]}, epoch={self.epoch}, "
            f"leaf={self.leaf_index}, members={len(self.members)}, active={self.active})"
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> GroupState:
        """The current state value (read-only; for diagnostics and tests)."""
        return self._state

    @property
    def group_id(self) -> bytes:
        return self._state.context.group_id

    @property
    def epoch(self) -> int:
        return self._state.epoch

    @property
    def epoch_authenticator(self) -> bytes:
        return self._state.secrets.epoch_authenticator

    @property
    def leaf_index(self) -> int:
        return self._state.leaf_index

    @property
    def active(self) -> bool:
        """False once a commit removed us: the group can no longer be used."""
        return self._state.active

    @property
    def cipher_suite(self) -> int:
        return self._state.suite.id

    @property
    def suspended(self) -> bool:
        """True once a commit carrying a ReInit was applied: see :attr:`pending_reinit`."""
        return self._state.pending_reinit is not None

    @property
    def pending_reinit(self) -> ReInit | None:
        """The committed ReInit's parameters (group_id, version, cipher_suite, extensions) the
        new group must have, or None while the group is in use."""
        return self._state.pending_reinit

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(
            Member(i, leaf.credential.identity, leaf.signature_key)
            for i, leaf in self._state.tree.leaves()
        )

    def ratchet_tree(self) -> bytes:
        """The ``ratchet_tree`` extension body, for a joiner given the tree out of band."""
        return self._state.tree.to_bytes()

    def group_info(self) -> bytes:
        """A signed GroupInfo (with the external public key and the tree) for an external
        joiner (:meth:`MlsClient.join_external`)."""
        self._require_active()
        return public_group_info(self._state)

    def export(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter (§8.5) of the current epoch."""
        return self._state.secrets.export(label, context, length)

    def to_bytes(self) -> bytes:
        """The whole state (private keys included: store it like a private key)."""
        return state_to_bytes(self._state)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        validate_credential: CredentialValidator = accept_any_credential,
        external_psks: ExternalPskLookup | None = None,
    ) -> Group:
        return cls(
            state_from_bytes(data),
            validate_credential=validate_credential,
            external_psks=external_psks,
        )

    def _require_active(self) -> None:
        state = self._state
        if not state.active:
            raise MlsError("we are no longer a member of this group")
        if state.pending_reinit is not None:
            raise GroupSuspendedError("the group was reinitialized; use the new group")

    # -- commits ----------------------------------------------------------------------------

    def _commit(
        self, proposals: Sequence[Proposal], *, force_path: bool = False, with_reinit: bool = False
    ) -> CreatedCommit:
        self._require_active()
        created = create_commit(
            self._state,
            proposals,
            validate=self._validate,
            force_path=force_path,
            external_psks=self._external_psks,
            with_reinit=with_reinit,
        )
        self._state = created.state
        logger.debug(
            "group %s: epoch %d by our commit (added %s, removed %s)",
            self.group_id.hex()[:16],
            self.epoch,
            created.outcome.added,
            created.outcome.removed,
        )
        return created

    def add(self, key_packages: Iterable[bytes]) -> tuple[bytes, bytes]:
        """Commit Adds (by value, no path, as the reference does): (commit, Welcome)."""
        proposals: list[Proposal] = [Add(parse_key_package(kp)) for kp in key_packages]
        if not proposals:
            raise ValueError("add() needs at least one key package")
        created = self._commit(proposals)
        assert created.welcome is not None
        return created.commit, created.welcome

    def _leaf_of(self, member: int | bytes) -> int:
        if isinstance(member, int):
            if member < self._state.tree.n_leaves and self._state.tree.leaf(member) is not None:
                return member
            raise ValueError(f"no member at leaf {member}")
        for i, leaf in self._state.tree.leaves():
            if leaf.credential.identity == member:
                return i
        raise ValueError("no member with that identity")

    def remove(self, members: Iterable[int | bytes]) -> bytes:
        """Commit Removes (with an UpdatePath) of members given by leaf index or identity."""
        proposals: list[Proposal] = [Remove(self._leaf_of(m)) for m in members]
        if not proposals:
            raise ValueError("remove() needs at least one member")
        return self._commit(proposals).commit

    def rejoin(self, member: int | bytes, key_package: bytes) -> tuple[bytes, bytes]:
        """Remove ``member`` and add it back from a fresh key package, in one commit."""
        created = self._commit([Remove(self._leaf_of(member)), Add(parse_key_package(key_package))])
        assert created.welcome is not None
        return created.commit, created.welcome

    def self_update(self) -> bytes:
        """Refresh our leaf and path keys: a commit with an UpdatePath (it also commits every
        pending proposal)."""
        return self._commit([], force_path=True).commit

    def commit_pending(self) -> tuple[bytes, bytes | None]:
        """Commit the proposals received this epoch: (commit, Welcome if any were Adds). A
        ReInit proposal is committed only when nothing else is pending, and then alone: the
        commit suspends the group (:attr:`pending_reinit`)."""
        created = self._commit([], force_path=True, with_reinit=True)
        return created.commit, created.welcome

    def _reinit_proposal(
        self,
        group_id: bytes | None,
        version: int,
        cipher_suite: int | None,
        extensions: Iterable[Extension],
    ) -> ReInit:
        suite = self._state.suite.id if cipher_suite is None else cipher_suite
        cipher_suite_of(suite)  # UnsupportedCipherSuite for one we could not create
        return ReInit(
            os.urandom(32) if group_id is None else bytes(group_id),
            version,
            suite,
            tuple(Extension(e.extension_type, e.extension_data) for e in extensions),
        )

    def propose_reinit(
        self,
        group_id: bytes | None = None,
        version: int = ProtocolVersion.MLS10,
        cipher_suite: int | None = None,
        extensions: Iterable[Extension] = (),
    ) -> bytes:
        """A ReInit proposal (RFC 9420 §12.1.5) for a new group with these parameters (a
        random group id and this group's suite by default); a commit that covers it, alone,
        suspends the group."""
        return self._propose(self._reinit_proposal(group_id, version, cipher_suite, extensions))

    def commit_reinit(
        self,
        group_id: bytes | None = None,
        version: int = ProtocolVersion.MLS10,
        cipher_suite: int | None = None,
        extensions: Iterable[Extension] = (),
    ) -> bytes:
        """Propose and commit a ReInit in one message. It is the commit's only proposal, so
        proposals pending in this epoch lapse (commit them first to keep them). Every member,
        and we at once, end up suspended in the next epoch with :attr:`pending_reinit` set;
        one of them then calls :meth:`MlsClient.reinit`."""
        proposal = self._reinit_proposal(group_id, version, cipher_suite, extensions)
        self._require_active()
        created = create_commit(
            self._state,
            [proposal],
            validate=self._validate,
            include_pending=False,
            external_psks=self._external_psks,
        )
        self._state = created.state
        return created.commit

    def _psk_id(self, epoch: int | None, external_id: bytes | None) -> PreSharedKeyID:
        state = self._state
        nonce = os.urandom(state.suite.hash_len)
        if external_id is not None:
            if epoch is not None:
                raise ValueError("a PSK is external or a resumption one, not both")
            return PreSharedKeyID(PSKType.EXTERNAL, nonce, psk_id=bytes(external_id))
        epoch = state.epoch if epoch is None else epoch
        if epoch != state.epoch and state.resumption_psk(epoch) is None:
            raise MlsError(f"no resumption PSK of epoch {epoch} is kept")
        return PreSharedKeyID(
            PSKType.RESUMPTION,
            nonce,
            usage=ResumptionPSKUsage.APPLICATION,
            psk_group_id=state.context.group_id,
            psk_epoch=epoch,
        )

    def propose_psk(self, *, epoch: int | None = None, external_id: bytes | None = None) -> bytes:
        """A PreSharedKey proposal: an external PSK by id, or (default) the resumption PSK of
        this group's ``epoch`` (usage application; the current epoch by default, earlier ones
        while they are kept)."""
        self._require_active()
        return self._propose(PreSharedKey(self._psk_id(epoch, external_id)))

    def commit_psk(self, *, epoch: int | None = None, external_id: bytes | None = None) -> bytes:
        """Commit a PreSharedKey (as :meth:`propose_psk`) by value, with the pending proposals:
        every member mixes the PSK into the next epoch, and one that lacks it cannot follow."""
        self._require_active()
        return self._commit([PreSharedKey(self._psk_id(epoch, external_id))]).commit

    def propose_update(self) -> bytes:
        """An Update proposal with a fresh leaf key (the reference's key rotation); another
        member's commit applies it."""
        self._require_active()
        state = self._state
        suite = state.suite
        priv, pub = suite.generate_kem_key_pair()
        old = state.own_leaf
        leaf = sign_leaf_node(
            suite,
            state.signature_private_key,
            LeafNode(
                pub,
                old.signature_key,
                old.credential,
                old.capabilities,
                LeafNodeSource.UPDATE,
                None,
                b"",
                old.extensions,
            ),
            state.context.group_id,
            state.leaf_index,
        )
        data = self._propose(Update(leaf))
        updates = dict(self._state.pending_updates)
        updates[pub] = priv
        self._state = dataclasses.replace(self._state, pending_updates=updates)
        return data

    def _propose(self, proposal: Proposal) -> bytes:
        """Send ``proposal`` as a PublicMessage and keep it, as every receiver does, for a
        commit to name by reference."""
        self._require_active()
        state = self._state
        suite = state.suite
        framed = FramedContent(
            state.context.group_id, state.epoch, Sender.member(state.leaf_index), b"", proposal
        )
        message = protect_public(
            suite,
            framed,
            state.context,
            signature_private_key=state.signature_private_key,
            membership_key=state.secrets.membership_key,
        )
        content = AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, message.content, message.auth)
        self._state, _ = receive_proposal(state, content, self._validate)
        return MLSMessage(message).to_bytes()

    # -- receiving --------------------------------------------------------------------------

    def _verified(self, message: MLSMessage) -> tuple[AuthenticatedContent, PendingKey | None]:
        """Check framing; for a PrivateMessage also return the key it was opened with, still
        to be consumed from the secret tree once the caller has accepted the message."""
        body = message.body
        if isinstance(body, PublicMessage):
            return self._verified_public(body), None
        if isinstance(body, PrivateMessage):
            return self._verified_private(body)
        raise MlsError(f"a {message.wire_format.name} is not a group message")

    def _verified_public(self, body: PublicMessage) -> AuthenticatedContent:
        state = self._state
        content = body.content
        if content.group_id != state.context.group_id or content.epoch != state.epoch:
            raise FramingError(f"message for another group or epoch ({content.epoch})")
        sender = content.sender
        if sender.sender_type == SenderType.MEMBER:
            key = self._member_key(sender.index)
        elif sender.sender_type == SenderType.NEW_MEMBER_COMMIT:
            commit = content.content
            if not isinstance(commit, Commit) or commit.path is None:
                raise FramingError("an external commit needs an UpdatePath")
            key = commit.path.leaf_node.signature_key
        else:
            raise FramingError(f"{sender.sender_type.name} senders are not accepted")
        return unprotect_public(
            state.suite,
            body,
            state.context,
            membership_key=state.secrets.membership_key,
            signature_public_key=key,
        )

    def _member_key(self, index: int) -> bytes:
        tree = self._state.tree
        leaf = tree.leaf(index) if index < tree.n_leaves else None
        if leaf is None:
            raise FramingError(f"sender leaf {index} is not a member")
        return leaf.signature_key

    def _verified_private(self, body: PrivateMessage) -> tuple[AuthenticatedContent, PendingKey]:
        state = self._state
        suite = state.suite
        if body.group_id != state.context.group_id or body.epoch != state.epoch:
            raise FramingError(f"message for another group or epoch ({body.epoch})")
        sender_data = open_sender_data(suite, state.secrets.sender_data_secret, body)
        signature_key = self._member_key(sender_data.leaf_index)
        kind = (
            RatchetType.APPLICATION
            if body.content_type == ContentType.APPLICATION
            else RatchetType.HANDSHAKE
        )
        pending = state.secret_tree.prepare(sender_data.leaf_index, kind, sender_data.generation)
        content = open_private_content(suite, body, sender_data, pending.key.key, pending.key.nonce)
        verify_content_signature(suite, signature_key, content, state.context)
        return content, pending

    def process(self, data: bytes) -> GroupEvent:
        """Handle one MLS message from the group: a commit (the next epoch), a proposal (kept
        for a commit), or application data. Raises :class:`MlsError`, state unchanged."""
        self._require_active()
        message = mls_message_from_bytes(data)
        tree = self._state.secret_tree
        content, pending = self._verified(message)
        event = self._dispatch(content)
        if pending is not None:
            tree.consume(pending)
        return event

    def _dispatch(self, content: AuthenticatedContent) -> GroupEvent:
        body = content.content.content
        sender = content.content.sender
        if isinstance(body, bytes):
            return ApplicationMessage(body, content.content.authenticated_data, sender.index)
        if isinstance(body, Commit):
            new, outcome = process_commit(
                self._state, content, validate=self._validate, external_psks=self._external_psks
            )
            self._state = new
            logger.debug(
                "group %s: epoch %d by leaf %s (added %s, removed %s, updated %s)%s",
                self.group_id.hex()[:16],
                new.epoch,
                outcome.committer,
                outcome.added,
                outcome.removed,
                outcome.updated,
                "" if new.active else "; we were removed",
            )
            return CommitProcessed(
                new.epoch,
                outcome.committer,
                outcome.added,
                outcome.removed,
                outcome.updated,
                new.active,
                outcome.joined,
                new.pending_reinit,
            )
        new, ref = receive_proposal(self._state, content, self._validate)
        self._state = new
        return ProposalReceived(sender.index, body.proposal_type, ref.value)

    # -- application data -------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """A PrivateMessage carrying ``plaintext``, with ``aad`` as its authenticated_data."""
        fast = self._fast
        if fast is None or fast.state is not self._state:
            fast = self._fast_path()
        return fast.encrypt(bytes(plaintext), bytes(aad))

    def _fast_path(self) -> FastPath:
        """The hot path's constants for the current state (they are per epoch, but a state
        value is the cheapest thing to compare). Made only for a state we may send and
        receive in: a state value never changes, so a hot path that exists and is for the
        current state means :meth:`_require_active` passed, and is not asked again."""
        self._require_active()
        fast = self._fast = FastPath(self._state)
        return fast

    def decrypt(
        self, ciphertext: bytes, *, expected_aad: bytes | None = None
    ) -> tuple[bytes, bytes, int]:
        """Open an application message: (plaintext, authenticated_data, sender leaf). With
        ``expected_aad``, a message whose authenticated data differs is refused like a forged
        one (its key is not consumed)."""
        fast = self._fast
        if fast is None or fast.state is not self._state:
            fast = self._fast_path()
        opened = fast.decrypt(ciphertext, expected_aad)
        if opened is not None:
            return opened
        message = mls_message_from_bytes(ciphertext)
        if not isinstance(message.body, PrivateMessage):
            raise FramingError("application data comes as a PrivateMessage")
        if message.body.content_type != ContentType.APPLICATION:
            raise FramingError("not an application message")
        tree = self._state.secret_tree
        content, pending = self._verified_private(message.body)
        framed = content.content
        check_aad(framed.authenticated_data, expected_aad)
        tree.consume(pending)
        assert isinstance(framed.content, bytes)
        return framed.content, framed.authenticated_data, framed.sender.index


def parse_key_package(data: bytes) -> KeyPackage:
    message = mls_message_from_bytes(data)
    if not isinstance(message.body, KeyPackage):
        raise DecodeError("not a KeyPackage message")
    return message.body
