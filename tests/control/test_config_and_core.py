"""The controller's YAML config (the reference's shape) and the core driven without sockets:
a config-managed chain of three domains, every command acked, gives the expected links and
routes; config-managed topologies refuse API edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimwire._proto import controller_pb2 as cpb
from slimwire.control._config import load_controller_config, parse_endpoint
from slimwire.control._core import ControllerCore, Outbound, name_proto
from slimwire.control._store import ALL_NODES, LinkStatus, RouteStatus, Store
from slimwire.errors import ConfigError, ControlPlaneError

CHAIN = """
northbound:
  endpoint: "127.0.0.1:6051"
  basic_auth: {username: op, password: pw}
southbound: [{endpoint: "127.0.0.1:6052"}]
database: {type: in_memory}
topology:
  links:
    - domain: d1
      neighbors: [d2]
    - domain: d2
      neighbors: [d3]
  registration_auth:
    type: shared_secret
    secrets: {d1: "0123456789abcdef0123456789abcdef"}
tracing: {log_level: debug}
"""


def test_reference_config_shape(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(CHAIN)
    cfg = load_controller_config(f)
    assert cfg.northbound == ("127.0.0.1", 6051)
    assert cfg.southbound == ("127.0.0.1", 6052)
    assert cfg.database == ":memory:"
    assert cfg.basic_auth == ("op", "pw")
    assert cfg.require_credentials is True
    assert dict(cfg.secrets) == {"d1": "0123456789abcdef0123456789abcdef"}
    assert not cfg.topology.api_managed
    f.write_text("database: {type: sqlite, path: /tmp/x.db}\n")
    cfg = load_controller_config(f)
    assert cfg.database == "/tmp/x.db"
    assert cfg.topology.api_managed
    assert cfg.require_credentials is None


@pytest.mark.parametrize(
    "text",
    [
        "database: {type: sqlite}\n",
        "northbound: {endpoint: nowhere}\n",
        "topology: {registration_auth: {type: spire}}\n",
        "topology: {links: [], segments: []}\n",
        "[1, 2]\n",
        "a: [\n",
    ],
)
def test_bad_configs(tmp_path: Path, text: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError):
        load_controller_config(f)


def test_parse_endpoint() -> None:
    assert parse_endpoint("[::1]:5", "x") == ("::1", 5)
    assert parse_endpoint(":5", "x") == ("0.0.0.0", 5)
    with pytest.raises(ConfigError):
        parse_endpoint("h:99999", "x")


def _register(core: ControllerCore, node: str, domain: str) -> list[Outbound]:
    req = cpb.RegisterNodeRequest(node_id=node, domain_name=domain)
    req.connection_details.add(endpoint=f"{node}:1")
    _, out = core.register("r-" + node, req)
    return out


def _ack_all(core: ControllerCore, pending: list[Outbound]) -> None:
    """Play every node: ack each command item as applied, until nothing new is sent."""
    while pending:
        out = pending.pop(0)
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


def test_chain_of_three_domains_without_sockets(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(CHAIN)
    core = ControllerCore(Store(), topology=load_controller_config(f).topology)
    pending: list[Outbound] = []
    for node, dom in (("n1", "d1"), ("n2", "d2"), ("n3", "d3")):
        pending += _register(core, node, dom)
    _ack_all(core, pending)
    links = {(lk.source_node_id, lk.dest_node_id): lk for lk in core.store.list_links()}
    assert set(links) == {("n1", "n2"), ("n2", "n3")}
    assert all(lk.status is LinkStatus.APPLIED for lk in links.values())
    # n3 announces a name: n2 routes to n3, n1 routes to n2 (multi-hop through d2)
    ann = cpb.ControlMessage(message_id="s")
    ann.config_command.routes_to_set.add().name.CopyFrom(name_proto(("o", "n", "s", None)))
    pending = core.handle("n3", ann)
    _ack_all(core, pending)
    routes = {
        (r.source_node_id, r.link_id, r.status)
        for r in core.store.list_routes()
        if r.source_node_id != ALL_NODES
    }
    assert routes == {
        ("n1", links["n1", "n2"].link_id, RouteStatus.APPLIED),
        ("n2", links["n2", "n3"].link_id, RouteStatus.APPLIED),
    }
    # the middle node goes away: both links go, both routes go (nothing left to route over)
    _ack_all(core, core.disconnected("n2"))
    assert core.store.list_links() == []
    assert [r for r in core.store.list_routes() if r.source_node_id != ALL_NODES] == []
    # config-managed: the API may not edit the topology, but lists the configured segment
    with pytest.raises(ControlPlaneError, match="disabled"):
        core.add_topology_link("d1", "d3")
    (seg,) = core.segments()
    assert [(e.domain_a, e.domain_b) for e in seg.edges] == [("d1", "d2"), ("d2", "d3")]


def test_failed_items_are_retried() -> None:
    """A link whose dial failed (the peer was down) is asked for again by the reconciler tick,
    and a failed route goes back to pending and is pushed again once its link is applied."""
    core = ControllerCore(Store(), topology=load_topology())
    pending = _register(core, "n1", "d1") + _register(core, "n2", "d2")
    cmd = next(o for o in pending if o.message.config_command.connections_to_create)
    (conn,) = cmd.message.config_command.connections_to_create
    nack = cpb.ControlMessage(message_id="x")
    nack.config_command_ack.original_message_id = cmd.message.message_id
    nack.config_command_ack.connections_status.add(
        link_id=conn.link_id, success=False, errorMsg="refused"
    )
    core.handle(cmd.node_id, nack)
    assert core.store.get_link(conn.link_id).status is LinkStatus.FAILED  # type: ignore[union-attr]
    again = core.retry_failed()
    (retry,) = [o for o in again if o.message.config_command.connections_to_create]
    assert retry.node_id == cmd.node_id
    assert retry.message.config_command.connections_to_create[0].link_id == conn.link_id
    assert core.store.get_link(conn.link_id).status is LinkStatus.PENDING  # type: ignore[union-attr]
    _ack_all(core, again)
    assert core.store.get_link(conn.link_id).status is LinkStatus.APPLIED  # type: ignore[union-attr]
    # a route the node could not bind: failed, then pushed again by the retry
    ann = cpb.ControlMessage(message_id="s")
    ann.config_command.routes_to_set.add().name.CopyFrom(name_proto(("o", "n", "s", None)))
    out = core.handle("n2", ann)
    (push,) = [o for o in out if o.message.config_command.routes_to_set]
    assert push.node_id == "n1"
    nack = cpb.ControlMessage(message_id="y")
    nack.config_command_ack.original_message_id = push.message.message_id
    nack.config_command_ack.routes_status.add(
        route=push.message.config_command.routes_to_set[0], success=False, error_msg="later"
    )
    core.handle("n1", nack)
    assert [r.status for r in core.store.list_routes(src="n1")] == [RouteStatus.FAILED]
    again = core.retry_failed()
    assert [o.node_id for o in again if o.message.config_command.routes_to_set] == ["n1"]
    _ack_all(core, again)
    assert [r.status for r in core.store.list_routes(src="n1")] == [RouteStatus.APPLIED]


def load_topology():  # type: ignore[no-untyped-def]
    from slimwire.control._routing import Topology

    return Topology.from_edges({"default": [("d1", "d2")]})
