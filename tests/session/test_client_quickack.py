"""When our app forces immediate TCP ACKs: only for a node that may write with Nagle on.

A reliable request/reply through a reference node takes ~88 ms without the quickacks (the node
holds the reply until it sees our ACK of the MSG_ACK before it); through a slimwire node they
are a wasted ACK segment per read. These tests pin the decision on real nodes of both kinds;
``test_client_interop.py`` runs the reliable sessions themselves through both.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from slimwire.client import connect
from slimwire.client._link import node_needs_quickack
from tests.interop._harness import NodeInfo, start_node
from tests.interop._ref_app import DEFAULT_SECRET

pytestmark = pytest.mark.timeout(60)

LINUX = hasattr(socket, "TCP_QUICKACK")


@pytest.fixture(scope="module", params=["reference", "slimwire"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeInfo]:
    with start_node(request.param, tmp_path_factory.mktemp("quickack")) as info:
        yield info


def test_decision_from_response_headers() -> None:
    ours = ((":status", "200"), ("content-type", "application/grpc"))
    assert not node_needs_quickack((*ours, ("grpc-accept-encoding", "identity")))
    # hyper (under tonic) dates every response; other encodings are not our transport's
    assert node_needs_quickack((*ours, ("date", "Tue, 24 Nov 2026 14:03:18 GMT")))
    assert node_needs_quickack(
        (*ours, ("grpc-accept-encoding", "identity"), ("date", "Tue, 24 Nov 2026 14:03:18 GMT"))
    )
    assert node_needs_quickack((*ours, ("grpc-accept-encoding", "gzip")))
    assert node_needs_quickack(ours)
    assert node_needs_quickack(())  # no headers seen: keep the safe behaviour


async def test_quickack_only_through_a_nagle_node(node: NodeInfo, tmp_path: Path) -> None:
    app = await connect(node.endpoint, name="org/ns/quickack", secret=DEFAULT_SECRET)
    try:
        assert app._stream is not None
        headers = app._stream.response_headers
        if node.kind == "reference":
            assert node_needs_quickack(headers), headers
            if LINUX:
                assert app._ack_sock is not None
                assert app._ack_sock.family in (socket.AF_INET, socket.AF_INET6)
        else:
            assert not node_needs_quickack(headers), headers
            assert app._ack_sock is None
    finally:
        await app.close()
