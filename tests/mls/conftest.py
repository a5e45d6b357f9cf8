"""Counts the official MLS test-vector cases per file in the test report.

Vector tests are parametrized with ids ``<file>.json#<index>[-...]``; several tests may use the
same case, so a case counts once, as passed only if every test that used it passed.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from ..conftest import MLS_VECTORS

CASE_ID = re.compile(r"\[([\w-]+\.json)#(\d+)")
_outcomes: dict[tuple[str, int], bool] = {}


def vector_files() -> dict[str, int]:
    """Every vector file and its number of cases."""
    return {p.name: len(json.loads(p.read_text())) for p in sorted(MLS_VECTORS.glob("*.json"))}


def case_of(nodeid: str) -> tuple[str, int] | None:
    match = CASE_ID.search(nodeid)
    return (match.group(1), int(match.group(2))) if match else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    case = case_of(report.nodeid)
    if case is None or (report.when != "call" and report.passed):
        return
    _outcomes[case] = _outcomes.get(case, True) and report.passed


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes:
        return
    passed: dict[str, int] = defaultdict(int)
    ran: dict[str, int] = defaultdict(int)
    for (name, _), ok in _outcomes.items():
        ran[name] += 1
        passed[name] += ok
    terminalreporter.section("MLS test vectors (cases passed / cases in file)")
    for name, total in vector_files().items():
        terminalreporter.write_line(f"{name:36} {passed[name]:4} / {total:4}  (ran {ran[name]})")
    all_passed = sum(passed.values())
    terminalreporter.write_line(f"{'total':36} {all_passed:4} / {sum(vector_files().values()):4}")
