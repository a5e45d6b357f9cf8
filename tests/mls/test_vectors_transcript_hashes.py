"""transcript-hashes.json: AuthenticatedContent round trip, confirmed and interim transcript
hashes, and the confirmation tag (RFC 9420 §8.2)."""

from __future__ import annotations

from typing import Any

import pytest

from slimwire.mls._struct_content import Commit
from slimwire.mls._struct_framing import AuthenticatedContent
from slimwire.mls._suites import cipher_suite
from slimwire.mls._transcript import (
    ConfirmationTagMismatch,
    TranscriptHashes,
    confirmation_tag,
    confirmed_transcript_hash,
    interim_transcript_hash,
    verify_confirmation_tag,
)
from tests.mls._vectors import cases, h


@pytest.mark.parametrize("case", cases("transcript-hashes"))
def test_transcript_hashes(case: dict[str, Any]) -> None:
    suite = cipher_suite(case["cipher_suite"])
    raw = h(case["authenticated_content"])
    content = AuthenticatedContent.from_bytes(raw)
    assert content.to_bytes() == raw
    assert isinstance(content.content.content, Commit)
    tag = content.auth.confirmation_tag
    assert tag is not None

    interim_before = h(case["interim_transcript_hash_before"])
    confirmed = confirmed_transcript_hash(suite, interim_before, content)
    assert confirmed == h(case["confirmed_transcript_hash_after"])
    assert confirmation_tag(suite, h(case["confirmation_key"]), confirmed) == tag
    verify_confirmation_tag(suite, h(case["confirmation_key"]), confirmed, tag)
    assert interim_transcript_hash(suite, confirmed, tag) == h(
        case["interim_transcript_hash_after"]
    )

    after = TranscriptHashes(b"", interim_before).after_commit(suite, content)
    assert after == (
        h(case["confirmed_transcript_hash_after"]),
        h(case["interim_transcript_hash_after"]),
    )

    with pytest.raises(ConfirmationTagMismatch):
        verify_confirmation_tag(suite, h(case["confirmation_key"]), confirmed, bytes(len(tag)))
