"""The seam between the session layer and MLS (``slimwire.mls`` plugs in here).

The session layer only moves opaque bytes: key packages in JoinReply, commits in GroupUpdate,
welcomes in GroupWelcome, and ciphertext in the blob of MSG/RTX_REPLY. Whatever implements this
protocol owns the group state. Every call either succeeds or raises
:class:`slimwire.errors.MlsError` leaving the state unchanged.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["GroupCrypto"]


class GroupCrypto(Protocol):
    """One member's MLS state for one session."""

    @property
    def epoch(self) -> int:
        """The current epoch (sent in heartbeats; ``2**64-1`` stands for "no MLS")."""
        ...

    def key_package(self) -> bytes:
        """A fresh serialized KeyPackage MlsMessage for a JoinReply or RejoinRequest."""
        ...

    def create_group(self) -> None:
        """Moderator: start a one-member group."""
        ...

    def add(self, key_package: bytes) -> tuple[bytes, bytes]:
        """Moderator: add a member; returns (commit, welcome) and moves to the next epoch."""
        ...

    def remove(self, identity: bytes) -> bytes:
        """Moderator: remove the member whose credential is ``identity``; returns the commit."""
        ...

    def remove_app(self, name_id: int) -> bytes:
        """Moderator: remove the member whose credential belongs to app ``name_id``; returns
        the commit."""
        ...

    def rejoin_app(self, name_id: int, key_package: bytes) -> tuple[bytes, bytes]:
        """Moderator: remove app ``name_id``'s leaf and add it back from ``key_package`` in one
        commit; returns (commit, welcome)."""
        ...

    def join(self, welcome: bytes) -> None:
        """Joiner: enter the group from a Welcome."""
        ...

    def apply_commit(self, commit: bytes) -> None:
        """Member: apply a moderator's commit (the caller orders them by commit_id)."""
        ...

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Seal an application message; ``aad`` is the HeaderIntegrityAad bytes."""
        ...

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        """Open an application message; raises MlsError if it does not authenticate."""
        ...
