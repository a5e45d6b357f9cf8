"""Every case of every official vector file is a test: none skipped, none left out."""

from __future__ import annotations

from collections import defaultdict

import pytest

from .conftest import case_of, vector_files


def test_every_vector_case_is_collected(request: pytest.FixtureRequest) -> None:
    collected: dict[str, set[int]] = defaultdict(set)
    for item in request.session.items:
        case = case_of(item.nodeid)
        if case is not None:
            collected[case[0]].add(case[1])
    files = vector_files()
    assert sum(files.values()) == 785
    # A partial run (one test file) checks what it collected; the full run checks every file.
    full_run = (
        any("test_vectors_" in item.nodeid for item in request.session.items) and len(collected) > 1
    )
    for name, total in files.items():
        if full_run or name in collected:
            assert collected[name] == set(range(total)), f"{name}: cases missing from the tests"
    if full_run:
        assert set(collected) == set(files)
