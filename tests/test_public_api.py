"""The public API is curated: what ``slimwire`` exports is listed, sorted, and importable."""

from __future__ import annotations

import slimwire


def test_all_is_sorted_and_resolves() -> None:
    assert list(slimwire.__all__) == sorted(slimwire.__all__)
    for name in slimwire.__all__:
        assert hasattr(slimwire, name), name


def test_exceptions_share_one_root() -> None:
    for name in slimwire.__all__:
        obj = getattr(slimwire, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, slimwire.SlimwireError), name
    assert issubclass(slimwire.SlimwireTimeout, TimeoutError)
