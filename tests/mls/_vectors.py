"""Loading the RFC 9420 interop test vectors (mlswg/mls-implementations, test-vectors/).

Every case becomes its own pytest item, with an id naming the file and the case index, so a
failure points at one JSON entry. Hex fields stay strings in the JSON; ``h()`` decodes them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from tests.conftest import MLS_VECTORS


@cache
def load(name: str) -> list[dict[str, Any]]:
    """The cases of ``<name>.json`` (cached: several tests read the same file)."""
    path = MLS_VECTORS / f"{name}.json"
    with path.open() as f:
        cases: list[dict[str, Any]] = json.load(f)
    return cases


def cases(name: str) -> list[Any]:
    """``pytest.param`` per case, id ``<name>.json#<index>`` (``-suite<n>`` where given)."""
    params = []
    for i, case in enumerate(load(name)):
        suite = case.get("cipher_suite")
        cid = f"{name}.json#{i}" + (f"-suite{suite}" if suite is not None else "")
        params.append(pytest.param(case, id=cid))
    return params


def h(value: str | None) -> bytes:
    """Hex field to bytes (``None``, for an absent optional, becomes empty)."""
    return bytes.fromhex(value) if value else b""
