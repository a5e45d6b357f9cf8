"""Model-based test of the controller core: random registrations, losses, announcements and
withdrawals over a random domain topology; after the nodes ack everything, the store holds
exactly the planned links and routes, all applied (the reconciler converges)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from slimwire._proto import controller_pb2 as cpb
from slimwire.control._core import ControllerCore, Outbound, name_proto
from slimwire.control._routing import Topology
from slimwire.control._store import ALL_NODES, LinkStatus, RouteStatus, Store

NODES = {f"n{i}": f"d{i % 3}" for i in range(5)}
NAMES = [("o", "n", "x", None), ("o", "n", "y", 3)]
EDGES = [("d0", "d1"), ("d1", "d2"), ("d0", "d2")]


def _ack_all(core: ControllerCore, pending: list[Outbound]) -> None:
    for _ in range(10_000):
        if not pending:
            return
        out = pending.pop(0)
        if out.node_id not in core.connected:
            continue
        if out.message.WhichOneof("payload") != "config_command":
            continue
        cmd = out.message.config_command
        ack = cpb.ControlMessage(message_id="a")
        a = ack.config_command_ack
        a.original_message_id = out.message.message_id
        for c in cmd.connections_to_create:
            a.connections_status.add(link_id=c.link_id, success=True)
        for r in (*cmd.routes_to_set, *cmd.routes_to_delete):
            a.routes_status.add(route=r, success=True)
        pending.extend(core.handle(out.node_id, ack))
    raise AssertionError("the core never stops sending")


class Mesh(RuleBasedStateMachine):
    @initialize(edges=st.lists(st.sampled_from(EDGES), unique=True))
    def setup(self, edges: list[tuple[str, str]]) -> None:
        self.core = ControllerCore(Store(), topology=Topology.from_edges({"s": edges}))

    @rule(node=st.sampled_from(sorted(NODES)))
    def register(self, node: str) -> None:
        req = cpb.RegisterNodeRequest(node_id=node, domain_name=NODES[node])
        req.connection_details.add(endpoint=f"{node}:1")
        _, out = self.core.register("r", req)
        _ack_all(self.core, out)

    @rule(node=st.sampled_from(sorted(NODES)))
    def lose(self, node: str) -> None:
        _ack_all(self.core, self.core.disconnected(node))

    @rule(node=st.sampled_from(sorted(NODES)), name=st.sampled_from(NAMES), add=st.booleans())
    def announce(self, node: str, name: tuple[str, str, str, int | None], add: bool) -> None:
        if node not in self.core.connected:
            return
        msg = cpb.ControlMessage(message_id="s")
        lst = msg.config_command.routes_to_set if add else msg.config_command.routes_to_delete
        name_proto(name, lst.add().name)
        _ack_all(self.core, self.core.handle(node, msg))

    @invariant()
    def converged(self) -> None:
        if not hasattr(self, "core"):
            return
        core = self.core
        links_plan, routes_plan = core.plan()
        live = core.store.list_links()
        assert {(lk.source_node_id, lk.dest_node_id) for lk in live} == {
            (p.source, p.dest) for p in links_plan
        }
        assert all(lk.status is LinkStatus.APPLIED for lk in live)
        by_pair = {frozenset((lk.source_node_id, lk.dest_node_id)): lk.link_id for lk in live}
        want = {(r.node, r.name, by_pair[frozenset((r.node, r.next_hop))]) for r in routes_plan}
        have = [r for r in core.store.list_routes() if r.source_node_id != ALL_NODES]
        assert {(r.source_node_id, r.name_key, r.link_id) for r in have} == want
        assert all(r.status is RouteStatus.APPLIED for r in have)


Mesh.TestCase.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)
TestMesh = Mesh.TestCase
