"""The session layer's view of MLS: :class:`SessionGroupCrypto` implements the
``slimwire.session`` ``GroupCrypto`` protocol (one member's state for one session) on top of
:class:`MlsClient` and :class:`Group`, the way the reference's ``mls_state.rs`` drives mls-rs:

* a moderator creates the group, adds each participant's key package (commit + Welcome) and
  removes participants by identity (a commit with an UpdatePath);
* a participant hands out key packages, joins from the Welcome and applies the moderator's
  commits in ``commit_id`` order;
* application messages carry the SLIM header digest as ``authenticated_data``, which the
  receiver compares with what it computed from the header it received.

The epoch is ``2**64 - 1`` until a group exists, as SLIM heartbeats expect.
"""

from __future__ import annotations

from slimwire.errors import MlsError
from slimwire.mls._group import CommitProcessed, Group
from slimwire.mls._group_client import MlsClient

__all__ = ["NO_EPOCH", "SessionGroupCrypto"]

NO_EPOCH = (1 << 64) - 1


class SessionGroupCrypto:
    """One member's MLS state for one session (``GroupCrypto``). Every call succeeds or raises
    :class:`~slimwire.errors.MlsError` leaving the state unchanged."""

    __slots__ = ("_group", "check_aad", "client")

    def __init__(self, client: MlsClient, *, check_aad: bool = True) -> None:
        self.client = client
        self.check_aad = check_aad
        self._group: Group | None = None

    def __repr__(self) -> str:
        return f"SessionGroupCrypto(group={self._group!r})"

    @property
    def group(self) -> Group:
        if self._group is None:
            raise MlsError("no MLS group yet")
        return self._group

    @property
    def epoch(self) -> int:
        return NO_EPOCH if self._group is None else self._group.epoch

    def key_package(self) -> bytes:
        return self.client.key_package()

    def create_group(self) -> None:
        self._group = self.client.create_group()

    def add(self, key_package: bytes) -> tuple[bytes, bytes]:
        return self.group.add([key_package])

    def remove(self, identity: bytes) -> bytes:
        try:
            return self.group.remove([identity])
        except ValueError as exc:
            raise MlsError(str(exc)) from None

    def join(self, welcome: bytes) -> None:
        self._group = self.client.join(welcome)

    def apply_commit(self, commit: bytes) -> None:
        event = self.group.process(commit)
        if not isinstance(event, CommitProcessed):
            raise MlsError("expected a commit")

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        return self.group.encrypt(plaintext, aad)

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        """Open an application message whose authenticated data must equal ``aad`` (unless
        ``check_aad`` is off)."""
        expected = aad if self.check_aad else None
        return self.group.decrypt(ciphertext, expected_aad=expected)[0]
