"""welcome.json: KeyPackageRef → HPKE-open GroupSecrets → decrypt GroupInfo → confirmation tag
→ GroupInfo signature (RFC 9420 §12.4.3.1), then a Welcome we build ourselves is opened the same
way."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from slimwire.mls._key_schedule import epoch_from_joiner_secret
from slimwire.mls._struct_framing import MLSMessage
from slimwire.mls._struct_welcome import GroupInfo, GroupSecrets, Welcome
from slimwire.mls._structs import (
    Capabilities,
    Credential,
    GroupContext,
    KeyPackage,
    LeafNode,
    LeafNodeSource,
    Lifetime,
    ratchet_tree_extension,
    ratchet_tree_from_extensions,
)
from slimwire.mls._suites import cipher_suite
from slimwire.mls._welcome import (
    WelcomeError,
    encrypt_group_info,
    find_our_secrets,
    key_package_ref,
    open_group_secrets,
    open_welcome,
    seal_group_secrets,
    sign_group_info,
    sign_key_package,
    sign_leaf_node,
    verify_group_info,
    verify_key_package,
    verify_leaf_node_signature,
)
from tests.mls._vectors import cases, h


def _load(case: dict[str, Any]) -> tuple[KeyPackage, Welcome]:
    kp_msg = MLSMessage.from_bytes(h(case["key_package"]))
    welcome_msg = MLSMessage.from_bytes(h(case["welcome"]))
    assert isinstance(kp_msg.body, KeyPackage)
    assert isinstance(welcome_msg.body, Welcome)
    return kp_msg.body, welcome_msg.body


@pytest.mark.parametrize("case", cases("welcome"))
def test_welcome(case: dict[str, Any]) -> None:
    suite = cipher_suite(case["cipher_suite"])
    key_package, welcome = _load(case)
    verify_key_package(suite, key_package)

    opened = open_welcome(suite, welcome, key_package, h(case["init_priv"]))
    verify_group_info(suite, opened.group_info, h(case["signer_pub"]))
    assert opened.group_info.group_context.cipher_suite == suite.id

    # The steps one by one agree with the composite.
    entry = find_our_secrets(welcome, key_package_ref(suite, key_package))
    secrets = open_group_secrets(suite, h(case["init_priv"]), entry, welcome.encrypted_group_info)
    assert secrets.joiner_secret == opened.group_secrets.joiner_secret

    # A wrong signer, a wrong init key and a Welcome for someone else are all rejected.
    with pytest.raises(WelcomeError):
        verify_group_info(suite, opened.group_info, suite.generate_signature_key_pair()[1])
    with pytest.raises(WelcomeError):
        open_welcome(suite, welcome, key_package, suite.generate_kem_key_pair()[0])
    stranger = Welcome(welcome.cipher_suite, (), welcome.encrypted_group_info)
    with pytest.raises(WelcomeError, match="no entry"):
        open_welcome(suite, stranger, key_package, h(case["init_priv"]))


@pytest.mark.parametrize("case", cases("welcome"))
def test_welcome_we_build_opens(case: dict[str, Any]) -> None:
    """Seal the vector's GroupInfo and secrets again with our own code, for the same key
    package, and open the result: the sealing side matches the opening side."""
    suite = cipher_suite(case["cipher_suite"])
    key_package, welcome = _load(case)
    opened = open_welcome(suite, welcome, key_package, h(case["init_priv"]))
    joiner = opened.group_secrets.joiner_secret
    context = opened.group_info.group_context
    epoch = epoch_from_joiner_secret(suite, joiner, None, context.to_bytes())

    signer_priv, signer_pub = suite.generate_signature_key_pair()
    group_info = sign_group_info(
        suite,
        signer_priv,
        GroupInfo(context, opened.group_info.extensions, opened.group_info.confirmation_tag, 0),
    )
    encrypted = encrypt_group_info(suite, epoch.welcome_secret, group_info)
    entry = seal_group_secrets(suite, key_package, encrypted, GroupSecrets(joiner))
    rebuilt = MLSMessage.from_bytes(MLSMessage(Welcome(suite.id, (entry,), encrypted)).to_bytes())
    assert isinstance(rebuilt.body, Welcome)

    again = open_welcome(suite, rebuilt.body, key_package, h(case["init_priv"]))
    assert again.group_info == group_info
    verify_group_info(suite, again.group_info, signer_pub)
    assert again.epoch.epoch_authenticator == opened.epoch.epoch_authenticator


@pytest.mark.parametrize("suite_id", range(1, 8))
def test_own_key_package_and_welcome(suite_id: int) -> None:
    """Every suite: a key package we create verifies, a Welcome we address to it opens, the
    in-band ratchet tree comes back, and tampering with the leaf breaks its signature."""
    suite = cipher_suite(suite_id)
    sig_priv, sig_pub = suite.generate_signature_key_pair()
    init_priv, init_pub = suite.generate_kem_key_pair()
    leaf = sign_leaf_node(
        suite,
        sig_priv,
        LeafNode(
            suite.generate_kem_key_pair()[1],
            sig_pub,
            Credential.basic(b"org/ns/alice"),
            Capabilities((1,), (suite_id,), (), (), (1,)),
            LeafNodeSource.KEY_PACKAGE,
            Lifetime(0, 2**64 - 1),
        ),
    )
    assert verify_leaf_node_signature(suite, leaf)
    assert not verify_leaf_node_signature(
        suite, dataclasses.replace(leaf, credential=Credential.basic(b"org/ns/mallory"))
    )
    key_package = sign_key_package(suite, sig_priv, KeyPackage(1, suite_id, init_pub, leaf))
    verify_key_package(suite, key_package)
    with pytest.raises(WelcomeError, match="signature"):
        verify_key_package(suite, dataclasses.replace(key_package, init_key=init_pub[::-1]))

    joiner = bytes(range(suite.hash_len))
    tree = (leaf,)
    confirmed = b"\x07" * suite.hash_len
    context = GroupContext(1, suite_id, b"group", 3, b"\x01" * suite.hash_len, confirmed)
    epoch = epoch_from_joiner_secret(suite, joiner, None, context.to_bytes())
    group_info = sign_group_info(
        suite,
        sig_priv,
        GroupInfo(
            context,
            (ratchet_tree_extension(tree),),
            suite.mac(epoch.confirmation_key, confirmed),
            0,
        ),
    )
    encrypted = encrypt_group_info(suite, epoch.welcome_secret, group_info)
    entry = seal_group_secrets(suite, key_package, encrypted, GroupSecrets(joiner))
    opened = open_welcome(suite, Welcome(suite_id, (entry,), encrypted), key_package, init_priv)
    verify_group_info(suite, opened.group_info, sig_pub)
    assert ratchet_tree_from_extensions(opened.group_info.extensions) == tree
    assert opened.epoch.epoch_authenticator == epoch.epoch_authenticator

    # A GroupInfo whose confirmation tag does not match the joiner secret is refused.
    bad = sign_group_info(suite, sig_priv, dataclasses.replace(group_info, confirmation_tag=joiner))
    encrypted = encrypt_group_info(suite, epoch.welcome_secret, bad)
    entry = seal_group_secrets(suite, key_package, encrypted, GroupSecrets(joiner))
    with pytest.raises(WelcomeError, match="confirmation tag"):
        open_welcome(suite, Welcome(suite_id, (entry,), encrypted), key_package, init_priv)
