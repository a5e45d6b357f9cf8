"""The controller over real loopback gRPC, with agents driving fake nodes: registration with
per-domain secrets, desired state, per-item acks, liveness and failover, restarts."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from slimwire._proto import controller_pb2 as cpb
from slimwire._proto import controlplane_pb2 as npb
from slimwire.auth import Identity, SharedSecretProvider
from slimwire.control._agent import Agent
from slimwire.control._controller import CONTROL_PLANE_SERVICE, CONTROLLER_SERVICE, Controller
from slimwire.control._routing import Topology
from slimwire.control._store import ALL_NODES, LinkStatus, RouteStatus, Store
from slimwire.errors import GrpcError, RegistrationRefused
from slimwire.transport import Status, connect, open_stream
from tests.control._fake import FakeMesh, FakeNode

S1 = "domain-one-secret-0123456789abcdef"
S2 = "domain-two-secret-0123456789abcdef"
NAME = ("org", "ns", "svc", None)
AUTH = ("admin", "pw")
LO = ("127.0.0.1", 0)


def token(domain: str, node_id: str, secret: str) -> Callable[[], str]:
    provider = SharedSecretProvider(Identity.generate(f"{domain}/{node_id}"), secret)
    return provider.token


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    c = Controller(
        Store(),
        topology=Topology.from_edges({"default": [("d1", "d2")]}),
        secrets={"d1": S1, "d2": S2},
        basic_auth=AUTH,
        southbound=LO,
        northbound=LO,
    )
    async with c:
        yield c


def agent(c: Controller, node: FakeNode, domain: str, secret: str, **kw: object) -> Agent:
    return Agent(
        node,  # type: ignore[arg-type]
        f"http://127.0.0.1:{c.southbound_port}",
        domain=domain,
        credentials=token(domain, node.node_id, secret),
        endpoints=[_ep(node)],
        **kw,  # type: ignore[arg-type]
    )


def _ep(node: FakeNode):  # type: ignore[no-untyped-def]
    from slimwire.control._store import ConnDetail

    return ConnDetail(node.url.removeprefix("http://"))


async def test_wrong_secret_is_refused(controller: Controller, mesh: FakeMesh) -> None:
    node = mesh.node("a1")
    async with agent(controller, node, "d1", S2, backoff=(5.0, 5.0)) as ag:
        await wait_until(lambda: ag.last_error is not None)
        assert isinstance(ag.last_error, RegistrationRefused)
        assert "token verification failed" in str(ag.last_error)
    assert controller.connected_nodes() == set()
    # a token for another node id is refused too, with a clear reason
    stream = await open_stream(f"http://127.0.0.1:{controller.southbound_port}", CONTROLLER_SERVICE)
    msg = cpb.ControlMessage(message_id="m1")
    msg.register_node_request.node_id = "a1"
    msg.register_node_request.domain_name = "d1"
    msg.register_node_request.credentials = token("d1", "other", S1)()
    stream.send(msg.SerializeToString())
    with pytest.raises(GrpcError) as info:
        await stream.recv()
    assert info.value.status == Status.PERMISSION_DENIED
    assert "identity mismatch" in info.value.grpc_message


async def test_two_domains_links_routes_and_acks(controller: Controller, mesh: FakeMesh) -> None:
    a1, a2, b1 = mesh.node("a1"), mesh.node("a2"), mesh.node("b1")
    b1.names.add(NAME)
    async with (
        agent(controller, b1, "d2", S2),
        agent(controller, a1, "d1", S1),
        agent(controller, a2, "d1", S1),
    ):
        await wait_until(lambda: controller.connected_nodes() == {"a1", "a2", "b1"})
        store = controller.store
        # gateways: a1 for d1, b1 for d2; a2 links to a1, a1 links to b1; all applied
        await wait_until(
            lambda: (
                {(lk.source_node_id, lk.dest_node_id, lk.status) for lk in store.list_links()}
                == {("a1", "b1", LinkStatus.APPLIED), ("a2", "a1", LinkStatus.APPLIED)}
            )
        )
        # routes toward the announcer b1: a1 -> b1, a2 -> a1, each applied on the node
        await wait_until(
            lambda: (
                {
                    (r.source_node_id, r.status)
                    for r in store.list_routes()
                    if r.source_node_id != ALL_NODES
                }
                == {("a1", RouteStatus.APPLIED), ("a2", RouteStatus.APPLIED)}
            )
        )
        l_ab = next(lk.link_id for lk in store.list_links() if lk.source_node_id == "a1")
        assert (NAME, l_ab) in a1.routes
        assert len(a2.routes) == 1
        # a2's apps subscribe: announced, and b1 (root) routes down toward d1's gateway
        a2.names.add(NAME)
        await wait_until(lambda: any(r for r in store.list_routes(src="b1")))
        await wait_until(lambda: (NAME, l_ab) in b1.routes)
        await wait_until(lambda: any(r[0] == NAME for r in a1.routes if r[1] != l_ab))
        # the node withdraws: routes toward it go away again
        a2.names.clear()
        await wait_until(lambda: not store.list_routes(src="b1"))
        await wait_until(lambda: not b1.routes)


async def test_failed_item_changes_nothing_else(controller: Controller, mesh: FakeMesh) -> None:
    """A raw node answers a command with one failed route and one good one."""
    b1 = mesh.node("b1")
    b1.names.add(NAME)
    async with agent(controller, b1, "d2", S2):
        await wait_until(lambda: "b1" in controller.connected_nodes())
        stream = await open_stream(
            f"http://127.0.0.1:{controller.southbound_port}", CONTROLLER_SERVICE
        )
        reg = cpb.ControlMessage(message_id="r1")
        r = reg.register_node_request
        r.node_id, r.domain_name, r.credentials = "a1", "d1", token("d1", "a1", S1)()
        r.connection_details.add(endpoint="127.0.0.1:1")
        other = ("org", "ns", "other", None)
        from slimwire.control._core import name_proto

        r.routes.add().name.CopyFrom(name_proto(other))
        stream.send(reg.SerializeToString())
        msgs: list[cpb.ControlMessage] = []

        async def next_of(kind: str) -> cpb.ControlMessage:
            while True:
                while msgs:
                    m = msgs.pop(0)
                    if m.WhichOneof("payload") == kind and (
                        kind != "config_command"
                        or m.config_command.connections_to_create
                        or m.config_command.routes_to_set
                    ):
                        return m
                msgs.extend(cpb.ControlMessage.FromString(x) for x in await stream.recv())

        async with asyncio.timeout(10):
            resp = await next_of("register_node_response")
            assert resp.register_node_response.success
            cmd = await next_of("config_command")
            (conn,) = cmd.config_command.connections_to_create
            # play the node: dial b1 for real in the fake mesh, then ack
            await mesh.node("a1").add_link(b1.url, link_id=conn.link_id)
            ack = cpb.ControlMessage(message_id="a1")
            ack.config_command_ack.original_message_id = cmd.message_id
            ack.config_command_ack.connections_status.add(link_id=conn.link_id, success=True)
            stream.send(ack.SerializeToString())
            cmd2 = await next_of("config_command")
        (route,) = cmd2.config_command.routes_to_set
        assert route.link_id == conn.link_id
        bad = cpb.ControlMessage(message_id="a2")
        a = bad.config_command_ack
        a.original_message_id = cmd2.message_id
        a.routes_status.add(route=route, success=False, error_msg="no such connection")
        stream.send(bad.SerializeToString())
        store = controller.store
        await wait_until(
            lambda: [x.status for x in store.list_routes(src="a1")] == [RouteStatus.FAILED]
        )
        assert store.list_routes(src="a1")[0].status_msg == "no such connection"
        # the link and b1's route toward a1's announced name are untouched
        assert store.get_link(conn.link_id).status is LinkStatus.APPLIED  # type: ignore[union-attr]
        await wait_until(
            lambda: [x.status for x in store.list_routes(src="b1")] == [RouteStatus.APPLIED]
        )
        stream.abort()


async def test_node_loss_failover_and_reregistration(
    controller: Controller, mesh: FakeMesh
) -> None:
    a1, a2, b1 = mesh.node("a1"), mesh.node("a2"), mesh.node("b1")
    b1.names.add(NAME)
    store = controller.store
    async with agent(controller, b1, "d2", S2), agent(controller, a2, "d1", S1) as ag_a2:
        await wait_until(lambda: controller.connected_nodes() == {"a2", "b1"})
        ag_a1 = agent(controller, a1, "d1", S1)
        ag_a1.start()
        await wait_until(lambda: controller.connected_nodes() == {"a1", "a2", "b1"})
        # a2 came first, so it is d1's gateway; a1 routes through it
        assert controller.core.gateways["d1"] == "a2"
        await wait_until(
            lambda: any(r.status is RouteStatus.APPLIED for r in store.list_routes(src="a1"))
        )
        # the gateway a2 dies: its links are deleted, a1 takes over and links to b1 directly
        await ag_a2.stop()
        a2.drop()
        await wait_until(lambda: controller.connected_nodes() == {"a1", "b1"})
        assert controller.core.gateways["d1"] == "a1"
        await wait_until(
            lambda: (
                {(lk.source_node_id, lk.dest_node_id) for lk in store.list_links()}
                == {("a1", "b1")}
            )
        )
        deleted = [
            lk for lk in store.list_links(include_deleted=True) if lk.status is LinkStatus.DELETED
        ]
        assert deleted
        assert all("a2" in lk.status_msg for lk in deleted)
        await wait_until(
            lambda: (
                [(r.link_id, r.status) for r in store.list_routes(src="a1")]
                == [(store.list_links()[0].link_id, RouteStatus.APPLIED)]
            )
        )
        assert {e.id: e.status for e in controller.core.node_entries()}["a2"] == npb.NOT_CONNECTED
        # a2 returns and re-registers: it gets its desired state (a link to the gateway a1)
        ag_a2.start()
        await wait_until(lambda: "a2" in controller.connected_nodes())
        await wait_until(lambda: any(c.peer_node_id == "a1" and c.outbound for c in a2.conns))
        await wait_until(
            lambda: any(r.status is RouteStatus.APPLIED for r in store.list_routes(src="a2"))
        )
        assert ag_a2.registrations == 2
        await ag_a1.stop()


async def test_store_survives_restart(tmp_path: Path, mesh: FakeMesh) -> None:
    db = tmp_path / "ctl.db"
    b1 = mesh.node("b1")
    b1.names.add(NAME)
    ctl = Controller(Store(db), secrets={"d2": S2}, southbound=LO, northbound=LO)
    async with ctl, agent(ctl, b1, "d2", S2):
        await wait_until(lambda: bool(ctl.store.announcements()))
    ctl.store.close()
    # a new controller on the same file knows the node, its domain secret and its names
    ctl2 = Controller(Store(db), southbound=LO, northbound=LO)
    async with ctl2:
        assert ctl2.store.get_node("b1") is not None
        assert [a.dest_node_id for a in ctl2.store.announcements()] == ["b1"]
        assert ctl2.core.require_credentials  # the stored secret still guards registration
        async with agent(ctl2, b1, "d2", S2) as ag:
            await wait_until(ag.registered.is_set)
    ctl2.store.close()


def _basic(user: str, pw: str) -> list[tuple[str, str]]:
    return [("authorization", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode())]


async def test_northbound_requires_basic_auth_and_manages_topology(mesh: FakeMesh) -> None:
    ctl = Controller(Store(), basic_auth=AUTH, southbound=LO, northbound=LO)
    async with ctl:
        ch = await connect(f"http://127.0.0.1:{ctl.northbound_port}")
        async with ch:
            path = CONTROL_PLANE_SERVICE + "ListDomains"
            with pytest.raises(GrpcError) as info:
                await ch.unary(path, b"", timeout=5)
            assert info.value.status == Status.UNAUTHENTICATED
            with pytest.raises(GrpcError):
                await ch.unary(path, b"", headers=_basic("admin", "nope"), timeout=5)
            req = npb.AddDomainRequest(domain_name="d1", secret=S1)
            await ch.unary(
                CONTROL_PLANE_SERVICE + "AddDomain",
                req.SerializeToString(),
                headers=_basic(*AUTH),
                timeout=5,
            )
            short = npb.AddDomainRequest(domain_name="d2", secret="short")
            with pytest.raises(GrpcError) as info:
                await ch.unary(
                    CONTROL_PLANE_SERVICE + "AddDomain",
                    short.SerializeToString(),
                    headers=_basic(*AUTH),
                    timeout=5,
                )
            assert info.value.status == Status.INVALID_ARGUMENT
            raw = await ch.unary(path, b"", headers=_basic(*AUTH), timeout=5)
            assert [d.domain_name for d in npb.ListDomainsResponse.FromString(raw).domains] == [
                "d1"
            ]
            link = npb.AddTopologyLinkRequest(domain_a="d1", domain_b="d2")
            raw = await ch.unary(
                CONTROL_PLANE_SERVICE + "AddTopologyLink",
                link.SerializeToString(),
                headers=_basic(*AUTH),
                timeout=5,
            )
            assert any("d2" in w for w in npb.AddTopologyLinkResponse.FromString(raw).warnings)
            raw = await ch.unary(
                CONTROL_PLANE_SERVICE + "ListSegments", b"", headers=_basic(*AUTH), timeout=5
            )
            (seg,) = npb.SegmentListResponse.FromString(raw).segments
            assert seg.name == "default"
            assert [(e.domain_a, e.domain_b) for e in seg.edges] == [("d1", "d2")]
            with pytest.raises(GrpcError) as info:
                await ch.unary(
                    CONTROL_PLANE_SERVICE + "RemoveDomain",
                    npb.RemoveDomainRequest(domain_name="zz").SerializeToString(),
                    headers=_basic(*AUTH),
                    timeout=5,
                )
            assert info.value.status == Status.NOT_FOUND
            # the node-facing query goes to the node over its control channel
            b1 = mesh.node("b1")
            async with agent(ctl, b1, "d1", S1) as ag:
                await wait_until(ag.registered.is_set)
                raw = await ch.unary(
                    CONTROL_PLANE_SERVICE + "ListConnections",
                    npb.Node(id="b1").SerializeToString(),
                    headers=_basic(*AUTH),
                    timeout=5,
                )
                assert cpb.ConnectionListResponse.FromString(raw).done
                nodes = [
                    npb.NodeEntry.FromString(m)
                    async for m in ch.server_stream(
                        CONTROL_PLANE_SERVICE + "ListNodes", b"", headers=_basic(*AUTH)
                    )
                ]
                assert [(n.id, n.domain, n.status) for n in nodes] == [("b1", "d1", npb.CONNECTED)]


async def test_agents_reregister_after_controller_restart(tmp_path: Path, mesh: FakeMesh) -> None:
    """The controller restarts on the same port and database: the agents reconnect with
    backoff, register again, and the mesh converges again (links applied, routes applied)."""
    db = tmp_path / "ctl.db"
    a1, b1 = mesh.node("a1"), mesh.node("b1")
    b1.names.add(NAME)
    topo = Topology.from_edges({"default": [("d1", "d2")]})
    ctl = Controller(
        Store(db), topology=topo, secrets={"d1": S1, "d2": S2}, southbound=LO, northbound=LO
    )
    await ctl.start()
    port = ctl.southbound_port
    ag_a = agent(ctl, a1, "d1", S1, backoff=(0.05, 0.2))
    ag_b = agent(ctl, b1, "d2", S2, backoff=(0.05, 0.2))
    async with ag_a, ag_b:
        await wait_until(
            lambda: [r.status for r in ctl.store.list_routes(src="a1")] == [RouteStatus.APPLIED]
        )
        await ctl.stop()
        ctl.store.close()
        await wait_until(lambda: not ag_a.registered.is_set())
        ctl = Controller(Store(db), topology=topo, southbound=("127.0.0.1", port), northbound=LO)
        async with ctl:
            await wait_until(lambda: ctl.connected_nodes() == {"a1", "b1"})
            # the controller counts a node connected once it has the registration; the agent
            # counts it once the response is back: wait for that side too
            await wait_until(ag_a.registered.is_set)
            assert ag_a.registrations == 2
            store = ctl.store
            await wait_until(
                lambda: [lk.status for lk in store.list_links()] == [LinkStatus.APPLIED]
            )
            await wait_until(
                lambda: [r.status for r in store.list_routes(src="a1")] == [RouteStatus.APPLIED]
            )
            (link,) = store.list_links()
            assert (NAME, link.link_id) in a1.routes
        ctl.store.close()
