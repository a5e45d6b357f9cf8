"""Welcome processing (RFC 9420 §12.4.3): key package references and signatures, sealing and
opening GroupSecrets, encrypting and decrypting the GroupInfo, and its signature.

The joiner's path: find its entry by KeyPackageRef, HPKE-open the GroupSecrets with its init
key, run the key schedule from the joiner secret (plus any PSKs the secrets name), decrypt the
GroupInfo with the welcome secret, then check the GroupInfo's confirmation tag (it proves the
sender knew the epoch's secrets) and, once the caller has the ratchet tree, the signer's
signature. :func:`open_welcome` does all but the last step, which needs the tree:
:func:`verify_group_info`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from slimwire.errors import MlsError
from slimwire.mls._key_schedule import (
    EpochSecrets,
    epoch_from_joiner_secret,
    welcome_key_nonce,
    welcome_secret,
)
from slimwire.mls._psk import psk_secret, resolve_psks
from slimwire.mls._struct_content import PreSharedKeyID
from slimwire.mls._struct_welcome import EncryptedGroupSecrets, GroupInfo, GroupSecrets, Welcome
from slimwire.mls._structs import HPKECiphertext, KeyPackage, LeafNode
from slimwire.mls._transcript import verify_confirmation_tag

if TYPE_CHECKING:
    from slimwire.mls._suites import CipherSuite

_KEY_PACKAGE_REF_LABEL = b"MLS 1.0 KeyPackage Reference"
_WELCOME_LABEL = b"Welcome"


class WelcomeError(MlsError):
    """A Welcome (or a key package or GroupInfo in it) is not for us or does not verify."""


# -- key packages ------------------------------------------------------------------------------


def key_package_ref(suite: CipherSuite, key_package: KeyPackage) -> bytes:
    """``RefHash("MLS 1.0 KeyPackage Reference", KeyPackage)``: the id a Welcome addresses."""
    return suite.ref_hash(_KEY_PACKAGE_REF_LABEL, key_package.to_bytes())


def sign_key_package(
    suite: CipherSuite, signature_private_key: bytes, key_package: KeyPackage
) -> KeyPackage:
    """The key package with its signature over ``KeyPackageTBS`` filled in (its leaf node must
    already be signed)."""
    signature = suite.sign_with_label(signature_private_key, b"KeyPackageTBS", key_package.tbs())
    return dataclasses.replace(key_package, signature=signature)


def sign_leaf_node(
    suite: CipherSuite,
    signature_private_key: bytes,
    leaf: LeafNode,
    group_id: bytes = b"",
    leaf_index: int = 0,
) -> LeafNode:
    """``leaf`` with a fresh signature over its LeafNodeTBS. A commit or update leaf must be
    re-signed whenever any field changes (a stale signature is the classic interop bug)."""
    signature = suite.sign_with_label(
        signature_private_key, b"LeafNodeTBS", leaf.tbs(group_id, leaf_index)
    )
    return dataclasses.replace(leaf, signature=signature)


def verify_leaf_node_signature(
    suite: CipherSuite, leaf: LeafNode, group_id: bytes = b"", leaf_index: int = 0
) -> bool:
    """``VerifyWithLabel(leaf.signature_key, "LeafNodeTBS", LeafNodeTBS)``; ``group_id`` and
    ``leaf_index`` matter for update and commit leaves only."""
    try:
        return suite.verify_with_label(
            leaf.signature_key, b"LeafNodeTBS", leaf.tbs(group_id, leaf_index), leaf.signature
        )
    except MlsError:  # malformed key
        return False


def verify_key_package(suite: CipherSuite, key_package: KeyPackage) -> None:
    """Check the suite, the key package's signature and its leaf node's signature (both by
    the leaf's signature key). Credential and lifetime policy is the caller's."""
    if key_package.cipher_suite != suite.id:
        raise WelcomeError("key package is for another cipher suite")
    leaf = key_package.leaf_node
    if not verify_leaf_node_signature(suite, leaf):
        raise WelcomeError("key package leaf node signature does not verify")
    try:
        ok = suite.verify_with_label(
            leaf.signature_key, b"KeyPackageTBS", key_package.tbs(), key_package.signature
        )
    except MlsError:
        ok = False
    if not ok:
        raise WelcomeError("key package signature does not verify")
    if key_package.init_key == leaf.encryption_key:
        raise WelcomeError("key package reuses its leaf encryption key as init key")


# -- group info --------------------------------------------------------------------------------


def sign_group_info(
    suite: CipherSuite, signature_private_key: bytes, group_info: GroupInfo
) -> GroupInfo:
    signature = suite.sign_with_label(signature_private_key, b"GroupInfoTBS", group_info.tbs())
    return dataclasses.replace(group_info, signature=signature)


def verify_group_info(suite: CipherSuite, group_info: GroupInfo, signer_public_key: bytes) -> None:
    """Check the GroupInfo signature with the key of leaf ``group_info.signer``."""
    try:
        ok = suite.verify_with_label(
            signer_public_key, b"GroupInfoTBS", group_info.tbs(), group_info.signature
        )
    except MlsError:
        ok = False
    if not ok:
        raise WelcomeError("GroupInfo signature does not verify")


def encrypt_group_info(suite: CipherSuite, secret: bytes, group_info: GroupInfo) -> bytes:
    """The GroupInfo of a Welcome, encrypted under the epoch's welcome ``secret``."""
    key, nonce = welcome_key_nonce(suite, secret)
    return suite.seal(key, nonce, b"", group_info.to_bytes())


def decrypt_group_info(suite: CipherSuite, secret: bytes, encrypted: bytes) -> GroupInfo:
    key, nonce = welcome_key_nonce(suite, secret)
    try:
        plain = suite.open(key, nonce, b"", encrypted)
    except MlsError:
        raise WelcomeError("GroupInfo does not decrypt") from None
    return GroupInfo.from_bytes(plain)


# -- group secrets -----------------------------------------------------------------------------


def seal_group_secrets(
    suite: CipherSuite,
    key_package: KeyPackage,
    encrypted_group_info: bytes,
    secrets: GroupSecrets,
) -> EncryptedGroupSecrets:
    """``EncryptWithLabel(init_key, "Welcome", encrypted_group_info, GroupSecrets)``, addressed
    by the key package's reference."""
    kem_output, ciphertext = suite.encrypt_with_label(
        key_package.init_key, _WELCOME_LABEL, encrypted_group_info, secrets.to_bytes()
    )
    return EncryptedGroupSecrets(
        key_package_ref(suite, key_package), HPKECiphertext(kem_output, ciphertext)
    )


def open_group_secrets(
    suite: CipherSuite,
    init_private_key: bytes,
    entry: EncryptedGroupSecrets,
    encrypted_group_info: bytes,
) -> GroupSecrets:
    ct = entry.encrypted_group_secrets
    try:
        plain = suite.decrypt_with_label(
            init_private_key, _WELCOME_LABEL, encrypted_group_info, ct.kem_output, ct.ciphertext
        )
    except MlsError:
        raise WelcomeError("GroupSecrets do not decrypt with our init key") from None
    return GroupSecrets.from_bytes(plain)


def find_our_secrets(welcome: Welcome, ref: bytes) -> EncryptedGroupSecrets:
    for entry in welcome.secrets:
        if entry.new_member == ref:
            return entry
    raise WelcomeError("the Welcome has no entry for our key package")


# -- the whole join ----------------------------------------------------------------------------


class OpenedWelcome(NamedTuple):
    """What a joiner learns from a Welcome. ``group_info``'s signature is still unchecked."""

    group_secrets: GroupSecrets
    group_info: GroupInfo
    epoch: EpochSecrets


PskLookup = Callable[[PreSharedKeyID], bytes | None]


def _no_psks(_: PreSharedKeyID) -> bytes | None:
    return None


def open_welcome(
    suite: CipherSuite,
    welcome: Welcome,
    key_package: KeyPackage,
    init_private_key: bytes,
    psk_lookup: PskLookup = _no_psks,
) -> OpenedWelcome:
    """Open a Welcome addressed to ``key_package``: GroupSecrets, the epoch's key schedule,
    the GroupInfo, and its confirmation tag. A named PSK that ``psk_lookup`` cannot supply
    is a :class:`~slimwire.mls._psk.MissingPskError`."""
    if welcome.cipher_suite != suite.id or key_package.cipher_suite != suite.id:
        raise WelcomeError("Welcome is for another cipher suite")
    entry = find_our_secrets(welcome, key_package_ref(suite, key_package))
    secrets = open_group_secrets(suite, init_private_key, entry, welcome.encrypted_group_info)
    psk = _psk_secret(suite, secrets.psks, psk_lookup)

    # The GroupInfo is encrypted under the welcome secret, which needs only the joiner secret
    # and the PSKs; the epoch secret then needs the GroupContext found inside it.
    group_info = decrypt_group_info(
        suite, welcome_secret(suite, secrets.joiner_secret, psk), welcome.encrypted_group_info
    )
    context = group_info.group_context
    if context.cipher_suite != suite.id:
        raise WelcomeError("GroupInfo is for another cipher suite")

    epoch = epoch_from_joiner_secret(suite, secrets.joiner_secret, psk, context.to_bytes())
    try:
        verify_confirmation_tag(
            suite,
            epoch.confirmation_key,
            context.confirmed_transcript_hash,
            group_info.confirmation_tag,
        )
    except MlsError:
        raise WelcomeError("GroupInfo confirmation tag does not verify") from None
    return OpenedWelcome(secrets, group_info, epoch)


def _psk_secret(
    suite: CipherSuite, ids: Sequence[PreSharedKeyID], lookup: PskLookup
) -> bytes | None:
    if not ids:
        return None
    return psk_secret(suite, resolve_psks(ids, lookup))
