"""SessionGroupCrypto: the session layer's GroupCrypto seam driven the way the reference's
moderator and participants drive mls-rs (add with Welcome, remove by identity with a path,
commits applied by the others, header digests as AAD)."""

from __future__ import annotations

import pytest

from slimwire.errors import MlsError
from slimwire.mls import NO_EPOCH, MlsClient, SessionGroupCrypto
from slimwire.session._crypto import GroupCrypto


def test_moderator_and_participants() -> None:
    moderator: GroupCrypto = SessionGroupCrypto(MlsClient(b"moderator"))
    alice = SessionGroupCrypto(MlsClient(b"alice"))
    bob = SessionGroupCrypto(MlsClient(b"bob"))
    assert moderator.epoch == alice.epoch == NO_EPOCH
    moderator.create_group()
    _, welcome = moderator.add(alice.key_package())
    alice.join(welcome)
    commit, welcome = moderator.add(bob.key_package())
    alice.apply_commit(commit)
    bob.join(welcome)
    assert moderator.epoch == alice.epoch == bob.epoch == 2

    ct = alice.encrypt(b"hi all", b"digest-1")
    with pytest.raises(MlsError):
        bob.decrypt(ct, b"digest-2")  # a header that does not match the sealed digest
    assert bob.decrypt(ct, b"digest-1") == b"hi all"  # ... and the key was not burnt
    assert moderator.decrypt(ct, b"digest-1") == b"hi all"

    commit = moderator.remove(b"alice")
    bob.apply_commit(commit)
    with pytest.raises(MlsError):
        alice.decrypt(moderator.encrypt(b"after", b"d"), b"d")
    assert bob.decrypt(moderator.encrypt(b"after", b"d"), b"d") == b"after"
    with pytest.raises(MlsError):
        moderator.remove(b"nobody")
    with pytest.raises(MlsError):
        bob.apply_commit(b"\x00\x01\x00\x01garbage")
    assert bob.epoch == 3
