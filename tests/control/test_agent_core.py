"""The node agent's sans-IO core: registration, plans from commands (bad items fail alone),
per-item acks, reconcile, announcements and paging; hypothesis on what the network feeds it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire._proto import controller_pb2 as cpb
from slimwire.control._agent import AgentCore, AppliedRoute
from slimwire.control._core import name_key, name_proto
from slimwire.control._store import ConnDetail
from tests.control._fake import FakeConn

N1 = ("org", "ns", "a", None)
N2 = ("org", "ns", "b", 7)


def _route(name: tuple[str, str, str, int | None], link: str = "") -> cpb.Route:
    r = cpb.Route()
    r.name.CopyFrom(name_proto(name))  # type: ignore[arg-type]
    if link:
        r.link_id = link
    return r


def test_register_message() -> None:
    core = AgentCore("n1", "d1", (ConnDetail("10.0.0.1:46357", "pub:443", True, 2),))
    core.managed_routes.add(AppliedRoute(N2, "L1"))
    conns = [FakeConn(3, 1, "http://x:1", "L1", "peer", True)]
    msg = core.register("tok", conns, {N1})
    req = msg.register_node_request
    assert msg.message_id
    assert req.node_id == "n1"
    assert req.domain_name == "d1"
    assert req.credentials == "tok"
    (d,) = req.connection_details
    assert (d.endpoint, d.external_endpoint, d.tls_required, d.auth_method) == (
        "10.0.0.1:46357",
        "pub:443",
        True,
        cpb.AUTH_METHOD_BASIC,
    )
    (c,) = req.connections
    assert (c.id, c.link_id, c.peer_node_id, c.direction) == (3, "L1", "peer", 0)
    assert json.loads(c.config_data) == {"endpoint": "http://x:1"}
    assert [(name_key(r.name), r.link_id) for r in req.routes] == [(N1, ""), (N2, "L1")]
    assert core.announced == {N1}
    assert not AgentCore("n2").register("", [], []).register_node_request.HasField("domain_name")


def test_plan_and_ack_per_item() -> None:
    core = AgentCore("n1")
    cmd = cpb.ConfigurationCommand()
    cmd.connections_to_create.add(
        link_id="L1", config_data='{"endpoint": "http://h:1", "link_id": "L1"}'
    )
    cmd.connections_to_create.add(link_id="L2", config_data="{not json")
    cmd.connections_to_create.add(link_id="L3", config_data='{"endpoint": "ftp://h"}')
    cmd.connections_to_create.add(link_id="", config_data='{"endpoint": "http://h:2"}')
    cmd.routes_to_set.extend([_route(N1, "L1"), _route(N2), cpb.Route(link_id="L1")])
    plan = core.plan("m1", cmd)
    (l1, l2, l3, l4) = plan.create
    assert l1[1] is not None
    assert l1[1].endpoint == "http://h:1"
    assert not l1[2]
    assert l2[1] is None
    assert "invalid config_data" in l2[2]
    assert l3[1] is None
    assert "invalid config_data" in l3[2]
    assert l4[1] is None
    assert l4[2] == "link_id is required"
    good, no_link, no_name = plan.set_routes
    assert good.key == AppliedRoute(N1, "L1")
    assert no_link.key is None
    assert no_link.error == "route has no link_id"
    assert no_name.key is None
    assert no_name.error == "route has no name"
    ack = core.ack(
        plan,
        {"L1": None, "L2": l2[2], "L3": l3[2], "": l4[2]},
        {id(good): None, id(no_link): no_link.error, id(no_name): no_name.error},
    ).config_command_ack
    assert ack.original_message_id == "m1"
    assert [(s.link_id, s.success) for s in ack.connections_status] == [
        ("L1", True),
        ("L2", False),
        ("L3", False),
        ("", False),
    ]
    assert [s.success for s in ack.routes_status] == [True, False, False]
    assert ack.routes_status[1].error_msg == "route has no link_id"
    assert core.managed_links == {"L1"}
    assert core.managed_routes == {AppliedRoute(N1, "L1")}
    # an item with no reported result is acked as failed, not silently as ok
    plan2 = core.plan("m2", cmd)
    assert not any(s.success for s in core.ack(plan2, {}, {}).config_command_ack.connections_status)


def test_reconcile_removes_what_is_not_listed() -> None:
    core = AgentCore("n1", managed_links={"L1", "L2"})
    core.managed_routes = {AppliedRoute(N1, "L1"), AppliedRoute(N2, "L2")}
    cmd = cpb.ConfigurationCommand(reconcile=True)
    cmd.connections_to_create.add(link_id="L1", config_data='{"endpoint": "http://h:1"}')
    cmd.routes_to_set.append(_route(N1, "L1"))
    plan = core.plan("m", cmd)
    assert plan.delete_links == ("L2",)
    assert [c.key for c in plan.delete_routes] == [AppliedRoute(N2, "L2")]
    results = {id(c): None for c in (*plan.set_routes, *plan.delete_routes)}
    core.ack(plan, {"L1": None}, results)  # type: ignore[arg-type]
    assert core.managed_links == {"L1"}
    assert core.managed_routes == {AppliedRoute(N1, "L1")}


def test_registration_result() -> None:
    core = AgentCore("n1")
    msg = cpb.ControlMessage(message_id="x")
    msg.register_node_response.success = True
    msg.register_node_response.connections.add(
        link_id="L1", config_data='{"endpoint": "http://h:1"}'
    )
    msg.register_node_response.routes.append(_route(N1, "L1"))
    plan = core.registration_result(msg)
    assert [c[0] for c in plan.create] == ["L1"]
    assert plan.set_routes[0].key == AppliedRoute(N1, "L1")
    msg.register_node_response.success = False
    import pytest

    from slimwire.errors import ControlPlaneError, RegistrationRefused

    with pytest.raises(RegistrationRefused):
        core.registration_result(msg)
    with pytest.raises(ControlPlaneError):
        core.registration_result(cpb.ControlMessage())


def test_names_changed_and_pages() -> None:
    core = AgentCore("n1")
    assert core.names_changed(set()) is None
    msg = core.names_changed({N1, N2})
    assert msg is not None
    assert {name_key(r.name) for r in msg.config_command.routes_to_set} == {N1, N2}
    msg = core.names_changed({N2})
    assert msg is not None
    assert [name_key(r.name) for r in msg.config_command.routes_to_delete] == [N1]
    assert not msg.config_command.routes_to_set
    entries = [cpb.ConnectionEntry(id=i) for i in range(250)]
    pages = core.list_pages("connection_list_response", "orig", entries)
    assert [len(p.connection_list_response.entries) for p in pages] == [100, 100, 50]
    assert [p.connection_list_response.done for p in pages] == [False, False, True]
    assert all(p.connection_list_response.original_message_id == "orig" for p in pages)
    (empty,) = core.list_pages("route_list_response", "o", [])
    assert empty.route_list_response.done


_text = st.text(max_size=40)
_names = st.builds(
    lambda a, b, c, i: cpb.Route(link_id=i) if not a else _route((a, b or "x", c or "y", None), i),
    st.text(alphabet="abc/ ", max_size=4),
    _text,
    _text,
    _text,
)


@settings(max_examples=200, deadline=None)
@given(
    creates=st.lists(st.tuples(_text, st.one_of(_text, st.just('{"endpoint": "http://h:1"}')))),
    sets=st.lists(_names, max_size=4),
    deletes=st.lists(_names, max_size=4),
    drop=st.lists(_text, max_size=3),
    reconcile=st.booleans(),
)
def test_plan_never_raises(creates, sets, deletes, drop, reconcile) -> None:  # type: ignore[no-untyped-def]
    cmd = cpb.ConfigurationCommand(reconcile=reconcile, connections_to_delete=drop)
    for lid, data in creates:
        cmd.connections_to_create.add(link_id=lid, config_data=data)
    cmd.routes_to_set.extend(sets)
    cmd.routes_to_delete.extend(deletes)
    core = AgentCore("n")
    plan = core.plan("m", cmd)
    assert len(plan.create) == len(creates)
    assert len(plan.set_routes) == len(sets)
    ack = core.ack(plan, {}, {}).config_command_ack
    assert len(ack.connections_status) == len(creates)
    assert len(ack.routes_status) == len(sets) + len(plan.delete_routes)


def test_both_reference_config_forms() -> None:
    """The reference sends ServerConnectionConfig-shaped JSON in reconcile commands and
    ClientConfig-shaped JSON otherwise; the agent reads both."""
    core = AgentCore("n1")
    cmd = cpb.ConfigurationCommand()
    server_form = {"endpoint": "https://h:1", "tls_required": True, "auth_method": "none"}
    client_form = {"endpoint": "http://h:2", "tls": {"insecure": True}, "link_id": "L2"}
    cmd.connections_to_create.add(link_id="L1", config_data=json.dumps(server_form))
    cmd.connections_to_create.add(link_id="L2", config_data=json.dumps(client_form))
    (_, c1, e1), (_, c2, e2) = core.plan("m", cmd).create
    assert c1 is not None
    assert c2 is not None
    assert (e1, e2) == ("", "")
    assert (c1.endpoint, c1.tls.insecure) == ("https://h:1", False)
    assert (c2.endpoint, c2.tls.insecure) == ("http://h:2", True)
