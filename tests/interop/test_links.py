"""Sessions across static node-to-node links: reference node -> hub <- reference node.

The reference nodes dial the hub with ``connection_type: peer`` links (the only static link
kind through which the reference propagates subscriptions; see ``_ref_node.py``). Apps on
different nodes then open p2p sessions and share an MLS group, so traffic crosses one link
(spoke <-> hub) or two (spoke -> hub -> spoke). The hub is the node under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._harness import Star, with_node_logs
from ._scenarios import check_group, check_p2p, group, p2p

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("reliable", [False, True], ids=["unreliable", "reliable"])
@pytest.mark.parametrize("mls", [False, True], ids=["plain", "mls"])
async def test_p2p_spoke_to_spoke_through_hub(
    chain: Star, interop_logs: Path, mls: bool, reliable: bool, direction: str
) -> None:
    first, second = chain.spokes
    initiator, responder = await p2p(
        interop_logs,
        initiator_endpoint=first.endpoint,
        responder_endpoint=second.endpoint,
        mls=mls,
        reliable=reliable,
        direction=direction,
    )
    with with_node_logs(chain.hub, *chain.spokes):
        check_p2p(initiator, responder, mls=mls, direction=direction)


@pytest.mark.parametrize("toward_hub", [True, False], ids=["spoke-to-hub", "hub-to-spoke"])
async def test_p2p_one_link(chain: Star, interop_logs: Path, toward_hub: bool) -> None:
    spoke, hub = chain.spokes[0], chain.hub
    a, b = (spoke, hub) if toward_hub else (hub, spoke)
    initiator, responder = await p2p(
        interop_logs,
        initiator_endpoint=a.endpoint,
        responder_endpoint=b.endpoint,
        mls=True,
        reliable=True,
        direction="forward",
    )
    with with_node_logs(chain.hub, *chain.spokes):
        check_p2p(initiator, responder, mls=True, direction="forward")


async def test_group_spread_over_nodes(chain: Star, interop_logs: Path) -> None:
    first, second = chain.spokes
    moderator, participants = await group(
        interop_logs,
        moderator_endpoint=first.endpoint,
        participant_endpoints=[second.endpoint, chain.hub.endpoint, first.endpoint],
        mls=True,
        reliable=True,
        remove_index=0,
    )
    with with_node_logs(chain.hub, *chain.spokes):
        check_group(moderator, participants)
