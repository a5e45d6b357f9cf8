"""The public API is curated: what ``slimwire`` exports is listed, sorted, and importable."""

from __future__ import annotations

import slimwire


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff (RUF022) keeps: CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return (kind, name)


def test_all_is_sorted_and_resolves() -> None:
    assert list(slimwire.__all__) == sorted(slimwire.__all__, key=_isort_key)
    for name in slimwire.__all__:
        assert hasattr(slimwire, name), name


def test_exceptions_share_one_root() -> None:
    for name in slimwire.__all__:
        obj = getattr(slimwire, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, slimwire.SlimwireError), name
    assert issubclass(slimwire.SlimwireTimeout, TimeoutError)
