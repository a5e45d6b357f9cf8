"""Acceptance 5 of the control plane over real sockets: a ConfigurationCommand whose
connections include invalid configs is acked item by item, and only the valid items change
the node. A scripted controller (the southbound service on loopback, written here) registers a
real slimwire node's agent, sends the command and reads the ack off the wire."""

from __future__ import annotations

import asyncio
import json

from slimwire._proto import controller_pb2 as cpb
from slimwire.config import NodeConfig, ServerConfig
from slimwire.control._agent import Agent
from slimwire.control._controller import CONTROLLER_SERVICE
from slimwire.control._core import name_proto
from slimwire.control._node_port import NodeAdapter
from slimwire.control._store import ConnDetail
from slimwire.dataplane import Node
from slimwire.transport import Stream, start_server

NAME = ("org", "ns", "svc", 7)


def _node(node_id: str) -> Node:
    return Node(NodeConfig(node_id=node_id, servers=(ServerConfig(host="127.0.0.1", port=0),)))


def _command(peer_url: str) -> cpb.ControlMessage:
    msg = cpb.ControlMessage(message_id="cmd-1")
    cmd = msg.config_command
    good = {"endpoint": peer_url, "link_id": "L-good"}
    cmd.connections_to_create.add(link_id="L-good", config_data=json.dumps(good))
    cmd.connections_to_create.add(link_id="L-json", config_data="{not json")
    cmd.connections_to_create.add(link_id="L-scheme", config_data='{"endpoint": "ftp://x:1"}')
    for link in ("L-good", "L-json"):
        route = cmd.routes_to_set.add(link_id=link)
        route.name.CopyFrom(name_proto(NAME))  # type: ignore[arg-type]
    return msg


async def test_invalid_connection_configs_fail_per_item_and_change_nothing_else() -> None:
    acks: asyncio.Queue[cpb.ConfigurationCommandAck] = asyncio.Queue()
    registered: asyncio.Queue[cpb.RegisterNodeRequest] = asyncio.Queue()
    async with _node("a") as a, _node("b") as b:

        async def controller(stream: Stream) -> None:
            first = cpb.ControlMessage.FromString((await stream.recv())[0])
            await registered.put(first.register_node_request)
            reply = cpb.ControlMessage(message_id="r-1")
            reply.register_node_response.success = True
            stream.send(reply.SerializeToString())
            stream.send(_command(b.url).SerializeToString())
            while batch := await stream.recv():
                for raw in batch:
                    msg = cpb.ControlMessage.FromString(raw)
                    if msg.WhichOneof("payload") == "config_command_ack":
                        await acks.put(msg.config_command_ack)

        server = await start_server({CONTROLLER_SERVICE: controller}, "127.0.0.1", 0)
        agent = Agent(
            NodeAdapter(a),
            f"http://127.0.0.1:{server.port}",
            domain="d1",
            credentials="",
            endpoints=[ConnDetail(a.url.removeprefix("http://"))],
        )
        before = {c.conn_id for c in a.connections()}
        try:
            async with asyncio.timeout(20), agent:
                assert (await registered.get()).node_id == "a"
                ack = await acks.get()
                assert ack.original_message_id == "cmd-1"
                by_link = {s.link_id: s for s in ack.connections_status}
                assert by_link["L-good"].success
                assert not by_link["L-json"].success
                assert "invalid config_data" in by_link["L-json"].errorMsg
                assert not by_link["L-scheme"].success
                assert "invalid config_data" in by_link["L-scheme"].errorMsg
                # the route on the good link applies; the one on a refused link does not
                good_route, bad_route = ack.routes_status
                assert good_route.success
                assert not bad_route.success
                assert bad_route.error_msg
                # the node: one new link (to b, for real: it may still be coming up), one
                # route, nothing else
                while not any(c.link_id == "L-good" for c in b.connections()):
                    await asyncio.sleep(0.02)
                new = [c for c in a.connections() if c.conn_id not in before]
                assert [c.link_id for c in new] == ["L-good"]
                assert a.routes() == {(NAME, "L-good"): new[0].conn_id}
        finally:
            await server.close()
