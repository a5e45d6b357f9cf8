"""The programs in ``examples/`` run as a user runs them, and do what their docstrings say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.timeout(90)


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("reliable", [False, True], ids=["best-effort", "reliable"])
def test_request_reply(reliable: bool) -> None:
    done = run_example("request_reply.py", "--requests", "4", *(["--reliable"] * reliable))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"request {i} -> REQUEST {i} (from responder)" for i in range(4)
    ], done.stderr


def test_traced_messages() -> None:
    done = run_example("traced_messages.py", "--messages", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    for line in lines:
        assert line.endswith(": slim publish -> slim_process_message -> slim receive"), line
