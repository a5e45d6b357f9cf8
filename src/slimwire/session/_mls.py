""":class:`GroupCrypto` on ``slimwire.mls``: one member's MLS state for one session.

The MLS credential is a Basic credential whose identity is a full identity token, and the leaf's
signature key is the key named by that token's ``pubkey`` claim (the app's signing key), as in
the reference; a peer's credential is accepted only if its token verifies and names the leaf's
key. Application data is sealed as a PrivateMessage whose authenticated data is the message's
``HeaderIntegrityAad``; the receiver compares it with the AAD rebuilt from what it received.
"""

from __future__ import annotations

from slimwire.auth import KeyAlgorithm, TokenProvider, TokenVerifier, parse_token
from slimwire.errors import AuthError, MlsError
from slimwire.mls import Group, MlsClient
from slimwire.names import app_id_from_token_id

__all__ = ["NO_MLS_EPOCH", "MlsCrypto"]

NO_MLS_EPOCH = (1 << 64) - 1


class MlsCrypto:
    """One session's MLS state (create or join a group, add, commits, seal and open)."""

    __slots__ = ("_client", "_group", "_verifier")

    def __init__(self, provider: TokenProvider, verifier: TokenVerifier) -> None:
        key = provider.identity.signing_key
        if key.algorithm is not KeyAlgorithm.P256:
            raise MlsError("MLS needs a P-256 signing key (ciphersuite 0x0002)")
        self._verifier = verifier
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
            try:
                token_id = parse_token(member.identity.decode()).token_id
            except (AuthError, UnicodeDecodeError):
                continue
            if app_id_from_token_id(token_id) == name_id:
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
        return self._require().encrypt(plaintext, aad)

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        plaintext, received_aad, _sender = self._require().decrypt(ciphertext)
        if received_aad != aad:
            raise MlsError("header integrity check failed: the AAD does not match the header")
        return plaintext
