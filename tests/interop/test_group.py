"""A group session with MLS between reference apps through the node under test: a moderator and
three participants, all-to-all delivery, then one participant removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._harness import NodeInfo, with_node_logs
from ._scenarios import check_group, group

pytestmark = pytest.mark.interop


async def test_group_mls_all_to_all_and_remove(node: NodeInfo, interop_logs: Path) -> None:
    moderator, participants = await group(
        interop_logs,
        moderator_endpoint=node.endpoint,
        participant_endpoints=[node.endpoint] * 3,
        mls=True,
        reliable=True,
        remove_index=0,
    )
    with with_node_logs(node):
        check_group(moderator, participants)
