"""The harness itself: its checks catch a wrong exchange, every role gives up by its deadline
with a report, and nodes are stopped by PID. (The scenarios would prove nothing if a broken
exchange could still pass them.)"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._harness import AppSpec, NodeInfo, reference_node, run_apps, unique, with_node_logs
from ._scenarios import check_p2p

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def ref(interop_logs: Path) -> Iterator[NodeInfo]:
    """These tests check the harness, not a node: the reference node is enough."""
    with reference_node(interop_logs) as node:
        yield node


async def test_a_wrong_payload_fails_the_scenario(ref: NodeInfo, interop_logs: Path) -> None:
    """The responder expects other payloads than the initiator sends (different nonces)."""
    alice, bob = f"org/ns/{unique('alice')}", f"org/ns/{unique('bob')}"
    common = ("--count", "2", "--direction", "forward")
    responder = AppSpec("p2p-responder", bob, ref.endpoint, (*common, "--nonce", "one"), 15)
    # the initiator never gets its echo: it gives up at its own (short) deadline
    initiator = AppSpec(
        "p2p-initiator", alice, ref.endpoint, (*common, "--nonce", "two", "--peer", bob), 4
    )
    results = await run_apps(interop_logs, [responder], [initiator])
    assert not results[bob].ok
    assert "request 0: 'req-0-two' != 'req-0-one'" in results[bob]["error"]
    assert results[bob]["received"][0]["payload"] == "req-0-two"
    with pytest.raises(AssertionError):
        check_p2p(results[alice], results[bob], mls=False, direction="forward", count=2)


async def test_an_absent_peer_fails_by_the_deadline(ref: NodeInfo, interop_logs: Path) -> None:
    """Nobody listens: the initiator reports a failure by itself, within its deadline."""
    alice = f"org/ns/{unique('alice')}"
    lonely = AppSpec(
        "p2p-initiator", alice, ref.endpoint, ("--peer", f"org/ns/{unique('nobody')}"), 4
    )
    results = await run_apps(interop_logs, [], [lonely], cap=30)
    assert results[alice].returncode == 1
    assert results[alice].report["ok"] is False
    assert results[alice].report["error"]


def test_a_reference_node_is_stopped_by_pid(tmp_path: Path) -> None:
    with reference_node(tmp_path) as node:
        port = int(node.endpoint.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        pid = node.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass


def test_a_failure_shows_the_node_log(ref: NodeInfo) -> None:
    with (
        pytest.raises(
            AssertionError, match=r"(?s)the check.*--- reference node .* \(pid \d+, running\)"
        ),
        with_node_logs(ref),
    ):
        raise AssertionError("the check")
