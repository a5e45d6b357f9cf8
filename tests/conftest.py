"""Shared test fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Tests assert behaviour, never durations: hypothesis's per-example deadline and its "too slow"
# health checks would turn a loaded CI machine into failures, so they are off everywhere.
settings.register_profile(
    "slimwire",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("slimwire")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CAPTURES = SHARED / "spec" / "captures"
MLS_VECTORS = SHARED / "mls-test-vectors"


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    assert CAPTURES.is_dir(), f"shared/ must sit beside the repository: {CAPTURES}"
    return CAPTURES
