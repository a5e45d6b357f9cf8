"""Shared test fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CAPTURES = SHARED / "spec" / "captures"
MLS_VECTORS = SHARED / "mls-test-vectors"


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    assert CAPTURES.is_dir(), f"shared/ must sit beside the repository: {CAPTURES}"
    return CAPTURES
