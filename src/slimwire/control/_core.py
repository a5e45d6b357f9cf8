"""The controller's brain, sans-IO: control messages and API calls in, messages to nodes out.

:class:`ControllerCore` owns the :class:`Store` and the set of connected nodes. Every change
(a registration, a subscription announced or withdrawn, an ack, a node lost, a topology edit)
ends in :meth:`reconcile`, which recomputes the wanted links and routes from scratch with the
pure functions of :mod:`._routing`, diffs them against the store and returns one
``ConfigurationCommand`` per node that must change. Recomputing instead of patching keeps every
path (failover, restart, topology edits) on the same, tested code.

Routes are pushed only once the link they use is Applied (acked by the node that dials it):
a node can only bind a route to a connection that exists.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from slimwire._proto import controller_pb2 as cpb
from slimwire._proto import controlplane_pb2 as npb
from slimwire._proto import data_plane_pb2 as dpb
from slimwire.auth import SharedSecretVerifier
from slimwire.control._routing import (
    Announcement,
    LinkPlan,
    RoutePlan,
    Topology,
    choose_gateways,
    plan_links,
    plan_routes,
    segment_graphs,
)
from slimwire.control._store import (
    ALL_NODES,
    ConnDetail,
    LinkRecord,
    LinkStatus,
    NodeRecord,
    RouteRecord,
    RouteStatus,
    Store,
)
from slimwire.errors import AuthError, ControlPlaneError, RegistrationRefused
from slimwire.names import NULL_ID, component_hash

_MASK64 = (1 << 64) - 1

__all__ = ["DEFAULT_DOMAIN", "ControllerCore", "NameKey", "Outbound", "name_key", "name_proto"]

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "default"
"""The domain of a node that registers without one."""

NameKey = tuple[str, str, str, int | None]


def name_key(name: dpb.Name) -> NameKey:
    """The (org, ns, svc, id-or-None) key of a proto ``Name``."""
    s = name.str_name
    enc = name.name
    nid = (enc.name_id.id_0 << 64 | enc.name_id.id_1) if enc.HasField("name_id") else None
    if nid == NULL_ID:
        nid = None
    return (s.str_component_0, s.str_component_1, s.str_component_2, nid)


def name_proto(key: NameKey, out: dpb.Name | None = None) -> dpb.Name:
    """Both forms of a name, as the reference sends them. Components come from the network, so
    this does not insist on what :class:`Name` would (no ``/``, no surrounding spaces)."""
    c0, c1, c2, nid = key
    out = dpb.Name() if out is None else out
    enc = out.name
    enc.component_0, enc.component_1, enc.component_2 = (component_hash(c) for c in (c0, c1, c2))
    nid = NULL_ID if nid is None else nid
    enc.name_id.id_0 = (nid >> 64) & _MASK64
    enc.name_id.id_1 = nid & _MASK64
    s = out.str_name
    s.str_component_0, s.str_component_1, s.str_component_2 = c0, c1, c2
    return out


@dataclass(frozen=True, slots=True)
class Outbound:
    """Send ``message`` on ``node_id``'s control stream."""

    node_id: str
    message: cpb.ControlMessage


def _new_id() -> str:
    return str(uuid.uuid4())


_AUTH_NAMES = {0: "none", 2: "basic", 3: "jwt", 4: "oidc"}


def _client_config(dest: NodeRecord, same_domain: bool, link_id: str) -> tuple[str, str]:
    """(endpoint URL, JSON config) for dialling ``dest``; another domain prefers the node's
    external endpoint, as the reference does.

    A reference node parses this JSON as a ``ServerConnectionConfig`` (``endpoint``,
    ``tls_required``, ``auth_method``) in a reconcile command and as a ``ClientConfig``
    (``endpoint``, ``tls``, and ``link_id``: the id the link is known by on both ends)
    otherwise; neither rejects unknown keys, so we send both forms.
    """
    if not dest.conn_details:
        raise ControlPlaneError(f"node {dest.id} registered no endpoint to dial")
    detail = dest.conn_details[0]
    if not same_domain:
        detail = next((d for d in dest.conn_details if d.external_endpoint), detail)
    host = detail.endpoint if same_domain else (detail.external_endpoint or detail.endpoint)
    if "://" not in host:
        host = ("https://" if detail.tls_required else "http://") + host
    auth: object = _AUTH_NAMES.get(detail.auth_method, "none")
    if detail.auth_method == 1:
        auth = {"spire": {"trust_domain": dest.domain or None}}
    cfg: dict[str, object] = {
        "endpoint": host,
        "link_id": link_id,
        "tls_required": detail.tls_required,
        "auth_method": auth,
        "tls": {"insecure": not detail.tls_required},
    }
    return host, json.dumps(cfg, separators=(",", ":"))


class ControllerCore:
    """The controller's state machine over a :class:`Store` (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        topology: Topology | None = None,
        secrets: Mapping[str, str] | None = None,
        require_credentials: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.topology = topology or Topology()
        self._clock = clock
        for domain, secret in (secrets or {}).items():
            store.set_domain_secret(domain, secret)
        self.require_credentials = (
            bool(secrets) or bool(self._any_secret())
            if require_credentials is None
            else require_credentials
        )
        self.connected: set[str] = set()
        self.gateways: dict[str, str] = {}
        self._inflight: dict[str, str] = {}  # command message id -> node id
        self._routes_sent: set[str] = set()  # route ids pushed and not yet acked

    def _any_secret(self) -> bool:
        return any(self.store.domain_secret(d) for d in self.store.list_domains())

    # -- southbound ------------------------------------------------------------------------

    def verify(self, credentials: str, domain: str, node_id: str) -> None:
        """Check a node's credentials: a shared-secret token signed with its domain's secret
        whose subject is ``<domain>/<node_id>`` (optionally ``_<suffix>``)."""
        if not self.require_credentials:
            return
        if not credentials:
            raise RegistrationRefused("credentials required but not provided")
        secret = self.store.domain_secret(domain)
        if secret is None:
            raise RegistrationRefused(f"no auth configured for domain '{domain}'")
        try:
            claims = SharedSecretVerifier(secret).verify(credentials)
        except AuthError as exc:
            raise RegistrationRefused(f"token verification failed: {exc}") from None
        expected = f"{domain}/{node_id}"
        if claims.subject != expected and not claims.subject.startswith(expected + "_"):
            raise RegistrationRefused(
                f"token identity mismatch: expected '{expected}[_suffix]', got '{claims.subject}'"
            )

    def register(
        self, message_id: str, req: cpb.RegisterNodeRequest, *, verified: bool = False
    ) -> tuple[cpb.ControlMessage, list[Outbound]]:
        """Accept a node (or raise :class:`RegistrationRefused`): its response carries the
        desired state; a reconcile command with the same state follows (it is acked).

        ``verified``: the driver already checked the credentials (a JWT, which needs an async
        verifier), so the shared-secret check is skipped."""
        node_id = req.node_id
        if not node_id:
            raise RegistrationRefused("node_id is required")
        domain = req.domain_name if req.HasField("domain_name") and req.domain_name else ""
        domain = domain or DEFAULT_DOMAIN
        if not verified:
            self.verify(req.credentials, domain, node_id)
        details = tuple(
            ConnDetail(
                d.endpoint,
                d.external_endpoint if d.HasField("external_endpoint") else "",
                d.tls_required,
                int(d.auth_method),
            )
            for d in req.connection_details
        )
        self.store.save_node(NodeRecord(node_id, domain, details))
        self.connected.add(node_id)
        log.info("node %s registered in domain %s", node_id, domain)
        self._sync_announcements(node_id, domain, [r for r in req.routes if not r.link_id])
        # the node starts from what it reported: nothing we sent before is in flight any more
        for r in self.store.list_routes(src=node_id):
            self._routes_sent.discard(r.id)
            if r.status is RouteStatus.APPLIED:
                self.store.set_route_status(r.id, RouteStatus.PENDING)
        out = [o for o in self.reconcile() if o.node_id != node_id]
        full = self._full_state(node_id)
        resp = cpb.ControlMessage(message_id=_new_id())
        rr = resp.register_node_response
        rr.original_message_id = message_id
        rr.success = True
        rr.connections.extend(full.connections_to_create)
        rr.routes.extend(full.routes_to_set)
        out.append(self._command(node_id, full))
        return resp, out

    def _full_state(self, node_id: str) -> cpb.ConfigurationCommand:
        cmd = cpb.ConfigurationCommand(reconcile=True)
        for link in self.store.list_links(src=node_id):
            if link.status is not LinkStatus.APPLIED:
                self.store.set_link_status(link.link_id, LinkStatus.PENDING)
            cmd.connections_to_create.add(link_id=link.link_id, config_data=link.conn_config_data)
        for route in self.store.list_routes(src=node_id, include_deleted=False):
            rlink = self.store.get_link(route.link_id or "")
            if rlink is not None and rlink.status is LinkStatus.APPLIED:
                self._add_route(cmd.routes_to_set, route)
                self._routes_sent.add(route.id)
        return cmd

    def _sync_announcements(
        self, node_id: str, domain: str, routes: Iterable[cpb.Route], *, replace: bool = True
    ) -> None:
        wanted = {name_key(r.name) for r in routes if r.HasField("name")}
        have = {a.name_key: a for a in self.store.list_routes(ALL_NODES, node_id)}
        for key in wanted - have.keys():
            c0, c1, c2, nid = key
            self.store.add_route(
                RouteRecord(
                    "", ALL_NODES, "", node_id, domain, None, (c0, c1, c2), nid, RouteStatus.APPLIED
                )
            )
        if replace:
            for key in have.keys() - wanted:
                self.store.delete_route(have[key].id)

    def handle(self, node_id: str, msg: cpb.ControlMessage) -> list[Outbound]:
        """A message from a registered node's control stream."""
        kind = msg.WhichOneof("payload")
        if kind == "config_command":
            return self._node_command(node_id, msg)
        if kind == "config_command_ack":
            return self._ack(node_id, msg.config_command_ack)
        if kind == "ack":
            self._inflight.pop(msg.ack.original_message_id, None)
            return []
        if kind == "deregister_node_request":
            return self.deregister(node_id, msg.message_id)
        log.debug("ignoring %s from node %s", kind, node_id)
        return []

    def _node_command(self, node_id: str, msg: cpb.ControlMessage) -> list[Outbound]:
        """Subscription changes a node reports: announcements of names it now serves."""
        cmd = msg.config_command
        node = self.store.get_node(node_id)
        domain = node.domain if node else DEFAULT_DOMAIN
        self._sync_announcements(
            node_id, domain, [r for r in cmd.routes_to_set if not r.link_id], replace=False
        )
        have = {a.name_key: a for a in self.store.list_routes(ALL_NODES, node_id)}
        for r in cmd.routes_to_delete:
            if not r.link_id and r.HasField("name") and name_key(r.name) in have:
                self.store.delete_route(have[name_key(r.name)].id)
        ack = cpb.ControlMessage(message_id=_new_id())
        a = ack.config_command_ack
        a.original_message_id = msg.message_id
        for r in (*cmd.routes_to_set, *cmd.routes_to_delete):
            a.routes_status.add(route=r, success=True)
        return [Outbound(node_id, ack), *self.reconcile()]

    def _ack(self, node_id: str, ack: cpb.ConfigurationCommandAck) -> list[Outbound]:
        """Apply each item's result to that item only; then push what became possible."""
        if self._inflight.pop(ack.original_message_id, None) is None:
            log.debug("ack from %s for unknown command %s", node_id, ack.original_message_id)
        for cs in ack.connections_status:
            link = self.store.get_link(cs.link_id)
            if link is None or link.source_node_id != node_id:
                continue
            if link.status is LinkStatus.DELETED:
                continue
            status = LinkStatus.APPLIED if cs.success else LinkStatus.FAILED
            self.store.set_link_status(cs.link_id, status, "" if cs.success else cs.errorMsg)
            if not cs.success:
                log.warning("node %s failed link %s: %s", node_id, cs.link_id, cs.errorMsg)
        routes = {
            (r.name_key, r.link_id): r
            for r in self.store.list_routes(src=node_id)
            if r.source_node_id != ALL_NODES
        }
        for rs in ack.routes_status:
            key = (name_key(rs.route.name), rs.route.link_id if rs.route.link_id else None)
            route = routes.get(key)
            if route is None:
                continue
            self._routes_sent.discard(route.id)
            if route.status is RouteStatus.DELETED:
                self.store.delete_route(route.id)
            elif rs.success:
                self.store.set_route_status(route.id, RouteStatus.APPLIED)
            else:
                self.store.set_route_status(route.id, RouteStatus.FAILED, rs.error_msg)
        return self.reconcile()

    def retry_failed(self) -> list[Outbound]:
        """The reconciler's retry: ask again for every Failed link and route of a connected
        node (a peer that was down may be up now). Called periodically by the driver."""
        cmds: dict[str, cpb.ConfigurationCommand] = {}
        for link in self.store.list_links():
            if link.status is LinkStatus.FAILED and link.source_node_id in self.connected:
                self.store.set_link_status(link.link_id, LinkStatus.PENDING, "retrying")
                cmd = cmds.setdefault(link.source_node_id, cpb.ConfigurationCommand())
                cmd.connections_to_create.add(
                    link_id=link.link_id, config_data=link.conn_config_data
                )
        for route in self.store.list_routes():
            if route.status is RouteStatus.FAILED and route.source_node_id in self.connected:
                self.store.set_route_status(route.id, RouteStatus.PENDING, "retrying")
                self._routes_sent.discard(route.id)
        out = [self._command(n, c) for n, c in sorted(cmds.items())]
        return out + self.reconcile()

    def disconnected(self, node_id: str) -> list[Outbound]:
        """The node's control stream ended: it is not connected; recompute around it."""
        if node_id not in self.connected:
            return []
        self.connected.discard(node_id)
        log.info("node %s disconnected", node_id)
        for mid in [m for m, n in self._inflight.items() if n == node_id]:
            del self._inflight[mid]
        return self.reconcile()

    def deregister(self, node_id: str, message_id: str) -> list[Outbound]:
        self.connected.discard(node_id)
        for r in self.store.list_routes(dst=node_id):
            self.store.delete_route(r.id)
        self.store.delete_node(node_id)
        resp = cpb.ControlMessage(message_id=_new_id())
        resp.deregister_node_response.original_message_id = message_id
        resp.deregister_node_response.success = True
        return [Outbound(node_id, resp), *self.reconcile()]

    # -- the reconciler --------------------------------------------------------------------

    def effective_topology(self) -> Topology:
        if not self.topology.api_managed:
            return self.topology
        return Topology.from_edges({s.name: s.edges for s in self.store.list_segments()})

    def plan(self) -> tuple[frozenset[LinkPlan], list[RoutePlan]]:
        """What the mesh should look like now (pure computation over the store)."""
        nodes = self.store.list_nodes()
        domain_of = {n.id: n.domain for n in nodes}
        by_domain: dict[str, list[str]] = {}
        for n in nodes:
            by_domain.setdefault(n.domain, []).append(n.id)
        connected = self.connected & domain_of.keys()
        graphs = segment_graphs(self.effective_topology(), by_domain)
        self.gateways = choose_gateways(by_domain, connected, self.gateways)
        links = plan_links(graphs, self.gateways, by_domain, connected)
        anns = [
            Announcement(a.name_key, a.dest_node_id, domain_of[a.dest_node_id])
            for a in self.store.announcements()
            if a.dest_node_id in domain_of
        ]
        return links, plan_routes(anns, graphs, self.gateways, by_domain, connected)

    def reconcile(self) -> list[Outbound]:
        links_wanted, routes_wanted = self.plan()
        cmds: dict[str, cpb.ConfigurationCommand] = {}

        def cmd(node: str) -> cpb.ConfigurationCommand:
            return cmds.setdefault(node, cpb.ConfigurationCommand())

        wanted = {frozenset((p.source, p.dest)): p for p in links_wanted}
        live: dict[frozenset[str], LinkRecord] = {}
        for link in self.store.list_links():
            pair = frozenset((link.source_node_id, link.dest_node_id))
            p = wanted.get(pair)
            if p is not None and (p.source, p.dest) == (link.source_node_id, link.dest_node_id):
                live[pair] = link
                continue
            gone = [n for n in (link.source_node_id, link.dest_node_id) if n not in self.connected]
            why = f"node {gone[0]} not connected" if gone else "no longer in the topology"
            self.store.set_link_status(link.link_id, LinkStatus.DELETED, why)
            if link.source_node_id in self.connected:
                cmd(link.source_node_id).connections_to_delete.append(link.link_id)
        for pair, p in sorted(wanted.items(), key=lambda kv: (kv[1].source, kv[1].dest)):
            if pair in live:
                continue
            src, dst = self.store.get_node(p.source), self.store.get_node(p.dest)
            if src is None or dst is None:
                continue
            lid = _new_id()
            try:
                endpoint, cfg = _client_config(dst, src.domain == dst.domain, lid)
            except ControlPlaneError as exc:
                log.warning("cannot link %s -> %s: %s", p.source, p.dest, exc)
                continue
            live[pair] = self.store.add_link(
                LinkRecord(lid, src.id, src.domain, dst.id, dst.domain, endpoint, cfg)
            )
            cmd(src.id).connections_to_create.add(link_id=lid, config_data=cfg)

        # routes: keyed by (node, name, link id)
        want_routes: dict[tuple[str, NameKey, str], RoutePlan] = {}
        for rp in routes_wanted:
            via = live.get(frozenset((rp.node, rp.next_hop)))
            if via is not None:
                want_routes.setdefault((rp.node, rp.name, via.link_id), rp)
        have: dict[tuple[str, NameKey, str], RouteRecord] = {}
        for r in self.store.list_routes(include_deleted=True):
            if r.source_node_id == ALL_NODES:
                continue
            key = (r.source_node_id, r.name_key, r.link_id or "")
            if key in want_routes and r.status is not RouteStatus.DELETED:
                have[key] = r
            elif r.status is RouteStatus.DELETED and r.source_node_id in self.connected:
                continue  # waiting for the node's ack of the delete
            elif r.source_node_id in self.connected and (
                r.id in self._routes_sent or r.status is RouteStatus.APPLIED
            ):
                self.store.set_route_status(r.id, RouteStatus.DELETED)
                self._routes_sent.add(r.id)
                self._add_route(cmd(r.source_node_id).routes_to_delete, r)
            else:
                self._routes_sent.discard(r.id)
                self.store.delete_route(r.id)
        nodes = {n.id: n for n in self.store.list_nodes()}
        for key, rp in want_routes.items():
            if key in have:
                continue
            node, nk, lid = key
            c0, c1, c2, nid = nk
            dest = nodes.get(rp.dest)
            have[key] = self.store.add_route(
                RouteRecord(
                    "",
                    node,
                    nodes[node].domain if node in nodes else "",
                    rp.dest,
                    dest.domain if dest else "",
                    lid,
                    (c0, c1, c2),
                    nid,
                )
            )
        for route in have.values():
            if route.status is not RouteStatus.PENDING or route.id in self._routes_sent:
                continue
            on = self.store.get_link(route.link_id or "")
            if on is None or on.status is not LinkStatus.APPLIED:
                continue
            self._routes_sent.add(route.id)
            self._add_route(cmd(route.source_node_id).routes_to_set, route)
        return [self._command(n, c) for n, c in sorted(cmds.items()) if n in self.connected]

    @staticmethod
    def _add_route(field: object, route: RouteRecord) -> None:
        r = field.add()  # type: ignore[attr-defined]
        name_proto(route.name_key, r.name)
        if route.link_id:
            r.link_id = route.link_id

    def _command(self, node_id: str, command: cpb.ConfigurationCommand) -> Outbound:
        msg = cpb.ControlMessage(message_id=_new_id())
        msg.config_command.CopyFrom(command)
        self._inflight[msg.message_id] = node_id
        return Outbound(node_id, msg)

    # -- northbound ------------------------------------------------------------------------

    def node_entries(self) -> list[npb.NodeEntry]:
        out = []
        for n in self.store.list_nodes():
            e = npb.NodeEntry(
                id=n.id,
                domain=n.domain,
                status=npb.CONNECTED if n.id in self.connected else npb.NOT_CONNECTED,
            )
            for d in n.conn_details:
                c = e.connections.add(
                    endpoint=d.endpoint, tls_required=d.tls_required, auth_method=d.auth_method
                )
                if d.external_endpoint:
                    c.external_endpoint = d.external_endpoint
            out.append(e)
        return out

    def route_entries(self, src: str = "", dst: str = "") -> list[npb.RouteEntry]:
        out = []
        for r in self.store.list_routes(src, dst):
            link = self.store.get_link(r.link_id) if r.link_id else None
            e = npb.RouteEntry(
                id=r.id,
                source_node_id=r.source_node_id,
                dest_node_id=r.dest_node_id,
                dest_endpoint=link.dest_endpoint if link else "",
                conn_config_data=link.conn_config_data if link else "",
                status=npb.RouteStatus.ValueType(int(r.status)),
                status_msg=r.status_msg,
                last_updated=r.last_updated,
                link_id=r.link_id or "",
            )
            self._add_route_name(e, r)
            out.append(e)
        return out

    @staticmethod
    def _add_route_name(entry: npb.RouteEntry, r: RouteRecord) -> None:
        name_proto(r.name_key, entry.name)

    def link_entries(self, src: str = "", dst: str = "") -> list[npb.LinkEntry]:
        return [
            npb.LinkEntry(
                id=f"{lk.link_id}:{lk.source_node_id}:{lk.dest_node_id}",
                link_id=lk.link_id,
                source_node_id=lk.source_node_id,
                dest_node_id=lk.dest_node_id,
                dest_endpoint=lk.dest_endpoint,
                conn_config_data=lk.conn_config_data,
                status=npb.LinkStatus.ValueType(
                    0 if lk.status is LinkStatus.DELETED else int(lk.status)
                ),
                status_msg=lk.status_msg,
                deleted=lk.status is LinkStatus.DELETED,
                last_updated=lk.last_updated,
            )
            for lk in self.store.list_links(src, dst, include_deleted=True)
        ]

    def domains(self) -> list[npb.DomainEntry]:
        return [
            npb.DomainEntry(domain_name=d, nodes=[n for n in ns if n in self.connected])
            for d, ns in self.store.list_domains().items()
        ]

    def add_domain(self, domain: str, secret: str) -> None:
        if not domain:
            raise ControlPlaneError("domain_name is required")
        try:
            SharedSecretVerifier(secret)
        except AuthError as exc:
            raise ControlPlaneError(f"invalid secret for domain '{domain}': {exc}") from None
        self.store.set_domain_secret(domain, secret)
        self.require_credentials = True

    def remove_domain(self, domain: str) -> None:
        if not self.store.remove_domain(domain):
            raise ControlPlaneError(f"domain '{domain}' not found")

    def _api_only(self) -> None:
        if not self.topology.api_managed:
            raise ControlPlaneError(
                "the topology is set in the controller's config; API changes are disabled"
            )

    def segments(self) -> list[npb.SegmentEntry]:
        if not self.topology.api_managed:
            known = self.store.list_domains()
            out = []
            for name, graph in segment_graphs(self.topology, known).items():
                edges = sorted({(a, b) for a, ns in graph.items() for b in ns if a < b})
                e = npb.SegmentEntry(name=name, domains=sorted(graph))
                for a, b in edges:
                    e.edges.add(domain_a=a, domain_b=b)
                out.append(e)
            return out
        out = []
        for s in self.store.list_segments():
            e = npb.SegmentEntry(name=s.name, domains=list(s.domains))
            for a, b in s.edges:
                e.edges.add(domain_a=a, domain_b=b)
            out.append(e)
        return out

    def add_segment(self, name: str) -> None:
        self._api_only()
        if not name:
            raise ControlPlaneError("segment name is required")
        if not self.store.add_segment(name):
            raise ControlPlaneError(f"segment '{name}' exists")

    def remove_segment(self, name: str) -> list[Outbound]:
        self._api_only()
        if not self.store.remove_segment(name):
            raise ControlPlaneError(f"segment '{name}' not found")
        return self.reconcile()

    def add_topology_link(
        self, a: str, b: str, segment: str = ""
    ) -> tuple[list[str], list[Outbound]]:
        self._api_only()
        if not a or not b:
            raise ControlPlaneError("both domains are required")
        self.store.add_segment_link(segment or "default", a, b)
        known = self.store.list_domains()
        warnings = [f"domain '{d}' has no registered node yet" for d in (a, b) if d not in known]
        return warnings, self.reconcile()

    def remove_topology_link(self, a: str, b: str, segment: str = "") -> list[Outbound]:
        self._api_only()
        if not self.store.remove_segment_link(segment or "default", a, b):
            raise ControlPlaneError(f"no topology link {a} <-> {b} in '{segment or 'default'}'")
        return self.reconcile()
