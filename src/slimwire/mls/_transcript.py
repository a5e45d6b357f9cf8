"""Transcript hashes and the confirmation tag (RFC 9420 §8.2, §6.1).

Two running hashes chain every commit into the group's history. The *confirmed* hash covers a
commit's content and signature (what was committed, by whom); the *interim* hash adds the commit's
confirmation tag, which is only known once the new epoch's key schedule has run. Because the
confirmed hash goes into the next GroupContext and the confirmation tag is a MAC over it with the
new epoch's confirmation key, members who agree on the tag agree on both history and keys.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, NamedTuple

from slimwire.errors import MlsError
from slimwire.mls._codec import Writer
from slimwire.mls._struct_framing import AuthenticatedContent
from slimwire.mls._structs import ContentType

if TYPE_CHECKING:
    from slimwire.mls._suites import CipherSuite


class ConfirmationTagMismatch(MlsError):
    """A commit's confirmation tag does not match the epoch it claims to create."""


def confirmed_transcript_hash_input(content: AuthenticatedContent) -> bytes:
    """``ConfirmedTranscriptHashInput``: wire format, the commit's FramedContent, its signature
    (everything of AuthenticatedContent except the confirmation tag)."""
    if content.content.content_type != ContentType.COMMIT:
        raise ValueError("only commits enter the transcript")
    w = Writer().u16(content.wire_format)
    content.content.encode(w)
    w.opaque(content.auth.signature)
    return bytes(w)


def confirmed_transcript_hash(
    suite: CipherSuite, interim_before: bytes, content: AuthenticatedContent
) -> bytes:
    """``Hash(interim_transcript_hash[n-1] || ConfirmedTranscriptHashInput[n])``."""
    return suite.hash(interim_before + confirmed_transcript_hash_input(content))


def interim_transcript_hash(suite: CipherSuite, confirmed: bytes, confirmation_tag: bytes) -> bytes:
    """``Hash(confirmed_transcript_hash[n] || InterimTranscriptHashInput[n])``; the input is
    ``struct { MAC confirmation_tag; }``."""
    return suite.hash(confirmed + bytes(Writer().opaque(confirmation_tag)))


def confirmation_tag(suite: CipherSuite, confirmation_key: bytes, confirmed: bytes) -> bytes:
    """``MAC(confirmation_key, confirmed_transcript_hash)`` (§6.1)."""
    return suite.mac(confirmation_key, confirmed)


def verify_confirmation_tag(
    suite: CipherSuite, confirmation_key: bytes, confirmed: bytes, tag: bytes
) -> None:
    """Constant-time check; raises :class:`ConfirmationTagMismatch`."""
    if not hmac.compare_digest(confirmation_tag(suite, confirmation_key, confirmed), tag):
        raise ConfirmationTagMismatch("confirmation tag does not verify")


class TranscriptHashes(NamedTuple):
    """The pair of hashes a group carries from epoch to epoch."""

    confirmed: bytes
    interim: bytes

    @classmethod
    def initial(cls) -> TranscriptHashes:
        """A new group starts from two empty hashes (§8.2, §11)."""
        return cls(b"", b"")

    def after_commit(self, suite: CipherSuite, commit: AuthenticatedContent) -> TranscriptHashes:
        """The hashes of the epoch ``commit`` creates. The commit's own confirmation tag is
        used for the interim hash; check it against the new key schedule with
        :func:`verify_confirmation_tag` before trusting the result."""
        tag = commit.auth.confirmation_tag
        if tag is None:
            raise ValueError("a commit carries a confirmation tag")
        confirmed = confirmed_transcript_hash(suite, self.interim, commit)
        return TranscriptHashes(confirmed, interim_transcript_hash(suite, confirmed, tag))
