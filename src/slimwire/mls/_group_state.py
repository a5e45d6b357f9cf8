"""One member's view of one epoch of a group, as a value, and its persistent encoding.

:class:`GroupState` bundles everything RFC 9420 §8-§12 say a member keeps between messages:
the GroupContext, the public ratchet tree, the member's HPKE private keys in that tree, the
epoch's key schedule, the transcript hashes, the proposals received this epoch, and recent
resumption PSKs. Commit processing builds a new value and the caller swaps it in only when the
whole commit verified, so a bad commit leaves no trace.

The one part that is not a value is the epoch's :class:`SecretTree`: message keys are consumed
as they are used (forward secrecy inside an epoch), so it mutates as application messages are
sent and received. A commit starts a fresh one. :func:`state_to_bytes` stores it as well, so a
restored group neither re-uses a sending generation (which would re-use an AEAD nonce) nor
forgets the keys it still owes to late messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slimwire.mls._codec import DecodeError, Reader, Writer, decode_all
from slimwire.mls._key_schedule import EpochSecrets
from slimwire.mls._ratchet_tree import RatchetTree
from slimwire.mls._secret_tree import SecretTree
from slimwire.mls._struct_content import ProposalRef, ReInit
from slimwire.mls._struct_framing import AuthenticatedContent
from slimwire.mls._structs import GroupContext, LeafNode
from slimwire.mls._suites import CipherSuite, cipher_suite
from slimwire.mls._transcript import TranscriptHashes, interim_transcript_hash
from slimwire.mls._treekem import TreePrivateKeys

__all__ = ["GroupState", "PendingProposal", "state_from_bytes", "state_to_bytes"]

_FORMAT = 2  # 2 added the pending ReInit; format 1 (without it) is still read
_MAX_RESUMPTION_PSKS = 32
_SECRET_FIELDS = (
    "joiner_secret",
    "welcome_secret",
    "epoch_secret",
    "sender_data_secret",
    "encryption_secret",
    "exporter_secret",
    "external_secret",
    "confirmation_key",
    "membership_key",
    "resumption_psk",
    "epoch_authenticator",
    "init_secret",
)


@dataclass(frozen=True, slots=True)
class PendingProposal:
    """A proposal received (or sent) in this epoch, kept for a commit to name by reference."""

    ref: ProposalRef
    content: AuthenticatedContent


@dataclass(frozen=True, slots=True)
class GroupState:
    """One epoch of one group, from one member's point of view."""

    suite: CipherSuite
    context: GroupContext
    tree: RatchetTree
    private_keys: TreePrivateKeys = field(repr=False)
    secrets: EpochSecrets = field(repr=False)
    transcript: TranscriptHashes = field(repr=False)
    signature_private_key: bytes = field(repr=False)
    secret_tree: SecretTree = field(repr=False)
    pending: tuple[PendingProposal, ...] = ()
    # our own Update proposals this epoch: new leaf encryption key -> its private key
    pending_updates: Mapping[bytes, bytes] = field(default_factory=dict, repr=False)
    # (epoch, resumption_psk) of recent epochs, newest last
    resumption_psks: tuple[tuple[int, bytes], ...] = field(default=(), repr=False)
    # the tag of the commit (or GroupInfo) that created this epoch: a GroupInfo we publish
    # for external joiners carries it
    confirmation_tag: bytes = field(default=b"", repr=False)
    active: bool = True
    # set when the commit that created this epoch carried a ReInit (§11.2): the group is
    # suspended, kept only as the source of the reinit PSK and of the new group's parameters
    pending_reinit: ReInit | None = None

    @property
    def leaf_index(self) -> int:
        return self.private_keys.leaf_index

    @property
    def epoch(self) -> int:
        return self.context.epoch

    @property
    def own_leaf(self) -> LeafNode:
        leaf = self.tree.leaf(self.leaf_index)
        if leaf is None:
            raise ValueError("our leaf is blank (removed from the group)")
        return leaf

    @classmethod
    def new_epoch(
        cls,
        suite: CipherSuite,
        *,
        context: GroupContext,
        tree: RatchetTree,
        private_keys: TreePrivateKeys,
        secrets: EpochSecrets,
        signature_private_key: bytes,
        confirmation_tag: bytes,
        resumption_psks: tuple[tuple[int, bytes], ...] = (),
    ) -> GroupState:
        """The state at the start of an epoch, however we got there (creating the group,
        joining, a commit, an external join): no proposals yet, the interim transcript hash
        from the context's confirmed one and the epoch's confirmation tag, and a fresh secret
        tree from the epoch's encryption secret."""
        confirmed = context.confirmed_transcript_hash
        return cls(
            suite=suite,
            context=context,
            tree=tree,
            private_keys=private_keys,
            secrets=secrets,
            transcript=TranscriptHashes(
                confirmed, interim_transcript_hash(suite, confirmed, confirmation_tag)
            ),
            signature_private_key=signature_private_key,
            secret_tree=SecretTree(suite, secrets.encryption_secret, tree.n_leaves),
            resumption_psks=resumption_psks,
            confirmation_tag=confirmation_tag,
        )

    def resumption_psk(self, epoch: int) -> bytes | None:
        for e, psk in self.resumption_psks:
            if e == epoch:
                return psk
        return None

    @staticmethod
    def remember_psk(
        history: tuple[tuple[int, bytes], ...], epoch: int, psk: bytes
    ) -> tuple[tuple[int, bytes], ...]:
        return (*history, (epoch, psk))[-_MAX_RESUMPTION_PSKS:]


# -- persistence ------------------------------------------------------------------------------


def state_to_bytes(state: GroupState) -> bytes:
    """Everything needed to carry on after a restart. It holds private keys and epoch
    secrets: store it as you would store a private key."""
    w = Writer().u8(_FORMAT).u16(state.suite.id).u8(1 if state.active else 0)
    state.context.encode(w)
    w.opaque(state.tree.to_bytes())
    w.u32(state.private_keys.leaf_index)
    w.vector(
        sorted(state.private_keys.keys.items()),
        lambda ww, kv: ww.u32(kv[0]).opaque(kv[1]),
    )
    for name in _SECRET_FIELDS:
        w.opaque(getattr(state.secrets, name))
    w.opaque(state.transcript.confirmed).opaque(state.transcript.interim)
    w.opaque(state.confirmation_tag)
    w.opaque(state.signature_private_key)
    state.secret_tree.encode(w)
    w.vector(state.pending, lambda ww, p: ww.opaque(p.ref.value).opaque(p.content.to_bytes()))
    w.vector(sorted(state.pending_updates.items()), lambda ww, kv: ww.opaque(kv[0]).opaque(kv[1]))
    w.vector(state.resumption_psks, lambda ww, kv: ww.u64(kv[0]).opaque(kv[1]))
    w.optional(state.pending_reinit, lambda ww, reinit: reinit.encode(ww))
    return bytes(w)


def _read_state(r: Reader) -> GroupState:
    version = r.u8()
    if version not in (1, _FORMAT):
        raise DecodeError("unknown group state format")
    suite = cipher_suite(r.u16())
    active = r.boolean()
    context = GroupContext.decode(r)
    tree = RatchetTree.from_bytes(suite, r.opaque())
    leaf_index = r.u32()
    keys = dict(r.vector(lambda rr: (rr.u32(), rr.opaque())))
    values = {name: r.opaque() for name in _SECRET_FIELDS}
    secrets = EpochSecrets(suite=suite, **values)
    transcript = TranscriptHashes(r.opaque(), r.opaque())
    tag = r.opaque()
    signature_private_key = r.opaque()
    secret_tree = SecretTree.decode(r, suite)
    pending = tuple(
        r.vector(
            lambda rr: PendingProposal(
                ProposalRef(rr.opaque()), AuthenticatedContent.from_bytes(rr.opaque())
            )
        )
    )
    pending_updates = dict(r.vector(lambda rr: (rr.opaque(), rr.opaque())))
    psks = tuple(r.vector(lambda rr: (rr.u64(), rr.opaque())))
    reinit = r.optional(ReInit.decode) if version >= 2 else None
    return GroupState(
        suite=suite,
        context=context,
        tree=tree,
        private_keys=TreePrivateKeys(leaf_index, keys),
        secrets=secrets,
        transcript=transcript,
        signature_private_key=signature_private_key,
        secret_tree=secret_tree,
        pending=pending,
        pending_updates=pending_updates,
        resumption_psks=psks,
        confirmation_tag=tag,
        active=active,
        pending_reinit=reinit,
    )


def state_from_bytes(data: bytes) -> GroupState:
    """Inverse of :func:`state_to_bytes` (raises :class:`DecodeError` on malformed input)."""
    try:
        return decode_all(data, _read_state)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"malformed group state: {exc}") from None
