"""A reliable session that loses a message through the node: the receiver's RTX request and
the sender's RTX reply are counted on their links (and shown in /metrics)."""

from __future__ import annotations

import asyncio

from slimwire._proto import data_plane_pb2 as pb
from slimwire.client import connect
from slimwire.config import NodeConfig, ServerConfig
from slimwire.control._telemetry import figures_from_samples, http_get, parse_prometheus
from slimwire.dataplane import Node
from slimwire.dataplane._connections import Conn
from slimwire.metrics import MetricsServer
from tests.session._net import SECRET

MSG = pb.SESSION_MESSAGE_TYPE_MSG


async def test_a_lost_message_is_retransmitted_and_counted() -> None:
    config = NodeConfig(node_id="lossy", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with asyncio.timeout(30), Node(config) as node, MetricsServer(node) as metrics:
        assert node.count_retransmissions  # turned on by the metrics endpoint
        fwd = node.forwarder
        route = fwd._route
        dropped: list[int] = []

        def lossy(conn: Conn, batch: list[bytes]) -> None:
            """Lose the first copy of the second data message, as a flaky link would."""
            kept = []
            for raw in batch:
                msg = pb.Message.FromString(raw)
                session = msg.publish.session
                if (
                    not dropped
                    and msg.WhichOneof("message_type") == "publish"
                    and session.session_message_type == MSG
                    and session.message_id == 2
                ):
                    dropped.append(conn.conn_id)
                    continue
                kept.append(raw)
            route(conn, kept)

        fwd._route = lossy  # type: ignore[method-assign]
        url = f"http://127.0.0.1:{node.port}"
        a = await connect(url, name="org/ns/rtx-a", secret=SECRET)
        b = await connect(url, name="org/ns/rtx-b", secret=SECRET)
        try:
            s = await a.open_session("org/ns/rtx-b", reliable=True, interval=0.3, max_retries=20)
            r = await b.accept(5)
            for i in range(4):
                await s.publish(b"%d" % i)
            got = [(await r.receive(timeout=10)).payload for _ in range(4)]
            assert got == [b"0", b"1", b"2", b"3"]  # nothing lost, in order
            await s.flush(timeout=10)
            # read while both links are up (a closed link leaves the table)
            assert len(dropped) == 1
            conns = node.connections()
            requests = {c.conn_id: c.rtx_requests for c in conns}
            replies = {c.conn_id: c.rtx_replies for c in conns}
            sender = dropped[0]
            assert replies[sender] >= 1  # the sender answered on its own link
            assert sum(requests.values()) >= 1
            assert requests[sender] == 0  # the request came from the receiver's link
            text = await http_get(metrics.url, 5)
            figures = figures_from_samples(parse_prometheus(text), 0)
            assert figures.retransmissions["request"] == sum(requests.values())
            assert figures.retransmissions["reply"] == sum(replies.values())
        finally:
            await a.close()
            await b.close()
