"""The node agent: what a node runs to be managed by a controller.

:class:`AgentCore` is sans-IO. It builds the ``RegisterNodeRequest`` (endpoints, connections,
local names, credentials), turns each ``ConfigurationCommand`` into a :class:`Plan` of link and
route changes (a bad item becomes a failed item, never an exception), builds the per-item
``ConfigurationCommandAck`` from the results, and turns subscription changes into
``routes_to_set`` / ``routes_to_delete`` announcements.

:class:`Agent` drives it for a node over :class:`NodePort`: dial the controller, register first,
apply what it is told, report what changes, and reconnect with exponential backoff (registering
again, so the controller resends the desired state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl as _ssl
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import DecodeError

from slimwire._proto import controller_pb2 as cpb
from slimwire._tasks import BackgroundTask
from slimwire.config import ClientConfig
from slimwire.control._controller import CONTROLLER_SERVICE
from slimwire.control._core import NameKey, name_key, name_proto
from slimwire.control._store import METRICS_KEY, ConnDetail
from slimwire.errors import (
    ConfigError,
    ControlPlaneError,
    GrpcError,
    RegistrationRefused,
    SlimwireError,
)
from slimwire.transport import Server, Status, Stream, open_stream, start_server

__all__ = [
    "Agent",
    "AgentCore",
    "AppliedRoute",
    "NodeConnection",
    "NodePort",
    "Plan",
    "RouteChange",
]

log = logging.getLogger(__name__)

PAGE_SIZE = 100


class NodeConnection(Protocol):
    """What the agent reads from a node's connection table (``ConnInfo`` fits)."""

    @property
    def conn_id(self) -> int: ...
    @property
    def conn_type(self) -> int: ...
    @property
    def remote(self) -> str: ...
    @property
    def link_id(self) -> str: ...
    @property
    def peer_node_id(self) -> str: ...
    @property
    def outbound(self) -> bool: ...


class NodePort(Protocol):
    """The node operations the agent needs.

    ``add_link``, ``connections`` exist on :class:`slimwire.dataplane.Node`; ``remove_link``,
    ``set_route``, ``delete_route`` and ``local_names`` are what it must add (see the report).
    """

    @property
    def node_id(self) -> str: ...

    def connections(self) -> Sequence[NodeConnection]: ...

    async def add_link(
        self, url: str, *, connection_type: str = ..., link_id: str | None = ...
    ) -> int:
        """Dial ``url`` as a link with id ``link_id`` (kept and re-dialled)."""

    async def remove_link(self, link_id: str) -> bool:
        """Close and forget the link; False if there is none."""

    async def set_route(self, name: NameKey, link_id: str) -> None:
        """Forward ``name`` over the connection of ``link_id``; raise if there is none."""

    async def delete_route(self, name: NameKey, link_id: str) -> None:
        """Undo :meth:`set_route`; raise if the route is unknown."""

    def local_names(self) -> set[NameKey]:
        """The names with a local (app) subscriber on this node."""


@dataclass(frozen=True, slots=True)
class AppliedRoute:
    name: NameKey
    link_id: str


@dataclass(frozen=True, slots=True)
class RouteChange:
    route: cpb.Route
    key: AppliedRoute | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one command asks: links to dial (with parsed configs), links to drop, routes to set
    and delete. Items that could not be understood carry their error and are acked as failed."""

    message_id: str
    create: tuple[tuple[str, ClientConfig | None, str], ...] = ()
    delete_links: tuple[str, ...] = ()
    set_routes: tuple[RouteChange, ...] = ()
    delete_routes: tuple[RouteChange, ...] = ()


_KEEP = ("endpoint", "tls", "headers", "connection_type", "require_header_mac", "origin")


def _client_json(raw: object) -> object:
    """Read a controller's link config, in either form the reference sends: a
    ``ServerConnectionConfig`` (``tls_required``, ``auth_method``) or a ``ClientConfig``."""
    if not isinstance(raw, dict):
        return raw
    out = {k: v for k, v in raw.items() if k in _KEEP}
    if "tls" not in out and "tls_required" in raw:
        out["tls"] = {"insecure": not raw["tls_required"]}
    return out


@dataclass
class AgentCore:
    """The agent's protocol state (sans-IO; see the module docstring)."""

    node_id: str
    domain: str = ""
    endpoints: tuple[ConnDetail, ...] = ()
    managed_links: set[str] = field(default_factory=set)
    managed_routes: set[AppliedRoute] = field(default_factory=set)
    announced: set[NameKey] = field(default_factory=set)

    def register(
        self,
        credentials: str,
        connections: Iterable[NodeConnection],
        local_names: Iterable[NameKey],
    ) -> cpb.ControlMessage:
        msg = cpb.ControlMessage(message_id=str(uuid.uuid4()))
        req = msg.register_node_request
        req.node_id = self.node_id
        if self.domain:
            req.domain_name = self.domain
        req.credentials = credentials
        for ep in self.endpoints:
            d = req.connection_details.add(
                endpoint=ep.endpoint,
                tls_required=ep.tls_required,
                auth_method=cpb.AuthMethod.ValueType(ep.auth_method),
            )
            if ep.external_endpoint:
                d.external_endpoint = ep.external_endpoint
            if ep.metrics_url:
                # a Struct a reference controller ignores; ours scrapes it for telemetry
                d.metadata.update({METRICS_KEY: ep.metrics_url})
        req.connections.extend(self.connection_entries(connections))
        names = sorted(set(local_names), key=repr)
        for n in names:
            req.routes.add().name.CopyFrom(name_proto(n))
        for r in sorted(self.managed_routes, key=repr):
            route = req.routes.add(link_id=r.link_id)
            route.name.CopyFrom(name_proto(r.name))
        self.announced = set(names)
        return msg

    @staticmethod
    def connection_entries(conns: Iterable[NodeConnection]) -> list[cpb.ConnectionEntry]:
        out = []
        for c in conns:
            e = cpb.ConnectionEntry(
                id=c.conn_id,
                connection_type=cpb.ConnectionType.ValueType(int(c.conn_type)),
                config_data=json.dumps({"endpoint": c.remote}) if c.remote else "",
                direction=(
                    cpb.CONNECTION_DIRECTION_OUTGOING
                    if c.outbound
                    else cpb.CONNECTION_DIRECTION_INCOMING
                ),
            )
            if c.link_id:
                e.link_id = c.link_id
            if c.peer_node_id:
                e.peer_node_id = c.peer_node_id
            out.append(e)
        return out

    def registration_result(self, msg: cpb.ControlMessage) -> Plan:
        """The desired state of a ``RegisterNodeResponse`` as a plan (raises if refused)."""
        if msg.WhichOneof("payload") != "register_node_response":
            raise ControlPlaneError("expected a RegisterNodeResponse")
        resp = msg.register_node_response
        if not resp.success:
            raise RegistrationRefused("the controller refused the registration")
        cmd = cpb.ConfigurationCommand(reconcile=True)
        cmd.connections_to_create.extend(resp.connections)
        cmd.routes_to_set.extend(resp.routes)
        return self.plan(msg.message_id, cmd)

    def plan(self, message_id: str, cmd: cpb.ConfigurationCommand) -> Plan:
        create = []
        for conn in cmd.connections_to_create:
            try:
                cfg: ClientConfig | None = ClientConfig.parse(
                    _client_json(json.loads(conn.config_data)), "config_data"
                )
                err = ""
            except (ValueError, ConfigError) as exc:
                cfg, err = None, f"invalid config_data: {exc}"
            if not conn.link_id:
                cfg, err = None, "link_id is required"
            create.append((conn.link_id, cfg, err))
        sets = tuple(self._route_change(r) for r in cmd.routes_to_set)
        deletes = [self._route_change(r) for r in cmd.routes_to_delete]
        delete_links = list(cmd.connections_to_delete)
        if cmd.reconcile:
            keep_links = {lid for lid, _, _ in create}
            delete_links += sorted(self.managed_links - keep_links - set(delete_links))
            keep = {c.key for c in sets if c.key}
            for r in sorted(self.managed_routes - keep, key=repr):
                route = cpb.Route(link_id=r.link_id)
                route.name.CopyFrom(name_proto(r.name))
                deletes.append(RouteChange(route, r))
        return Plan(message_id, tuple(create), tuple(delete_links), sets, tuple(deletes))

    @staticmethod
    def _route_change(route: cpb.Route) -> RouteChange:
        if not route.HasField("name") or not route.name.str_name.str_component_0:
            return RouteChange(route, None, "route has no name")
        if not route.link_id:
            return RouteChange(route, None, "route has no link_id")
        return RouteChange(route, AppliedRoute(name_key(route.name), route.link_id))

    def ack(
        self,
        plan: Plan,
        link_results: dict[str, str | None],
        route_results: dict[int, str | None],
    ) -> cpb.ControlMessage:
        """The ack of ``plan``: ``link_results`` maps link id -> error (None = ok);
        ``route_results`` maps ``id(RouteChange)`` -> error. Records what is now managed."""
        msg = cpb.ControlMessage(message_id=str(uuid.uuid4()))
        a = msg.config_command_ack
        a.original_message_id = plan.message_id
        for lid, _, _ in plan.create:
            err = link_results.get(lid, "not applied")
            a.connections_status.add(link_id=lid, success=err is None, errorMsg=err or "")
            if err is None:
                self.managed_links.add(lid)
        for lid in plan.delete_links:
            self.managed_links.discard(lid)
        for ch in plan.set_routes:
            err = route_results.get(id(ch), "not applied")
            a.routes_status.add(route=ch.route, success=err is None, error_msg=err or "")
            if err is None and ch.key:
                self.managed_routes.add(ch.key)
        for ch in plan.delete_routes:
            err = route_results.get(id(ch), "not applied")
            if ch.key:
                self.managed_routes.discard(ch.key)
            a.routes_status.add(route=ch.route, success=err is None, error_msg=err or "")
        return msg

    def names_changed(self, names: set[NameKey]) -> cpb.ControlMessage | None:
        """Announce the difference between ``names`` and what was announced (None if none)."""
        added, removed = names - self.announced, self.announced - names
        if not added and not removed:
            return None
        self.announced = set(names)
        msg = cpb.ControlMessage(message_id=str(uuid.uuid4()))
        cmd = msg.config_command
        for n in sorted(added, key=repr):
            cmd.routes_to_set.add().name.CopyFrom(name_proto(n))
        for n in sorted(removed, key=repr):
            cmd.routes_to_delete.add().name.CopyFrom(name_proto(n))
        return msg

    def list_pages(
        self, kind: str, original_id: str, entries: Sequence[object]
    ) -> list[cpb.ControlMessage]:
        """Answer a list request in pages of :data:`PAGE_SIZE`; the last one has ``done``."""
        pages = []
        chunks = [entries[i : i + PAGE_SIZE] for i in range(0, len(entries), PAGE_SIZE)] or [[]]
        for i, chunk in enumerate(chunks):
            msg = cpb.ControlMessage(message_id=str(uuid.uuid4()))
            body = getattr(msg, kind)
            body.original_message_id = original_id
            body.entries.extend(chunk)
            body.done = i == len(chunks) - 1
            pages.append(msg)
        return pages


class Agent:
    """Keep ``node`` registered with the controller at ``url`` (``start()`` / ``stop()``)."""

    def __init__(
        self,
        node: NodePort,
        url: str,
        *,
        domain: str = "",
        endpoints: Sequence[ConnDetail] = (),
        credentials: str | Callable[[], str] = "",
        backoff: tuple[float, float] = (0.1, 5.0),
        poll_interval: float = 0.2,
        register_timeout: float = 10.0,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self.node = node
        self.url = url
        self.core = AgentCore(node.node_id, domain, tuple(endpoints))
        self._credentials = credentials
        self._backoff = backoff
        self._poll = poll_interval
        self._register_timeout = register_timeout
        self._ssl = ssl
        self._task = BackgroundTask(self._run, f"control-agent-{self.core.node_id}", log)
        self.registered = asyncio.Event()
        self.registrations = 0
        self.last_error: SlimwireError | None = None

    def __repr__(self) -> str:
        return f"<Agent {self.core.node_id!r} -> {self.url} registered={self.registered.is_set()}>"

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def __aenter__(self) -> Agent:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve(self, host: str = "127.0.0.1", port: int = 46358) -> Server:
        """Serve this node's own ``ControllerService`` (what ``slimctl node ...`` and
        ``slimwire ctl node ...`` talk to): list requests, and commands applied and acked."""

        async def handler(stream: Stream) -> None:
            async for batch in stream:
                for raw in batch:
                    try:
                        msg = cpb.ControlMessage.FromString(raw)
                    except DecodeError:
                        raise GrpcError(
                            Status.INVALID_ARGUMENT, "malformed ControlMessage"
                        ) from None
                    await self._handle(msg, stream)

        return await start_server({CONTROLLER_SERVICE: handler}, host, port)

    def _token(self) -> str:
        c = self._credentials
        return c() if callable(c) else c

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                await self._session()
                delay = self._backoff[0]
            except (SlimwireError, OSError) as exc:
                self.last_error = exc if isinstance(exc, SlimwireError) else None
                log.info("control channel to %s ended: %s", self.url, exc)
                if isinstance(exc, GrpcError) and exc.status == Status.PERMISSION_DENIED:
                    self.last_error = RegistrationRefused(exc.grpc_message)
            self.registered.clear()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._backoff[1])

    async def _session(self) -> None:
        stream = await open_stream(self.url, CONTROLLER_SERVICE, ssl=self._ssl)
        try:
            reg = self.core.register(
                self._token(), self.node.connections(), self.node.local_names()
            )
            stream.send(reg.SerializeToString())
            async with asyncio.timeout(self._register_timeout):
                batch = await stream.recv()
            if not batch:
                raise ControlPlaneError("the controller closed the channel at registration")
            plan = self.core.registration_result(cpb.ControlMessage.FromString(batch[0]))
            self.registrations += 1
            self.registered.set()
            await self._apply(plan, ack=False, stream=stream)
            poller = asyncio.ensure_future(self._watch_names(stream))
            try:
                await self._serve(stream, batch[1:])
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
        finally:
            if not stream.closed:
                stream.abort()

    async def _watch_names(self, stream: Stream) -> None:
        while True:
            msg = self.core.names_changed(self.node.local_names())
            if msg is not None:
                stream.send(msg.SerializeToString())
            await asyncio.sleep(self._poll)

    async def _serve(self, stream: Stream, batch: list[bytes]) -> None:
        while True:
            for raw in batch:
                try:
                    msg = cpb.ControlMessage.FromString(raw)
                except DecodeError:
                    log.warning("malformed ControlMessage from the controller; ignored")
                    continue
                await self._handle(msg, stream)
            batch = await stream.recv()
            if not batch:
                return

    async def _handle(self, msg: cpb.ControlMessage, stream: Stream) -> None:
        kind = msg.WhichOneof("payload")
        if kind == "config_command":
            await self._apply(self.core.plan(msg.message_id, msg.config_command), stream=stream)
        elif kind == "connection_list_request":
            entries = self.core.connection_entries(self.node.connections())
            for page in self.core.list_pages("connection_list_response", msg.message_id, entries):
                stream.send(page.SerializeToString())
        elif kind == "route_list_request":
            conns = {c.link_id: c for c in self.node.connections() if c.link_id}
            routes: list[cpb.RouteEntry] = []
            for r in sorted(self.core.managed_routes, key=repr):
                e = cpb.RouteEntry()
                e.name.CopyFrom(name_proto(r.name))
                c = conns.get(r.link_id)
                if c is not None:
                    e.connections.extend(self.core.connection_entries([c]))
                routes.append(e)
            for page in self.core.list_pages("route_list_response", msg.message_id, routes):
                stream.send(page.SerializeToString())
        else:
            log.debug("ignoring %s from the controller", kind)

    async def _apply(self, plan: Plan, *, stream: Stream, ack: bool = True) -> None:
        links: dict[str, str | None] = {}
        routes: dict[int, str | None] = {}
        for lid in plan.delete_links:
            with contextlib.suppress(SlimwireError):
                await self.node.remove_link(lid)
        existing = {c.link_id for c in self.node.connections() if c.link_id}
        for lid, cfg, err in plan.create:
            if cfg is None:
                links[lid] = err
                continue
            if lid in existing or lid in self.core.managed_links:
                links[lid] = None  # reuse the link we already have
                continue
            try:
                await self.node.add_link(
                    cfg.endpoint, connection_type=cfg.connection_type, link_id=lid
                )
                links[lid] = None
            except (SlimwireError, OSError, ValueError) as exc:
                links[lid] = str(exc) or type(exc).__name__
        for ch in plan.delete_routes:
            routes[id(ch)] = await self._route_op(ch, delete=True)
        for ch in plan.set_routes:
            routes[id(ch)] = await self._route_op(ch, delete=False)
        if ack:
            stream.send(self.core.ack(plan, links, routes).SerializeToString())
        else:
            self.core.ack(plan, links, routes)

    async def _route_op(self, ch: RouteChange, *, delete: bool) -> str | None:
        if ch.key is None:
            return ch.error
        try:
            if delete:
                await self.node.delete_route(ch.key.name, ch.key.link_id)
            else:
                await self.node.set_route(ch.key.name, ch.key.link_id)
        except (SlimwireError, LookupError, ValueError) as exc:
            return str(exc) or type(exc).__name__
        return None
