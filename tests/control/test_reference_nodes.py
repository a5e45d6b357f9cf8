"""Our controller managing reference nodes (slim-bindings 3.3.8): a reference node's
registration is verified against its domain secret (and refused with a wrong one), our link
command is dialled and acked by the reference, the route we compute from a subscription it
reports is applied by it, and a publish crosses the two reference nodes along that route."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slimwire.control._controller import Controller
from slimwire.control._routing import Topology
from slimwire.control._store import LinkStatus, RouteStatus, Store
from slimwire.names import Name
from tests.dataplane._client import RawClient

pytest.importorskip("slim_bindings")

SCRIPT = Path(__file__).with_name("_ref_ctl_node.py")
SA = "secret-for-domain-a-0123456789abcdefghij"
SB = "secret-for-domain-b-0123456789abcdefghij"
LO = ("127.0.0.1", 0)


class RefNode:
    def __init__(self, south: int, node_id: str, domain: str, secret: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(south), node_id, domain, secret],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    async def ready(self) -> int:
        """The node's data-plane port, once it started (its start waits for its registration,
        so the event loop must keep running meanwhile)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            line = await asyncio.to_thread(self.proc.stdout.readline)
        info = json.loads(line)
        self.controller_port = int(info["controller_port"])
        return int(info["port"])

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def nodes() -> Iterator[list[RefNode]]:
    started: list[RefNode] = []
    yield started
    for n in started:
        n.stop()


async def _ctl(*argv: str) -> object:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slimwire",
        "ctl",
        *argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def _until(pred: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.05)


async def test_reference_node_refused_with_wrong_secret(nodes: list[RefNode]) -> None:
    ctl = Controller(Store(), secrets={"da": SA}, southbound=LO, northbound=LO)
    async with ctl:
        nodes.append(RefNode(ctl.southbound_port, "ref-x", "da", SB))
        nodes.append(RefNode(ctl.southbound_port, "ref-y", "da", SA))
        await nodes[0].ready()
        await nodes[1].ready()
        await _until(lambda: "ref-y" in ctl.connected_nodes())
        await asyncio.sleep(0.5)  # ref-x had as long: it must still be refused
        assert ctl.connected_nodes() == {"ref-y"}
        assert ctl.store.get_node("ref-x") is None


@pytest.mark.parametrize("first", ["ref-a", "ref-b"])
async def test_controller_drives_two_reference_nodes(nodes: list[RefNode], first: str) -> None:
    """``first`` registers first. ref-a dials the link either way: told by a
    ConfigurationCommand (the reference reads a ClientConfig) when it came first, or by its
    RegisterNodeResponse (applied as a reconcile: it reads a ServerConnectionConfig)."""
    ctl = Controller(
        Store(),
        topology=Topology.from_edges({"default": [("da", "db")]}),
        secrets={"da": SA, "db": SB},
        southbound=LO,
        northbound=LO,
    )
    async with ctl:
        spec = {"ref-a": ("da", SA), "ref-b": ("db", SB)}
        ports = {}
        for node_id in sorted(spec, key=lambda n: n != first):
            nodes.append(RefNode(ctl.southbound_port, node_id, *spec[node_id]))
            ports[node_id] = await nodes[-1].ready()
            await _until(lambda n=node_id: n in ctl.connected_nodes())  # type: ignore[misc]
        port_a, port_b = ports["ref-a"], ports["ref-b"]
        store = ctl.store
        await _until(lambda: [lk.status for lk in store.list_links()] == [LinkStatus.APPLIED])
        (link,) = store.list_links()
        assert (link.source_node_id, link.dest_node_id) == ("ref-a", "ref-b")
        assert link.dest_endpoint == f"http://127.0.0.1:{port_b}"
        app = await RawClient.connect(f"http://127.0.0.1:{port_b}", Name("org", "ns", "svc", 5))
        sender = await RawClient.connect(f"http://127.0.0.1:{port_a}", Name("org", "ns", "snd", 6))
        try:
            await app.subscribe()
            await _until(
                lambda: (
                    [(r.status, r.link_id) for r in store.list_routes(src="ref-a")]
                    == [(RouteStatus.APPLIED, link.link_id)]
                )
            )
            (ann,) = store.announcements()
            assert (ann.dest_node_id, ann.components, ann.component_id) == (
                "ref-b",
                ("org", "ns", "svc"),
                5,
            )
            await sender.subscribe()
            sender.publish(Name("org", "ns", "svc"), b"across the controller's route")
            (got,) = await app.received(1, timeout=5)
            assert b"across the controller's route" in got.SerializeToString()
            # slimwire ctl against the reference node's own ControllerService ...
            ref_a = next(n for n in nodes if "ref-a" in n.proc.args)  # type: ignore[operator]
            node_srv = f"127.0.0.1:{ref_a.controller_port}"
            conns = await _ctl("--server", node_srv, "-o", "json", "node", "connection", "list")
            assert any(c["link_id"] == link.link_id and c["direction"] == "Outgoing" for c in conns)
            routes = await _ctl("--server", node_srv, "-o", "json", "node", "route", "list")
            assert any(
                r["route"].startswith("org/ns/svc/") and r["link_id"] == link.link_id
                for r in routes
            )
            # ... and through our controller, which asks the node over its control channel
            nb = f"127.0.0.1:{ctl.northbound_port}"
            via = await _ctl("--server", nb, "-o", "json", "connection", "list", "-n", "ref-a")
            assert {c["link_id"] for c in via} == {c["link_id"] for c in conns}
        finally:
            await app.close()
            await sender.close()
