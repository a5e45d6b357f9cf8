"""Reference apps on two slimwire nodes linked A -> B (a remote link from ``--link``): sessions
cross the link, with and without MLS, in both directions; and a group spread over both nodes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._harness import NodeInfo, slimwire_node, with_node_logs
from ._scenarios import check_group, check_p2p, group, p2p

pytestmark = pytest.mark.interop


@contextlib.contextmanager
def _linked_pair(log_dir: Path) -> Iterator[tuple[NodeInfo, NodeInfo]]:
    with (
        slimwire_node(log_dir) as b,
        slimwire_node(log_dir, extra_args=["--link", b.endpoint]) as a,
    ):
        yield a, b


@pytest.fixture(scope="module")
def linked(interop_logs: Path) -> Iterator[tuple[NodeInfo, NodeInfo]]:
    with _linked_pair(interop_logs) as pair:
        yield pair


@pytest.mark.parametrize("a_to_b", [True, False], ids=["a-to-b", "b-to-a"])
@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_p2p_across_two_slimwire_nodes(
    linked: tuple[NodeInfo, NodeInfo], interop_logs: Path, mls: bool, a_to_b: bool
) -> None:
    a, b = linked if a_to_b else linked[::-1]
    initiator, responder = await p2p(
        interop_logs,
        initiator_endpoint=a.endpoint,
        responder_endpoint=b.endpoint,
        mls=mls,
        reliable=True,
        direction="forward",
    )
    with with_node_logs(a, b):
        check_p2p(initiator, responder, mls=mls, direction="forward")


async def test_group_across_two_slimwire_nodes(
    linked: tuple[NodeInfo, NodeInfo], interop_logs: Path
) -> None:
    a, b = linked
    results = await group(
        interop_logs,
        moderator_endpoint=a.endpoint,
        participant_endpoints=[b.endpoint, a.endpoint, b.endpoint],
    )
    with with_node_logs(a, b):
        check_group(*results)
