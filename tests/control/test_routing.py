"""Route computation: topology shapes, gateways with failover, and hypothesis properties of the
routes (up-routes form trees, every announcer reachable, only planned links used)."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.control._routing import (
    Announcement,
    LinkPlan,
    RouteDir,
    RoutePlan,
    Topology,
    choose_gateways,
    plan_links,
    plan_routes,
    restrict,
    segment_graphs,
    shortest_path_tree,
)
from slimwire.errors import ConfigError

D = ["d1", "d2", "d3", "d4"]


def _edges(graph: dict[str, frozenset[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, ns in graph.items() for b in ns if a < b}


def test_shapes_from_reference_configs() -> None:
    star = Topology.parse({"links": [{"domain": "d1", "neighbors": ["*"]}]})
    assert _edges(segment_graphs(star, D)["default"]) == {("d1", "d2"), ("d1", "d3"), ("d1", "d4")}
    chain = Topology.parse(
        {"links": [{"domain": f"d{i}", "neighbors": [f"d{i + 1}"]} for i in (1, 2, 3)]}
    )
    assert _edges(segment_graphs(chain, D)["default"]) == {("d1", "d2"), ("d2", "d3"), ("d3", "d4")}
    mesh = Topology.parse({"links": [{"domain": "*", "neighbors": ["*"]}]})
    assert len(_edges(segment_graphs(mesh, D)["default"])) == 6
    segs = Topology.parse(
        {
            "segments": [
                {"name": "s1", "links": [{"domain": "d1", "neighbors": ["d2"]}]},
                {"name": "s2", "links": [{"domain": "d3", "neighbors": ["d4"]}]},
            ]
        }
    )
    g = segment_graphs(segs, D)
    assert _edges(g["s1"]) == {("d1", "d2")}
    assert _edges(g["s2"]) == {("d3", "d4")}
    # unknown domains are ignored until a node of theirs registers
    assert _edges(segment_graphs(chain, ["d1", "d2"])["default"]) == {("d1", "d2")}


def test_domain_template_segments() -> None:
    topo = Topology.parse(
        {
            "segments": [
                {"name": "hub-$domain", "links": [{"domain": "hub", "neighbors": ["$domain"]}]}
            ]
        }
    )
    g = segment_graphs(topo, ["hub", "a", "b"])
    assert set(g) == {"hub-a", "hub-b"}
    assert _edges(g["hub-a"]) == {("a", "hub")}


@pytest.mark.parametrize(
    "raw",
    [
        {"links": [], "segments": []},
        {"links": [{"neighbors": ["a"]}]},
        {"links": [{"domain": "a", "neighbors": "b"}]},
        {"segments": [{"links": []}]},
        "star",
    ],
)
def test_bad_topology_config(raw: object) -> None:
    with pytest.raises(ConfigError):
        Topology.parse(raw)


def test_api_managed_and_from_edges() -> None:
    assert Topology.parse(None).api_managed
    assert Topology.parse({"registration_auth": {}}).api_managed
    t = Topology.from_edges({"default": [("d1", "d2")]})
    assert _edges(segment_graphs(t, D)["default"]) == {("d1", "d2")}


def test_gateway_failover() -> None:
    nodes = {"d1": ["a", "b", "c"], "d2": ["x"]}
    gw = choose_gateways(nodes, {"a", "b", "c", "x"})
    assert gw == {"d1": "a", "d2": "x"}
    assert choose_gateways(nodes, {"a", "b", "c", "x"}, {"d1": "c"})["d1"] == "c"
    assert choose_gateways(nodes, {"b", "c"}, {"d1": "a"}) == {"d1": "b"}


def test_two_domain_routes() -> None:
    nodes = {"d1": ["a1", "a2"], "d2": ["b1"]}
    conn = {"a1", "a2", "b1"}
    graphs = segment_graphs(Topology.from_edges({"default": [("d1", "d2")]}), nodes)
    gw = choose_gateways(nodes, conn)
    links = plan_links(graphs, gw, nodes, conn)
    assert links == {LinkPlan("a1", "b1"), LinkPlan("a2", "a1")}
    anns = [Announcement("n", "b1", "d2"), Announcement("n", "a2", "d1")]
    routes = {(r.node, r.next_hop, r.direction) for r in plan_routes(anns, graphs, gw, nodes, conn)}
    # a1 (gateway of d1) goes up to d2's gateway and down to its local announcer a2;
    # a2 reaches the rest through its gateway; b1 (root) routes down to d1's gateway
    assert routes == {
        ("a1", "b1", RouteDir.UP),
        ("a1", "a2", RouteDir.DOWN),
        ("a2", "a1", RouteDir.UP),
        ("b1", "a1", RouteDir.DOWN),
    }
    # b1 goes away: no routes toward it, the name is rooted at a2 now
    conn2 = {"a1", "a2"}
    gw2 = choose_gateways(nodes, conn2, gw)
    r2 = plan_routes(anns, graphs, gw2, nodes, conn2)
    assert {(r.node, r.next_hop) for r in r2} == {("a1", "a2")}


@st.composite
def _scenarios(
    draw: st.DrawFn,
) -> tuple[dict[str, list[str]], set[str], dict[str, frozenset[str]], list[Announcement]]:
    ndom = draw(st.integers(1, 6))
    domains = [f"d{i}" for i in range(ndom)]
    nodes = {d: [f"{d}n{j}" for j in range(draw(st.integers(1, 3)))] for d in domains}
    all_nodes = [n for ns in nodes.values() for n in ns]
    connected = set(draw(st.lists(st.sampled_from(all_nodes), unique=True)))
    pairs = [(a, b) for a in domains for b in domains if a < b]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    graphs = segment_graphs(Topology.from_edges({"s": edges}), domains)
    dom_of = {n: d for d, ns in nodes.items() for n in ns}
    ann_nodes = draw(st.lists(st.sampled_from(all_nodes), min_size=1, max_size=6))
    anns = [Announcement("name", n, dom_of[n]) for n in ann_nodes]
    return nodes, connected, graphs.get("s", {}), anns


def _reach(start: str, adj: dict[str, set[str]]) -> set[str]:
    seen = {start}
    q = deque([start])
    while q:
        for nxt in adj.get(q.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                q.append(nxt)
    return seen


@settings(max_examples=300, deadline=None)
@given(_scenarios())
def test_route_properties(
    scn: tuple[dict[str, list[str]], set[str], dict[str, frozenset[str]], list[Announcement]],
) -> None:
    nodes, connected, graph, anns = scn
    graphs = {"s": graph}
    gw = choose_gateways(nodes, connected)
    links = plan_links(graphs, gw, nodes, connected)
    routes = plan_routes(anns, graphs, gw, nodes, connected)
    live_anns = [a for a in anns if a.node in connected]
    dom_of = {n: d for d, ns in nodes.items() for n in ns}

    # only connected nodes, never to self, each (node, next) hop has a planned link
    for r in routes:
        assert r.node in connected
        assert r.next_hop in connected
        assert r.node != r.next_hop
        assert any(lk.joins(r.node, r.next_hop) for lk in links), r
    assert len({(r.node, r.next_hop) for r in routes}) == len(routes)
    for lk in links:
        assert lk.source in connected
        assert lk.dest in connected
        assert lk.source != lk.dest
    if not live_anns:
        assert routes == []
        return

    # up-routes form a forest: at most one up hop per node, and following them never loops
    up: dict[str, str] = {}
    for r in routes:
        if r.direction is RouteDir.UP:
            assert r.node not in up
            up[r.node] = r.next_hop
    for start in up:
        seen, here = set(), start
        while here in up:
            assert here not in seen
            seen.add(here)
            here = up[here]

    adj: dict[str, set[str]] = {}
    for r in routes:
        adj.setdefault(r.node, set()).add(r.next_hop)
    root = live_anns[0]
    graph = restrict(graph, gw)
    tree = shortest_path_tree(graph, root.domain) if root.domain in graph else {root.domain: None}
    ann_nodes = {a.node for a in live_anns}
    # every announcer in the root's component is reachable from the root domain's gateway
    from_root_gw = _reach(gw[root.domain], adj)
    for a in live_anns:
        if a.domain in tree:
            assert a.node in from_root_gw
    # every connected node of a domain in the tree reaches some announcer
    for n in connected:
        if dom_of[n] in tree:
            assert _reach(n, adj) & ann_nodes, n


def test_spt_is_bfs_tree() -> None:
    g = segment_graphs(Topology.parse({"links": [{"domain": "*", "neighbors": ["*"]}]}), D)[
        "default"
    ]
    assert shortest_path_tree(g, "d3") == {"d3": None, "d1": "d3", "d2": "d3", "d4": "d3"}
    assert shortest_path_tree({}, "zz") == {"zz": None}


def test_route_plan_is_a_value() -> None:
    r = RoutePlan("a", "n", "b", "b", RouteDir.UP)
    assert r == RoutePlan("a", "n", "b", "b", RouteDir.UP)
