"""Point-to-point sessions between two reference apps through the node under test.

MLS off and on, reliable and not, request/reply in both directions (the initiator's requests
echoed with ``publish_to``; the responder's requests sent with ``publish_and_wait``), then close.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._harness import NodeInfo, with_node_logs
from ._scenarios import check_p2p, p2p

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("reliable", [False, True], ids=["unreliable", "reliable"])
@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_p2p_request_reply(
    node: NodeInfo, interop_logs: Path, mls: bool, reliable: bool, direction: str
) -> None:
    initiator, responder = await p2p(
        interop_logs,
        initiator_endpoint=node.endpoint,
        responder_endpoint=node.endpoint,
        mls=mls,
        reliable=reliable,
        direction=direction,
    )
    with with_node_logs(node):
        check_p2p(initiator, responder, mls=mls, direction=direction)
