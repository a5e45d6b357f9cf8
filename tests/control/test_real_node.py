"""The agent on real slimwire Nodes over loopback: a local subscription is announced, the
controller links the two domains' nodes with a real link, binds its route to that link
(Node.set_route), and a publish follows it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from slimwire.config import NodeConfig, ServerConfig
from slimwire.control._agent import Agent
from slimwire.control._controller import Controller
from slimwire.control._node_port import NodeAdapter
from slimwire.control._routing import Topology
from slimwire.control._store import ALL_NODES, ConnDetail, LinkStatus, RouteStatus, Store
from slimwire.dataplane import Node
from slimwire.names import Name
from tests.control.test_controller import S1, S2, token
from tests.dataplane._client import RawClient

LO = ("127.0.0.1", 0)


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def _node(node_id: str) -> Node:
    return Node(NodeConfig(node_id=node_id, servers=(ServerConfig(host="127.0.0.1", port=0),)))


async def test_agent_on_real_nodes() -> None:
    ctl = Controller(
        Store(),
        topology=Topology.from_edges({"default": [("d1", "d2")]}),
        secrets={"d1": S1, "d2": S2},
        southbound=LO,
        northbound=LO,
    )
    url = "http://127.0.0.1:{}"
    async with ctl, _node("a") as a, _node("b") as b:
        south = url.format(ctl.southbound_port)
        agents = [
            Agent(
                NodeAdapter(n),
                south,
                domain=d,
                credentials=token(d, n.node_id, s),
                endpoints=[ConnDetail(n.url.removeprefix("http://"))],
            )
            for n, d, s in ((a, "d1", S1), (b, "d2", S2))
        ]
        app = await RawClient.connect(b.url, Name("org", "ns", "svc", 5))
        try:
            await app.subscribe()
            async with agents[0], agents[1]:
                store = ctl.store
                await _until(lambda: ctl.connected_nodes() == {"a", "b"})
                # b's local subscriber is announced to the controller
                await _until(
                    lambda: (
                        [(r.dest_node_id, r.components) for r in store.announcements()]
                        == [("b", ("org", "ns", "svc"))]
                    )
                )
                assert store.announcements()[0].component_id == 5
                # the controller asks a (gateway of d1) to dial b; the link comes up for real
                await _until(
                    lambda: [lk.status for lk in store.list_links()] == [LinkStatus.APPLIED]
                )
                (link,) = store.list_links()
                assert (link.source_node_id, link.dest_node_id) == ("a", "b")
                await _until(lambda: any(c.link_id == link.link_id for c in b.connections()))
                assert any(c.link_id == link.link_id and c.outbound for c in a.connections())
                # a binds its route toward b to that link; the controller records it Applied
                await _until(
                    lambda: [r.status for r in store.list_routes(src="a")] == [RouteStatus.APPLIED]
                )
                name = ("org", "ns", "svc", 5)
                assert a.routes() == {
                    (name, link.link_id): next(
                        c.conn_id for c in a.connections() if c.link_id == link.link_id
                    )
                }
                assert all(r.source_node_id in ("a", ALL_NODES) for r in store.list_routes())
                # an app on a publishes to b's subscriber along it
                sender = await RawClient.connect(a.url, Name("org", "ns", "sender", 1))
                try:
                    sender.publish(Name("org", "ns", "svc", 5), b"over the controller's route")
                    (got,) = await app.received(1)
                    assert got.publish.msg.app_payload.blob == b"over the controller's route"
                finally:
                    await sender.close()
        finally:
            await app.close()


async def test_start_node_control_from_the_reference_yaml_section() -> None:
    """What ``slimwire node`` would call with its parsed service section."""
    import yaml

    from slimwire.control._wiring import start_node_control

    ctl = Controller(Store(), secrets={"d1": S1}, southbound=LO, northbound=LO)
    async with ctl, _node("a") as a:
        service = yaml.safe_load(
            f"""
            node_id: a
            domain_name: d1
            auth: {{type: shared_secret, secret: "{S1}"}}
            dataplane:
              servers: [{{endpoint: "127.0.0.1:0", tls: {{insecure: true}},
                          metadata: {{external_endpoint: "a.example:1"}}}}]
            controller:
              clients: [{{endpoint: "127.0.0.1:{ctl.southbound_port}", tls: {{insecure: true}}}}]
              servers: [{{endpoint: "127.0.0.1:0", tls: {{insecure: true}}}}]
            """
        )
        control = await start_node_control(a, service)
        try:
            await _until(lambda: ctl.connected_nodes() == {"a"})
            (entry,) = ctl.core.node_entries()
            (detail,) = entry.connections
            assert detail.endpoint == f"127.0.0.1:{a.port}"
            assert detail.external_endpoint == "a.example:1"
            assert len(control.servers) == 1
            assert control.servers[0].port > 0
        finally:
            await control.aclose()
