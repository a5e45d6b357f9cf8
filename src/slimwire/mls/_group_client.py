"""An MLS identity: :class:`MlsClient` holds one signature key and credential (for SLIM, the
identity token whose ``pubkey`` claim is that key), hands out key packages, and creates, joins
and restores :class:`~slimwire.mls._group.Group` handles. The private keys of each key package
stay here until a Welcome (or nothing) uses them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from slimwire.errors import MlsError
from slimwire.mls._codec import DecodeError
from slimwire.mls._commit import ExternalPskLookup, create_commit, join_from_welcome
from slimwire.mls._group import Group, parse_key_package
from slimwire.mls._group_external import external_commit
from slimwire.mls._group_resume import (
    IdentityMatch,
    check_membership,
    link_psk,
    linked_psk_lookup,
    same_identity,
    verify_link,
)
from slimwire.mls._group_state import GroupState
from slimwire.mls._key_schedule import epoch_from_init_secret
from slimwire.mls._proposals import CredentialValidator, accept_any_credential
from slimwire.mls._ratchet_tree import RatchetTree
from slimwire.mls._struct_content import Add, PreSharedKey, Proposal, ResumptionPSKUsage
from slimwire.mls._struct_framing import MLSMessage, mls_message_from_bytes
from slimwire.mls._struct_welcome import GroupInfo, Welcome
from slimwire.mls._structs import (
    Capabilities,
    Credential,
    CredentialType,
    Extension,
    GroupContext,
    KeyPackage,
    LeafNode,
    LeafNodeSource,
    Lifetime,
    ProtocolVersion,
)
from slimwire.mls._suites import CipherSuite, cipher_suite
from slimwire.mls._transcript import confirmation_tag
from slimwire.mls._treekem import TreePrivateKeys
from slimwire.mls._welcome import key_package_ref, sign_key_package, sign_leaf_node

__all__ = ["DEFAULT_SUITE", "MlsClient"]

DEFAULT_SUITE = 0x0002
"""MLS_128_DHKEMP256_AES128GCM_SHA256_P256, what the reference configures."""

_KEY_PACKAGE_LIFETIME = 365 * 24 * 3600  # mls-rs's default
_CLOCK_SKEW = 3600


def _psk_lookup(
    psks: Mapping[bytes, bytes] | Callable[[bytes], bytes | None] | None,
) -> ExternalPskLookup:
    if psks is None:
        return lambda _: None
    if callable(psks):
        return psks
    table = dict(psks)
    return table.get


class _OwnKeyPackage(NamedTuple):
    key_package: KeyPackage
    init_private_key: bytes
    leaf_private_key: bytes


class MlsClient:
    """One identity: a signature key pair and a credential (the SLIM identity token)."""

    __slots__ = (
        "_external_psks",
        "_key_packages",
        "_same_identity",
        "_signature_private_key",
        "_signature_public_key",
        "_validate",
        "credential",
        "suite",
    )

    def __init__(
        self,
        credential: bytes,
        signature_private_key: bytes | None = None,
        *,
        suite_id: int = DEFAULT_SUITE,
        validate_credential: CredentialValidator = accept_any_credential,
        external_psks: Mapping[bytes, bytes] | Callable[[bytes], bytes | None] | None = None,
        same_identity: IdentityMatch = same_identity,
    ) -> None:
        self.suite: CipherSuite = cipher_suite(suite_id)
        if signature_private_key is None:
            signature_private_key, public = self.suite.generate_signature_key_pair()
        else:
            public = self.suite.signature_public_key(signature_private_key)
        self._signature_private_key = bytes(signature_private_key)
        self._signature_public_key = public
        self.credential = bytes(credential)
        self._validate = validate_credential
        self._external_psks = _psk_lookup(external_psks)
        self._same_identity = same_identity
        self._key_packages: dict[bytes, _OwnKeyPackage] = {}

    def __repr__(self) -> str:
        return f"MlsClient(suite=0x{self.suite.id:04x}, key_packages={len(self._key_packages)})"

    @property
    def signature_public_key(self) -> bytes:
        return self._signature_public_key

    def _capabilities(self) -> Capabilities:
        return Capabilities(
            versions=(ProtocolVersion.MLS10,),
            cipher_suites=(self.suite.id,),
            credentials=(CredentialType.BASIC,),
        )

    def _new_leaf(self) -> tuple[bytes, LeafNode]:
        """A signed key-package leaf with a fresh HPKE key: (its private key, the leaf). A
        new group's first leaf is one too (RFC 9420 §11)."""
        leaf_priv, leaf_pub = self.suite.generate_kem_key_pair()
        now = int(time.time())
        leaf = sign_leaf_node(
            self.suite,
            self._signature_private_key,
            LeafNode(
                leaf_pub,
                self._signature_public_key,
                Credential.basic(self.credential),
                self._capabilities(),
                LeafNodeSource.KEY_PACKAGE,
                Lifetime(now - _CLOCK_SKEW, now + _KEY_PACKAGE_LIFETIME),
            ),
        )
        return leaf_priv, leaf

    def key_package(self) -> bytes:
        """A fresh KeyPackage MLSMessage; its private keys stay here until a Welcome uses it."""
        suite = self.suite
        leaf_priv, leaf = self._new_leaf()
        init_priv, init_pub = suite.generate_kem_key_pair()
        kp = sign_key_package(
            suite,
            self._signature_private_key,
            KeyPackage(ProtocolVersion.MLS10, suite.id, init_pub, leaf),
        )
        self._key_packages[key_package_ref(suite, kp)] = _OwnKeyPackage(kp, init_priv, leaf_priv)
        return MLSMessage(kp).to_bytes()

    def import_key_package(
        self, key_package: bytes, init_private_key: bytes, leaf_private_key: bytes
    ) -> None:
        """Make a key package created elsewhere (with our signature key) joinable."""
        kp = parse_key_package(key_package)
        if kp.cipher_suite != self.suite.id:
            raise MlsError("key package for another cipher suite")
        self._key_packages[key_package_ref(self.suite, kp)] = _OwnKeyPackage(
            kp, bytes(init_private_key), bytes(leaf_private_key)
        )

    def _group(self, state: GroupState) -> Group:
        return Group(state, validate_credential=self._validate, external_psks=self._external_psks)

    def create_group(self, group_id: bytes | None = None) -> Group:
        """A one-member group at epoch 0 (RFC 9420 §11), no group-context extensions."""
        return self._group(self._new_state(group_id, ()))

    def _new_state(self, group_id: bytes | None, extensions: tuple[Extension, ...]) -> GroupState:
        suite = self.suite
        leaf_priv, leaf = self._new_leaf()
        tree = RatchetTree.one_member(suite, leaf)
        context = GroupContext(
            ProtocolVersion.MLS10,
            suite.id,
            os.urandom(32) if group_id is None else bytes(group_id),
            0,
            tree.tree_hash(),
            b"",
            extensions,
        )
        secrets = epoch_from_init_secret(
            suite, os.urandom(suite.hash_len), None, None, context.to_bytes()
        )
        tag = confirmation_tag(suite, secrets.confirmation_key, b"")
        return GroupState.new_epoch(
            suite,
            context=context,
            tree=tree,
            private_keys=TreePrivateKeys.for_leaf(0, leaf_priv),
            secrets=secrets,
            signature_private_key=self._signature_private_key,
            confirmation_tag=tag,
        )

    def reinit(self, old_group: Group, key_packages: Iterable[bytes]) -> tuple[Group, bytes]:
        """Carry out a committed ReInit (RFC 9420 §11.2): create the new group with the
        ReInit's parameters (this client's suite must be the ReInit's), add every other member
        of the old group from ``key_packages`` in a first commit that carries the old group's
        reinit PSK, and return (the new group at epoch 1, the Welcome for the others)."""
        reinit = old_group.pending_reinit
        if reinit is None:
            raise MlsError("the group has no committed ReInit")
        if reinit.cipher_suite != self.suite.id:
            raise MlsError(f"the ReInit asks for cipher suite 0x{reinit.cipher_suite:04x}")
        if reinit.version != ProtocolVersion.MLS10:
            raise MlsError(f"unsupported protocol version {reinit.version}")
        return self._linked_group(
            old_group.state,
            ResumptionPSKUsage.REINIT,
            key_packages,
            reinit.group_id,
            reinit.extensions,
        )

    def branch(
        self, group: Group, key_packages: Iterable[bytes], new_group_id: bytes | None = None
    ) -> tuple[Group, bytes]:
        """A subgroup of ``group`` (RFC 9420 §11.3): a new group with the same version, suite
        and extensions, whose first commit adds the given members (old members only) and
        carries the branch PSK of ``group``'s current epoch. Returns (the new group at epoch
        1, the Welcome)."""
        old = group.state
        if group.suspended or not group.active:
            raise MlsError("cannot branch from a group we no longer use")
        if old.suite.id != self.suite.id:
            raise MlsError("a branch keeps the old group's cipher suite")
        group_id = os.urandom(32) if new_group_id is None else bytes(new_group_id)
        if group_id == old.context.group_id:
            raise MlsError("a branch needs a new group id")
        return self._linked_group(
            old, ResumptionPSKUsage.BRANCH, key_packages, group_id, old.context.extensions
        )

    def _linked_group(
        self,
        old: GroupState,
        usage: ResumptionPSKUsage,
        key_packages: Iterable[bytes],
        group_id: bytes,
        extensions: tuple[Extension, ...],
    ) -> tuple[Group, bytes]:
        kps = [parse_key_package(kp) for kp in key_packages]
        check_membership(
            old,
            [self.credential, *(kp.leaf_node.credential.identity for kp in kps)],
            self._same_identity,
            everyone=usage == ResumptionPSKUsage.REINIT,
        )
        if not kps:
            raise MlsError("a new group needs at least one other member")
        link = link_psk(self.suite, usage, old)
        proposals: list[Proposal] = [Add(kp) for kp in kps]
        proposals.append(PreSharedKey(link[0]))
        created = create_commit(
            self._new_state(group_id, extensions),
            proposals,
            validate=self._validate,
            include_pending=False,
            external_psks=self._external_psks,
            link=link,
        )
        assert created.welcome is not None
        return self._group(created.state), created.welcome

    def join(
        self,
        welcome: bytes,
        ratchet_tree: bytes | None = None,
        *,
        old_group: Group | None = None,
    ) -> Group:
        """Enter a group from a Welcome for one of our key packages. The tree comes from the
        Welcome (the reference always sends it) or, failing that, from ``ratchet_tree``.

        With ``old_group``, the Welcome must be for a group reinitialized from it (after its
        ReInit commit) or branched from it: its resumption PSK comes from ``old_group`` and
        the new group is checked against the ReInit's parameters and the old membership
        (RFC 9420 §11.2, §11.3, §12.4.3.1). Without it, a Welcome naming a resumption PSK is
        refused (we hold none)."""
        message = mls_message_from_bytes(welcome)
        body = message.body
        if not isinstance(body, Welcome):
            raise DecodeError("not a Welcome message")
        own = next(
            (
                self._key_packages[e.new_member]
                for e in body.secrets
                if e.new_member in self._key_packages
            ),
            None,
        )
        if own is None:
            raise MlsError("the Welcome is for none of our key packages")
        tree = None if ratchet_tree is None else RatchetTree.from_bytes(self.suite, ratchet_tree)
        old = None if old_group is None else old_group.state
        state, psk_ids = join_from_welcome(
            self.suite,
            body,
            own.key_package,
            init_private_key=own.init_private_key,
            leaf_private_key=own.leaf_private_key,
            signature_private_key=self._signature_private_key,
            ratchet_tree=tree,
            validate=self._validate,
            external_psks=self._external_psks,
            resumption_psks=None if old is None else linked_psk_lookup(old),
        )
        if old is not None:
            verify_link(old, state, psk_ids, self._same_identity)
        del self._key_packages[key_package_ref(self.suite, own.key_package)]
        return self._group(state)

    def join_external(
        self, group_info: bytes, ratchet_tree: bytes | None = None
    ) -> tuple[Group, bytes]:
        """Commit ourselves into a group from its published GroupInfo (RFC 9420 §12.4.3.2):
        (our group, the commit every member must process)."""
        message = mls_message_from_bytes(group_info)
        info = message.body
        if not isinstance(info, GroupInfo):
            raise DecodeError("not a GroupInfo message")
        template = LeafNode(
            b"",
            self._signature_public_key,
            Credential.basic(self.credential),
            self._capabilities(),
            LeafNodeSource.COMMIT,
        )
        tree = None if ratchet_tree is None else RatchetTree.from_bytes(self.suite, ratchet_tree)
        state, commit = external_commit(
            self.suite,
            info,
            leaf_template=template,
            signature_private_key=self._signature_private_key,
            ratchet_tree=tree,
            validate=self._validate,
        )
        return self._group(state), commit

    def restore(self, data: bytes) -> Group:
        """A group saved with :meth:`Group.to_bytes`, with this client's hooks."""
        return Group.from_bytes(
            data, validate_credential=self._validate, external_psks=self._external_psks
        )
