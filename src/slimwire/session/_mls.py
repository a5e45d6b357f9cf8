""":class:`GroupCrypto` on ``slimwire.mls``: one member's MLS state for one session.

The MLS credential is a Basic credential whose identity is a full identity token, and the leaf's
signature key is the key named by that token's ``pubkey`` claim (the app's signing key), as in
the reference; a peer's credential is accepted only if its token verifies and names the leaf's
key. Application data is sealed as a PrivateMessage whose authenticated data is the message's
``HeaderIntegrityAad``; the receiver compares it with the AAD rebuilt from what it received,
*inside* the MLS open (``expected_aad``), so a message whose header was altered is refused
before its key is consumed and the genuine copy (an RTX reply, say) still opens.

A member's app id (its name id) is ``XXH3_128`` of its token id: the shared-secret token's id,
or the JWT's ``sub`` claim (slim-wire.md section 1.3). Both kinds of credential occur in one
group (authority-issued JWTs next to shared-secret apps), so finding a member's leaf reads
either.
"""

from __future__ import annotations

import random

from slimwire.auth import (
    KeyAlgorithm,
    TokenProvider,
    TokenVerifier,
    decode_unverified,
    parse_token,
)
from slimwire.errors import AuthError, MlsError
from slimwire.mls import Group, MlsClient
from slimwire.names import app_id_from_token_id

__all__ = ["NO_MLS_EPOCH", "MlsCrypto", "credential_token_id"]

NO_MLS_EPOCH = (1 << 64) - 1


def credential_token_id(identity: bytes) -> str | None:
    """The token id an MLS credential's identity token names, or None if it is neither a
    shared-secret token nor a JWT with a string ``sub``.

    The JWT is read **without** verifying it: this only maps a leaf to an app id, and every
    credential in the group was verified (``_validate``) when its member was added.
    """
    try:
        text = identity.decode()
    except UnicodeDecodeError:
        return None
    try:
        return parse_token(text).token_id
    except AuthError:
        pass
    try:
        _header, claims, _signing_input, _signature = decode_unverified(text)
    except AuthError:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


class MlsCrypto:
    """One session's MLS state (create or join a group, add, commits, seal and open)."""

    __slots__ = ("_client", "_group", "_verifier", "integrity_percent")

    def __init__(
        self, provider: TokenProvider, verifier: TokenVerifier, *, integrity_percent: int = 100
    ) -> None:
        """``integrity_percent``: how often (in percent) the AAD of a received message is
        checked against its header, the reference's ``header_integrity_validation_percent``
        (0: never, 100 or more: always)."""
        key = provider.identity.signing_key
        if key.algorithm is not KeyAlgorithm.P256:
            raise MlsError("MLS needs a P-256 signing key (ciphersuite 0x0002)")
        self._verifier = verifier
        self.integrity_percent = max(0, min(100, integrity_percent))
        self._client = MlsClient(
            provider.token().encode(),
            key.private_bytes,
            validate_credential=self._validate,
        )
        self._group: Group | None = None

    def __repr__(self) -> str:
        return f"MlsCrypto(epoch={self.epoch})"

    def _validate(self, identity: bytes, signature_key: bytes) -> bool:
        try:
            claims = self._verifier.verify(identity.decode())
        except (AuthError, UnicodeDecodeError):
            return False
        return claims.public_key == bytes(signature_key)

    @property
    def epoch(self) -> int:
        return NO_MLS_EPOCH if self._group is None else self._group.epoch

    def _require(self) -> Group:
        if self._group is None:
            raise MlsError("no MLS group yet")
        return self._group

    def key_package(self) -> bytes:
        return self._client.key_package()

    def create_group(self) -> None:
        if self._group is None:
            self._group = self._client.create_group()

    def add(self, key_package: bytes) -> tuple[bytes, bytes]:
        return self._require().add([key_package])

    def remove(self, identity: bytes) -> bytes:
        group = self._require()
        for member in group.members:
            if member.identity == identity:
                return group.remove([member.leaf_index])
        raise MlsError("no such member")

    def _leaf_of_app(self, group: Group, name_id: int) -> int:
        for member in group.members:
            token_id = credential_token_id(member.identity)
            if token_id is not None and app_id_from_token_id(token_id) == name_id:
                return member.leaf_index
        raise MlsError("no member with that name id")

    def remove_app(self, name_id: int) -> bytes:
        """Remove the member whose credential token belongs to the app with ``name_id``."""
        group = self._require()
        return group.remove([self._leaf_of_app(group, name_id)])

    def rejoin_app(self, name_id: int, key_package: bytes) -> tuple[bytes, bytes]:
        """Remove and re-add app ``name_id`` in one commit (the reference's rejoin)."""
        group = self._require()
        return group.rejoin(self._leaf_of_app(group, name_id), key_package)

    def join(self, welcome: bytes) -> None:
        self._group = self._client.join(welcome)

    def apply_commit(self, commit: bytes) -> None:
        self._require().process(commit)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        group = self._group
        if group is None:
            raise MlsError("no MLS group yet")
        return group.encrypt(plaintext, aad)

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        """Open a message; with the integrity check on, one whose authenticated data is not
        ``aad`` raises MlsError and leaves its message key unused."""
        group = self._group
        if group is None:
            raise MlsError("no MLS group yet")
        percent = self.integrity_percent  # per message: 100 (check) unless configured
        if percent >= 100 or (percent > 0 and random.randrange(100) < percent):
            return group.decrypt(ciphertext, expected_aad=aad)[0]
        return group.decrypt(ciphertext)[0]
