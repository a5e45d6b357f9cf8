"""The MLS key schedule (RFC 9420 §8): from one epoch's init secret, the commit secret, the
PSK secret and the new GroupContext to every secret of the next epoch.

Pure functions over bytes returning one frozen :class:`EpochSecrets`; the group state machine
keeps the value and hands its parts to the secret tree, framing and Welcome code. The group
context arrives serialized, so this module depends on no struct layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slimwire.mls._suites import CipherSuite

__all__ = [
    "EpochSecrets",
    "epoch_from_init_secret",
    "epoch_from_joiner_secret",
    "external_init_secret",
    "external_init_secret_from_kem_output",
    "joiner_secret",
    "mls_exporter",
    "welcome_key_nonce",
    "welcome_secret",
]

_EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"


@dataclass(frozen=True, slots=True)
class EpochSecrets:
    """Every secret derived for one epoch. ``repr`` shows no secret."""

    suite: CipherSuite
    joiner_secret: bytes = field(repr=False)
    welcome_secret: bytes = field(repr=False)
    epoch_secret: bytes = field(repr=False)
    sender_data_secret: bytes = field(repr=False)
    encryption_secret: bytes = field(repr=False)
    exporter_secret: bytes = field(repr=False)
    external_secret: bytes = field(repr=False)
    confirmation_key: bytes = field(repr=False)
    membership_key: bytes = field(repr=False)
    resumption_psk: bytes = field(repr=False)
    epoch_authenticator: bytes = field(repr=False)
    init_secret: bytes = field(repr=False)

    def export(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter (§8.5); ``label`` is used as given (no "MLS 1.0 " prefix added)."""
        return mls_exporter(self.suite, self.exporter_secret, label, context, length)

    def external_key_pair(self) -> tuple[bytes, bytes]:
        """(external_priv, external_pub) = DeriveKeyPair(external_secret) (§8.3)."""
        return self.suite.derive_key_pair(self.external_secret)

    @property
    def external_pub(self) -> bytes:
        return self.external_key_pair()[1]


def joiner_secret(
    suite: CipherSuite, init_secret: bytes, commit_secret: bytes, group_context: bytes
) -> bytes:
    """``ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GroupContext, Nh)``."""
    prk = suite.kdf_extract(init_secret, commit_secret)
    return suite.expand_with_label(prk, b"joiner", group_context, suite.hash_len)


def _member_prk(suite: CipherSuite, joiner: bytes, psk_secret: bytes | None) -> bytes:
    return suite.kdf_extract(joiner, psk_secret if psk_secret else bytes(suite.hash_len))


def welcome_secret(suite: CipherSuite, joiner: bytes, psk_secret: bytes | None) -> bytes:
    """``DeriveSecret(Extract(joiner_secret, psk_secret), "welcome")``: a joiner needs it
    before it can read the GroupContext that the rest of the epoch depends on."""
    return suite.derive_secret(_member_prk(suite, joiner, psk_secret), b"welcome")


def epoch_from_joiner_secret(
    suite: CipherSuite, joiner: bytes, psk_secret: bytes | None, group_context: bytes
) -> EpochSecrets:
    """The epoch as a new member derives it from a Welcome's joiner secret. ``psk_secret``
    ``None`` means no PSKs (all zeros)."""
    member = suite.keyed(_member_prk(suite, joiner, psk_secret))
    epoch_secret = member.expand_with_label(b"epoch", group_context, suite.hash_len)
    d = suite.keyed(epoch_secret).derive_secret
    return EpochSecrets(
        suite=suite,
        joiner_secret=joiner,
        welcome_secret=member.derive_secret(b"welcome"),
        epoch_secret=epoch_secret,
        sender_data_secret=d(b"sender data"),
        encryption_secret=d(b"encryption"),
        exporter_secret=d(b"exporter"),
        external_secret=d(b"external"),
        confirmation_key=d(b"confirm"),
        membership_key=d(b"membership"),
        resumption_psk=d(b"resumption"),
        epoch_authenticator=d(b"authentication"),
        init_secret=d(b"init"),
    )


def epoch_from_init_secret(
    suite: CipherSuite,
    init_secret: bytes,
    commit_secret: bytes | None,
    psk_secret: bytes | None,
    group_context: bytes,
) -> EpochSecrets:
    """The next epoch as an existing member derives it. ``commit_secret`` ``None`` (a commit
    without a path) and ``psk_secret`` ``None`` mean all zeros."""
    commit = commit_secret if commit_secret else bytes(suite.hash_len)
    joiner = joiner_secret(suite, init_secret, commit, group_context)
    return epoch_from_joiner_secret(suite, joiner, psk_secret, group_context)


def welcome_key_nonce(suite: CipherSuite, secret: bytes) -> tuple[bytes, bytes]:
    """AEAD key and nonce that encrypt a Welcome's GroupInfo (§12.4.3.1)."""
    keyed = suite.keyed(secret)
    return (
        keyed.expand_with_label(b"key", b"", suite.aead_key_len),
        keyed.expand_with_label(b"nonce", b"", suite.aead_nonce_len),
    )


def mls_exporter(
    suite: CipherSuite, exporter_secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """``ExpandWithLabel(DeriveSecret(exporter_secret, Label), "exported", Hash(Context), L)``:
    the context is hashed (a known pitfall: using it raw gives different keys)."""
    secret = suite.derive_secret(exporter_secret, label)
    return suite.expand_with_label(secret, b"exported", suite.hash(context), length)


def external_init_secret(suite: CipherSuite, external_pub: bytes) -> tuple[bytes, bytes]:
    """For an external joiner (§8.3): ``(kem_output, init_secret)`` from the group's
    external public key."""
    return suite.hpke_export_sender(external_pub, b"", _EXTERNAL_INIT_LABEL, suite.hash_len)


def external_init_secret_from_kem_output(
    suite: CipherSuite, external_priv: bytes, kem_output: bytes
) -> bytes:
    """For members processing an ExternalInit proposal: the same init secret."""
    return suite.hpke_export_receiver(
        external_priv, kem_output, b"", _EXTERNAL_INIT_LABEL, suite.hash_len
    )
