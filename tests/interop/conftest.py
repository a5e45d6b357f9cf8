"""Fixtures for the interop tests: one node per test module and node kind, logs kept per module.

Each node is a subprocess (see ``_harness.py``); the fixture is synchronous so that one node can
serve every test of a module, whatever event loop each async test runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._harness import NodeInfo, Star, chain_middle_kinds, node_kinds, star, start_node


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "interop: drives the reference implementation (slim-bindings) in subprocesses"
    )


@pytest.fixture(scope="module")
def interop_logs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for this module's node and app logs (their tails go into failure messages)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module", params=node_kinds())
def node_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def node(node_kind: str, interop_logs: Path) -> Iterator[NodeInfo]:
    """The node under test, shared by the module's tests; stopped by PID at the end."""
    with start_node(node_kind, interop_logs) as info:
        yield info


@pytest.fixture(scope="module", params=chain_middle_kinds())
def hub_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def chain(hub_kind: str, interop_logs: Path) -> Iterator[Star]:
    """reference node -> hub (node under test) <- reference node, joined by static peer links."""
    with star(hub_kind, interop_logs, spokes=2) as topology:
        yield topology
