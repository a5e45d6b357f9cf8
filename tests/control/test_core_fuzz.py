"""What nodes send the controller is untrusted: arbitrary bytes and odd-but-valid messages on a
control stream must never break the core (hypothesis), and the core keeps a consistent store."""

from __future__ import annotations

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire._proto import controller_pb2 as cpb
from slimwire.control._core import ControllerCore, name_proto
from slimwire.control._routing import Topology
from slimwire.control._store import ALL_NODES, LinkStatus, Store


def _core() -> ControllerCore:
    core = ControllerCore(Store(), topology=Topology.from_edges({"s": [("d1", "d2")]}))
    for node, dom in (("a", "d1"), ("b", "d2")):
        req = cpb.RegisterNodeRequest(node_id=node, domain_name=dom)
        req.connection_details.add(endpoint=f"{node}:1")
        core.register("m", req)
    return core


_s = st.text(max_size=12)


@st.composite
def _routes(draw: st.DrawFn) -> cpb.Route:
    r = cpb.Route()
    if draw(st.booleans()):
        name_proto(
            (draw(_s), draw(_s), draw(_s), draw(st.none() | st.integers(0, 2**128 - 1))), r.name
        )
    if draw(st.booleans()):
        r.link_id = draw(_s)
    return r


@st.composite
def _messages(draw: st.DrawFn) -> cpb.ControlMessage:
    msg = cpb.ControlMessage(message_id=draw(_s))
    kind = draw(st.sampled_from(["cmd", "ack", "plain_ack", "dereg", "list"]))
    if kind == "cmd":
        c = msg.config_command
        c.routes_to_set.extend(draw(st.lists(_routes(), max_size=3)))
        c.routes_to_delete.extend(draw(st.lists(_routes(), max_size=3)))
        c.connections_to_delete.extend(draw(st.lists(_s, max_size=2)))
    elif kind == "ack":
        a = msg.config_command_ack
        a.original_message_id = draw(_s)
        for lid in draw(st.lists(_s, max_size=3)):
            a.connections_status.add(link_id=lid, success=draw(st.booleans()), errorMsg=draw(_s))
        for r in draw(st.lists(_routes(), max_size=3)):
            a.routes_status.add(route=r, success=draw(st.booleans()))
    elif kind == "plain_ack":
        msg.ack.original_message_id = draw(_s)
    elif kind == "dereg":
        msg.deregister_node_request.node.id = draw(_s)
    else:
        msg.route_list_request.SetInParent()
    return msg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), _messages()), max_size=8))
def test_core_survives_any_valid_message(msgs: list[tuple[str, cpb.ControlMessage]]) -> None:
    core = _core()
    for node, msg in msgs:
        if node in core.connected:
            core.handle(node, msg)
    # invariants: at most one live link per node pair, routes only on known links
    live = core.store.list_links()
    assert len({frozenset((lk.source_node_id, lk.dest_node_id)) for lk in live}) == len(live)
    for r in core.store.list_routes():
        if r.source_node_id != ALL_NODES:
            assert core.store.get_link(r.link_id or "") is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_core_survives_any_bytes(raw: bytes) -> None:
    core = _core()
    try:
        msg = cpb.ControlMessage.FromString(raw)
    except DecodeError:
        return
    core.handle("a", msg)


def test_failed_link_ack_marks_only_that_link() -> None:
    core = _core()
    (link,) = core.store.list_links()
    ack = cpb.ControlMessage(message_id="x")
    ack.config_command_ack.connections_status.add(
        link_id=link.link_id, success=False, errorMsg="refused"
    )
    ack.config_command_ack.connections_status.add(link_id="unknown", success=True)
    core.handle(link.source_node_id, ack)
    got = core.store.get_link(link.link_id)
    assert got is not None
    assert (got.status, got.status_msg) == (LinkStatus.FAILED, "refused")
    assert len(core.store.list_links(include_deleted=True)) == 1


_names = st.text(max_size=10)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "add_domain",
                    "remove_domain",
                    "add_segment",
                    "remove_segment",
                    "add_link",
                    "rm_link",
                ]
            ),
            _names,
            _names,
            st.text(max_size=40),
        ),
        max_size=10,
    )
)
def test_northbound_operations_fail_only_cleanly(ops: list[tuple[str, str, str, str]]) -> None:
    """Whatever an operator sends, the core answers or raises ControlPlaneError, and the
    listings stay consistent with the store."""
    from slimwire.errors import ControlPlaneError

    core = ControllerCore(Store())
    for op, a, b, secret in ops:
        try:
            if op == "add_domain":
                core.add_domain(a, secret)
            elif op == "remove_domain":
                core.remove_domain(a)
            elif op == "add_segment":
                core.add_segment(a)
            elif op == "remove_segment":
                core.remove_segment(a)
            elif op == "add_link":
                core.add_topology_link(a, b, secret[:5])
            else:
                core.remove_topology_link(a, b, secret[:5])
        except ControlPlaneError:
            pass
    domains = {d.domain_name for d in core.domains()}
    assert domains == set(core.store.list_domains())
    for seg in core.segments():
        for e in seg.edges:
            assert e.domain_a < e.domain_b
    core.node_entries()
    core.route_entries()
    core.link_entries()
