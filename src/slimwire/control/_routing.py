"""Route computation: pure functions from (topology, nodes, announcements) to links and routes.

Nothing here touches the store or the network, so the controller can recompute everything from
scratch after any change (a name announced, a node gone, a topology link added) and diff the
result against what it stored: that keeps the logic small and makes every property testable with
hypothesis (the routes of a name form trees, every announcer is reachable, routes only use planned
links).

The model, after the reference (``route_service/spt.rs``, ``routes.rs``, ``links.rs``):

* Domains form one undirected graph per topology *segment*; segments isolate groups of domains.
* Each domain has one *gateway* node that holds its inter-domain links; the other nodes of the
  domain link to it. When the gateway goes away another connected node of the domain takes over.
* For a name, each segment's shortest-path tree is rooted at the domain of the first node that
  announced the name (among the segment's domains). Gateways of other domains route *up* toward
  the root; the gateways on the path from the root to every later announcer route *down* toward
  it; inside a domain, nodes route to their gateway and the gateway routes to local announcers.

Dijkstra over unit weights is a breadth-first search; neighbours are visited in sorted order so
the same input always gives the same tree.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slimwire.errors import ConfigError

__all__ = [
    "Adjacency",
    "Announcement",
    "Graph",
    "LinkPlan",
    "RouteDir",
    "RoutePlan",
    "SegmentSpec",
    "Topology",
    "choose_gateways",
    "plan_links",
    "plan_routes",
    "restrict",
    "segment_graphs",
    "shortest_path_tree",
]

Graph = Mapping[str, frozenset[str]]
"""An undirected domain graph: domain -> neighbours (symmetric)."""

_TEMPLATE = "$domain"


@dataclass(frozen=True, slots=True)
class Adjacency:
    """``domain`` links to each of ``neighbors``; ``*`` means every known domain."""

    domain: str
    neighbors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    name: str
    links: tuple[Adjacency, ...]

    @property
    def is_template(self) -> bool:
        return any(
            _TEMPLATE in a.domain or any(_TEMPLATE in n for n in a.neighbors) for a in self.links
        )


@dataclass(frozen=True, slots=True)
class Topology:
    """The configured topology; no segments means API-managed (segments live in the store)."""

    segments: tuple[SegmentSpec, ...] = ()

    @property
    def api_managed(self) -> bool:
        return not self.segments

    @classmethod
    def parse(cls, raw: object) -> Topology:
        """Read the reference's ``topology:`` section (``links`` or ``segments``, not both)."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("topology: expected a mapping")
        links, segments = raw.get("links"), raw.get("segments")
        if links is not None and segments is not None:
            raise ConfigError("topology: 'links' and 'segments' are mutually exclusive")
        if links:
            return cls((SegmentSpec("default", _parse_links(links, "topology.links")),))
        if segments:
            if not isinstance(segments, list):
                raise ConfigError("topology.segments: expected a list")
            out = []
            for i, seg in enumerate(segments):
                where = f"topology.segments[{i}]"
                if not isinstance(seg, Mapping) or not isinstance(seg.get("name"), str):
                    raise ConfigError(f"{where}: expected a mapping with a name")
                out.append(SegmentSpec(seg["name"], _parse_links(seg.get("links"), where)))
            return cls(tuple(out))
        return cls()

    @classmethod
    def from_edges(cls, segments: Mapping[str, Iterable[tuple[str, str]]]) -> Topology:
        """API-managed segments (name -> domain pairs) as a topology."""
        return cls(
            tuple(
                SegmentSpec(name, tuple(Adjacency(a, (b,)) for a, b in edges))
                for name, edges in segments.items()
            )
        )


def _parse_links(raw: object, where: str) -> tuple[Adjacency, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of {{domain, neighbors}}")
    out = []
    for i, entry in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("domain"), str):
            raise ConfigError(f"{w}: expected a mapping with a domain")
        neighbors = entry.get("neighbors", [])
        if not isinstance(neighbors, list) or not all(isinstance(n, str) for n in neighbors):
            raise ConfigError(f"{w}.neighbors: expected a list of domain names")
        out.append(Adjacency(entry["domain"], tuple(neighbors)))
    return tuple(out)


def _expand(spec: SegmentSpec, known: Sequence[str]) -> list[SegmentSpec]:
    """A ``$domain`` segment becomes one segment per known domain it does not name."""
    if not spec.is_template:
        return [spec]
    explicit = {
        d for a in spec.links for d in (a.domain, *a.neighbors) if d != "*" and _TEMPLATE not in d
    }
    out = []
    for domain in known:
        if domain in explicit:
            continue
        links = tuple(
            Adjacency(
                a.domain.replace(_TEMPLATE, domain),
                tuple(n.replace(_TEMPLATE, domain) for n in a.neighbors),
            )
            for a in spec.links
        )
        out.append(SegmentSpec(spec.name.replace(_TEMPLATE, domain), links))
    return out


def segment_graphs(topology: Topology, domains: Collection[str]) -> dict[str, Graph]:
    """One graph per (expanded) segment over the known ``domains``; unknown names are ignored."""
    known = sorted(set(domains))
    graphs: dict[str, Graph] = {}
    for spec in topology.segments:
        for seg in _expand(spec, known):
            adj: dict[str, set[str]] = {}
            for entry in seg.links:
                sources = known if entry.domain == "*" else [d for d in known if d == entry.domain]
                for src in sources:
                    for pattern in entry.neighbors:
                        targets = known if pattern == "*" else [d for d in known if d == pattern]
                        for dst in targets:
                            if dst != src:
                                adj.setdefault(src, set()).add(dst)
                                adj.setdefault(dst, set()).add(src)
            merged = dict(graphs.get(seg.name, {}))
            for d, ns in adj.items():
                merged[d] = merged.get(d, frozenset()) | frozenset(ns)
            graphs[seg.name] = merged
    return graphs


def shortest_path_tree(graph: Graph, root: str) -> dict[str, str | None]:
    """Parent of each domain reachable from ``root`` (``None`` for the root itself)."""
    if root not in graph:
        return {root: None}
    parents: dict[str, str | None] = {root: None}
    queue = deque([root])
    while queue:
        here = queue.popleft()
        for nxt in sorted(graph.get(here, ())):
            if nxt not in parents:
                parents[nxt] = here
                queue.append(nxt)
    return parents


def restrict(graph: Graph, live: Collection[str]) -> dict[str, frozenset[str]]:
    """The subgraph over the ``live`` domains."""
    return {d: ns & frozenset(live) for d, ns in graph.items() if d in live}


def choose_gateways(
    nodes_by_domain: Mapping[str, Sequence[str]],
    connected: Collection[str],
    previous: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """One connected node per domain; a still-connected previous gateway keeps the role."""
    previous = previous or {}
    out: dict[str, str] = {}
    for domain, nodes in nodes_by_domain.items():
        live = sorted(n for n in nodes if n in connected)
        if not live:
            continue
        prev = previous.get(domain)
        out[domain] = prev if prev in live else live[0]
    return out


@dataclass(frozen=True, slots=True, order=True)
class LinkPlan:
    """``source`` dials ``dest``."""

    source: str
    dest: str

    def joins(self, a: str, b: str) -> bool:
        return {self.source, self.dest} == {a, b}


def plan_links(
    graphs: Mapping[str, Graph],
    gateways: Mapping[str, str],
    nodes_by_domain: Mapping[str, Sequence[str]],
    connected: Collection[str],
) -> frozenset[LinkPlan]:
    """Inter-domain links between the gateways of adjacent domains (the smaller domain name
    dials) and intra-domain links from every other connected node to its gateway."""
    links: set[LinkPlan] = set()
    for graph in graphs.values():
        for a, neighbours in graph.items():
            for b in neighbours:
                if a < b and a in gateways and b in gateways:
                    links.add(LinkPlan(gateways[a], gateways[b]))
    for domain, nodes in nodes_by_domain.items():
        gw = gateways.get(domain)
        if gw is None:
            continue
        for node in nodes:
            if node != gw and node in connected:
                links.add(LinkPlan(node, gw))
    return frozenset(links)


class RouteDir(enum.Enum):
    UP = "up"
    """Toward the root announcer (or, inside a domain, toward its gateway)."""
    DOWN = "down"
    """From the root toward a later announcer."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """``node`` (in ``domain``) has a local subscriber for ``name``; order of announcement
    matters (the first announcer roots the trees)."""

    name: Hashable
    node: str
    domain: str


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """At ``node``, send ``name`` to ``next_hop`` (over their link), toward ``dest``."""

    node: str
    name: Any
    next_hop: str
    dest: str
    direction: RouteDir


def plan_routes(
    announcements: Sequence[Announcement],
    graphs: Mapping[str, Graph],
    gateways: Mapping[str, str],
    nodes_by_domain: Mapping[str, Sequence[str]],
    connected: Collection[str],
) -> list[RoutePlan]:
    """Every route each node needs so that publishes for an announced name reach announcers.

    Only connected nodes appear; announcements of other nodes are ignored. The output is
    deterministic and free of duplicates per (node, name, next_hop).
    """
    by_name: dict[Hashable, list[Announcement]] = {}
    for ann in announcements:
        if ann.node in connected:
            lst = by_name.setdefault(ann.name, [])
            if all(a.node != ann.node for a in lst):
                lst.append(ann)
    out: list[RoutePlan] = []
    seen: set[tuple[str, Hashable, str]] = set()

    def add(node: str, name: Hashable, nxt: str, dest: str, d: RouteDir) -> None:
        if node == nxt or (node, name, nxt) in seen:
            return
        seen.add((node, name, nxt))
        out.append(RoutePlan(node, name, nxt, dest, d))

    for name, anns in by_name.items():
        first = anns[0]
        # Inside a domain: the gateway reaches each local announcer, the others reach it.
        in_tree: set[str] = {a.domain for a in anns}
        for full in graphs.values():
            # a domain without a connected node cannot carry traffic: route around it
            graph = restrict(full, gateways)
            roots = [a for a in anns if a.domain in graph]
            if not roots:
                continue
            root = roots[0]
            tree = shortest_path_tree(graph, root.domain)
            in_tree.update(tree)
            for domain, parent in sorted(tree.items()):
                if parent is not None and domain in gateways and parent in gateways:
                    add(gateways[domain], name, gateways[parent], root.node, RouteDir.UP)
            for ann in roots[1:]:
                here = ann.domain
                while here in tree and tree[here] is not None:
                    parent = tree[here]
                    assert parent is not None
                    if here in gateways and parent in gateways:
                        add(gateways[parent], name, gateways[here], ann.node, RouteDir.DOWN)
                    here = parent
        for domain in sorted(in_tree):
            gw = gateways.get(domain)
            if gw is None:
                continue
            local = [a for a in anns if a.domain == domain]
            for ann in local:
                add(gw, name, ann.node, ann.node, RouteDir.DOWN)
            dest = local[0].node if local else first.node
            for node in sorted(nodes_by_domain.get(domain, ())):
                if node != gw and node in connected and node != first.node:
                    add(node, name, gw, dest, RouteDir.UP)
    return out
