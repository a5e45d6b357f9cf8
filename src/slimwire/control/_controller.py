"""The controller's asyncio driver: the southbound ``ControllerService`` for nodes and the
northbound ``ControlPlaneService`` for operators (slimctl, ``slimwire ctl``).

Everything decided is decided by :class:`ControllerCore`; this module only moves bytes: it parses
each incoming ``ControlMessage``, hands it to the core and writes the core's outbound messages to
the right node's control stream. A node is *connected* while its control stream is open; when
the stream ends (or the HTTP/2 keepalive declares the peer dead) the core recomputes around it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import ssl as _ssl
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from google.protobuf.message import DecodeError, Message

from slimwire._proto import controller_pb2 as cpb
from slimwire._proto import controlplane_pb2 as npb
from slimwire._tasks import BackgroundTask
from slimwire.auth import JwtVerifier
from slimwire.control._core import DEFAULT_DOMAIN, ControllerCore, Outbound
from slimwire.control._jwt_registration import looks_like_jwt, verify_registration_jwt
from slimwire.control._routing import Topology
from slimwire.control._store import METRICS_KEY, TELEMETRY_KEY, Store
from slimwire.control._telemetry import (
    ControllerMetricsServer,
    TelemetryScraper,
    render_controller_metrics,
)
from slimwire.errors import (
    ConnectionClosed,
    ControlPlaneError,
    GrpcError,
    RegistrationRefused,
)
from slimwire.transport import Server, Status, Stream, start_server

__all__ = [
    "CONTROLLER_SERVICE",
    "CONTROL_PLANE_SERVICE",
    "DEFAULT_NORTHBOUND_PORT",
    "DEFAULT_SOUTHBOUND_PORT",
    "Controller",
]

log = logging.getLogger(__name__)

CONTROLLER_SERVICE = "/controller.proto.v1.ControllerService/OpenControlChannel"
CONTROL_PLANE_SERVICE = "/controlplane.proto.v1.ControlPlaneService/"
DEFAULT_NORTHBOUND_PORT = 50051
DEFAULT_SOUTHBOUND_PORT = 50052
REGISTER_TIMEOUT = 10.0
NODE_QUERY_TIMEOUT = 10.0


async def _one_request(stream: Stream, cls: type[Any]) -> Any:
    """The single request message of a unary or server-streaming call."""
    msgs: list[bytes] = []
    while not msgs:
        batch = await stream.recv()
        if not batch:
            raise GrpcError(Status.INVALID_ARGUMENT, "no request message")
        msgs.extend(batch)
    try:
        return cls.FromString(msgs[0])
    except DecodeError:
        raise GrpcError(Status.INVALID_ARGUMENT, f"malformed {cls.__name__}") from None


def _status_of(exc: ControlPlaneError) -> int:
    text = str(exc)
    if "not found" in text:
        return Status.NOT_FOUND
    if "exists" in text:
        return Status.ALREADY_EXISTS
    if "disabled" in text:
        return Status.FAILED_PRECONDITION
    return Status.INVALID_ARGUMENT


class Controller:
    """Serve a :class:`ControllerCore` (``async with Controller(...) as c:``).

    ``jwt_verifier`` also accepts registrations carrying a JWT from the authority (see
    :mod:`._jwt_registration` for the domain binding rule); shared-secret tokens still work for
    domains with a secret. ``keepalive_interval``/``keepalive_timeout`` (HTTP/2 PING on the
    southbound port) bound how long a silently cut node stays "connected": about their sum.

    ``basic_auth`` (user, password) protects the northbound API; ``None`` leaves it open (the
    CLI only allows that when asked explicitly). Ports 0 pick free ports (see
    :attr:`southbound_port`, :attr:`northbound_port`).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        topology: Topology | None = None,
        secrets: dict[str, str] | None = None,
        require_credentials: bool | None = None,
        basic_auth: tuple[str, str] | None = None,
        southbound: tuple[str, int] = ("0.0.0.0", DEFAULT_SOUTHBOUND_PORT),
        northbound: tuple[str, int] = ("0.0.0.0", DEFAULT_NORTHBOUND_PORT),
        ssl: _ssl.SSLContext | None = None,
        keepalive_interval: float | None = 10.0,
        keepalive_timeout: float = 10.0,
        retry_interval: float = 5.0,
        jwt_verifier: JwtVerifier | None = None,
        telemetry_interval: float | None = 15.0,
        telemetry_timeout: float = 5.0,
        metrics: tuple[str, int] | None = None,
    ) -> None:
        self.core = ControllerCore(
            store or Store(),
            topology=topology,
            secrets=secrets,
            require_credentials=require_credentials,
        )
        self._jwt = jwt_verifier
        if jwt_verifier is not None:
            self.core.require_credentials = True
        self._basic = basic_auth
        self._south_addr = southbound
        self._north_addr = northbound
        self._ssl = ssl
        self._keepalive = (keepalive_interval, keepalive_timeout)
        self._streams: dict[str, Stream] = {}
        self._waiters: dict[str, tuple[asyncio.Queue[cpb.ControlMessage], str]] = {}
        self._servers: list[Server] = []
        self._retry_interval = retry_interval
        self._retry_task = BackgroundTask(self._retry_loop, "controller-retries", log)
        self._metrics_urls: dict[str, str] = {}
        self.telemetry = TelemetryScraper(
            self._telemetry_targets,
            interval=telemetry_interval or 15.0,
            timeout=telemetry_timeout,
        )
        self._telemetry_on = telemetry_interval is not None
        self._metrics_addr = metrics
        self._metrics_server: ControllerMetricsServer | None = None

    def __repr__(self) -> str:
        return f"<Controller nodes={sorted(self._streams)} store={self.core.store!r}>"

    @property
    def store(self) -> Store:
        return self.core.store

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        interval, timeout = self._keepalive
        south = await start_server(
            {CONTROLLER_SERVICE: self._control_channel},
            self._south_addr[0],
            self._south_addr[1],
            ssl=self._ssl,
            keepalive_interval=interval,
            keepalive_timeout=timeout,
        )
        self._servers.append(south)
        handlers: dict[str, Callable[[Stream], Awaitable[None]]] = {
            CONTROL_PLANE_SERVICE + name: self._northbound(name) for name in _NB_METHODS
        }
        north = await start_server(
            handlers, self._north_addr[0], self._north_addr[1], ssl=self._ssl
        )
        self._servers.append(north)
        self._retry_task.start()
        if self._telemetry_on:
            self.telemetry.start()
        if self._metrics_addr is not None:
            self._metrics_server = ControllerMetricsServer(self.render_metrics, *self._metrics_addr)
            await self._metrics_server.start()
        log.info("controller: southbound on port %d, northbound on port %d", south.port, north.port)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._retry_interval)
            self._dispatch(self.core.retry_failed())

    async def stop(self, grace: float = 1.0) -> None:
        await self.telemetry.stop()
        if self._metrics_server is not None:
            await self._metrics_server.close()
            self._metrics_server = None
        await self._retry_task.stop()
        for stream in list(self._streams.values()):
            stream.abort(Status.UNAVAILABLE, "controller is shutting down")
        for server in self._servers:
            await server.close(grace=grace)
        self._servers.clear()

    async def __aenter__(self) -> Controller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def southbound_port(self) -> int:
        return self._servers[0].port

    @property
    def northbound_port(self) -> int:
        return self._servers[1].port

    def connected_nodes(self) -> set[str]:
        return set(self.core.connected)

    @property
    def metrics_port(self) -> int | None:
        return None if self._metrics_server is None else self._metrics_server.port

    # -- telemetry -------------------------------------------------------------------------

    def _telemetry_targets(self) -> dict[str, str]:
        return {n: u for n, u in self._metrics_urls.items() if n in self.core.connected}

    def _note_metrics_url(self, node_id: str, req: cpb.RegisterNodeRequest, peer: str) -> None:
        """Remember where ``node_id`` serves ``/metrics`` (``metadata.slimwire_metrics``); a
        wildcard host is replaced by the host its control stream comes from."""
        for d in req.connection_details:
            if METRICS_KEY not in d.metadata.fields:
                continue
            url = d.metadata.fields[METRICS_KEY].string_value
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "http" or not parts.hostname or parts.port is None:
                log.warning("node %s advertised an unusable metrics URL %r", node_id, url)
                break
            if parts.hostname in ("0.0.0.0", "::", ""):
                host = peer.rpartition(":")[0] or "127.0.0.1"
                url = urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))
            self._metrics_urls[node_id] = url
            return
        self._metrics_urls.pop(node_id, None)

    def render_metrics(self) -> str:
        """The controller's ``/metrics`` text."""
        links: dict[str, int] = {}
        for link in self.store.list_links():
            links[link.status.name.lower()] = links.get(link.status.name.lower(), 0) + 1
        routes: dict[str, int] = {}
        for route in self.store.list_routes(include_deleted=False):
            routes[route.status.name.lower()] = routes.get(route.status.name.lower(), 0) + 1
        return render_controller_metrics(
            len(self.core.connected),
            len(self.store.list_nodes()),
            links,
            routes,
            self.telemetry.latest,
        )

    # -- southbound ------------------------------------------------------------------------

    def _dispatch(self, outbound: Iterable[Outbound]) -> None:
        for out in outbound:
            stream = self._streams.get(out.node_id)
            if stream is None or stream.closed:
                log.debug("no control stream for %s; dropped a message", out.node_id)
                continue
            stream.send(out.message.SerializeToString())

    async def _control_channel(self, stream: Stream) -> None:
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT):
                first = await stream.recv()
        except TimeoutError:
            raise GrpcError(Status.DEADLINE_EXCEEDED, "no registration within 10 s") from None
        if not first:
            return
        try:
            msg = cpb.ControlMessage.FromString(first[0])
        except DecodeError:
            raise GrpcError(Status.INVALID_ARGUMENT, "malformed ControlMessage") from None
        if msg.WhichOneof("payload") != "register_node_request":
            raise GrpcError(
                Status.FAILED_PRECONDITION, "the first message must be a RegisterNodeRequest"
            )
        req = msg.register_node_request
        node_id = req.node_id
        try:
            verified = False
            if self._jwt is not None and node_id and looks_like_jwt(req.credentials):
                domain = req.domain_name if req.HasField("domain_name") else ""
                await verify_registration_jwt(
                    self._jwt, req.credentials, domain or DEFAULT_DOMAIN, node_id
                )
                verified = True
            response, outbound = self.core.register(msg.message_id, req, verified=verified)
        except RegistrationRefused as exc:
            log.warning("refused registration of %r from %s: %s", node_id, stream.peer, exc)
            raise GrpcError(Status.PERMISSION_DENIED, str(exc)) from None
        old = self._streams.get(node_id)
        if old is not None and old is not stream:
            old.abort(Status.ABORTED, "the node registered again on another stream")
        self._streams[node_id] = stream
        self._note_metrics_url(node_id, req, stream.peer)
        stream.send(response.SerializeToString())
        self._dispatch(outbound)
        try:
            await self._serve_node(node_id, stream, first[1:])
        finally:
            if self._streams.get(node_id) is stream:
                del self._streams[node_id]
                self._dispatch(self.core.disconnected(node_id))

    async def _serve_node(self, node_id: str, stream: Stream, pending: list[bytes]) -> None:
        batch = pending
        while True:
            for raw in batch:
                try:
                    msg = cpb.ControlMessage.FromString(raw)
                except DecodeError:
                    log.warning("malformed ControlMessage from %s; ignored", node_id)
                    continue
                kind = msg.WhichOneof("payload")
                if kind in ("route_list_response", "connection_list_response"):
                    orig = getattr(msg, kind).original_message_id
                    waiter = self._waiters.get(orig)
                    if waiter is not None and waiter[1] == node_id:
                        waiter[0].put_nowait(msg)
                    continue
                try:
                    self._dispatch(self.core.handle(node_id, msg))
                except ControlPlaneError as exc:  # one bad message must not drop the node
                    log.warning("message %s from %s failed: %s", msg.message_id, node_id, exc)
            try:
                batch = await stream.recv()
            except ConnectionClosed:
                return
            if not batch:
                return

    async def ask_node(self, node_id: str, kind: str) -> list[cpb.ControlMessage]:
        """Send a list request (``route_list_request`` / ``connection_list_request``) to a
        connected node and collect its pages up to ``done``."""
        stream = self._streams.get(node_id)
        if stream is None:
            raise GrpcError(Status.NOT_FOUND, f"node {node_id} is not connected")
        msg = cpb.ControlMessage(message_id=str(uuid.uuid4()))
        getattr(msg, kind).SetInParent()
        queue: asyncio.Queue[cpb.ControlMessage] = asyncio.Queue()
        self._waiters[msg.message_id] = (queue, node_id)
        pages: list[cpb.ControlMessage] = []
        try:
            stream.send(msg.SerializeToString())
            async with asyncio.timeout(NODE_QUERY_TIMEOUT):
                while True:
                    page = await queue.get()
                    pages.append(page)
                    if getattr(page, page.WhichOneof("payload") or "").done:
                        return pages
        except TimeoutError:
            raise GrpcError(Status.DEADLINE_EXCEEDED, f"node {node_id} did not answer") from None
        finally:
            del self._waiters[msg.message_id]

    # -- northbound ------------------------------------------------------------------------

    def _check_auth(self, stream: Stream) -> None:
        if self._basic is None:
            return
        header = dict(stream.request_headers).get("authorization", "")
        scheme, _, value = header.partition(" ")
        ok = False
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
            ok = hmac.compare_digest(user.encode(), self._basic[0].encode()) & hmac.compare_digest(
                password.encode(), self._basic[1].encode()
            )
        if not ok:
            raise GrpcError(Status.UNAUTHENTICATED, "valid basic auth credentials are required")

    def _northbound(self, method: str) -> Callable[[Stream], Awaitable[None]]:
        req_cls, impl = _NB_METHODS[method]

        async def handle(stream: Stream) -> None:
            self._check_auth(stream)
            request = await _one_request(stream, req_cls)
            try:
                replies = await impl(self, request)
            except ControlPlaneError as exc:
                raise GrpcError(_status_of(exc), str(exc)) from None
            stream.send_many(r.SerializeToString() for r in replies)
            await stream.drain()

        return handle

    async def _list_nodes(self, _req: npb.NodeListRequest) -> list[Message]:
        entries = self.core.node_entries()
        for e in entries:
            figures = self.telemetry.latest.get(e.id)
            url = self._metrics_urls.get(e.id)
            if not e.connections or (figures is None and url is None):
                continue
            # a Struct in the first connection: slimctl parses it and shows nothing of it
            meta = e.connections[0].metadata
            if url is not None:
                meta.update({METRICS_KEY: url})
            if figures is not None:
                meta.update({TELEMETRY_KEY: figures.to_json()})
        return list(entries)

    async def _list_routes(self, req: npb.RouteListRequest) -> list[Message]:
        return list(self.core.route_entries(req.srcNodeId, req.destNodeId))

    async def _list_links(self, req: npb.LinkListRequest) -> list[Message]:
        return list(self.core.link_entries(req.srcNodeId, req.destNodeId))

    async def _list_node_routes(self, req: npb.Node) -> list[Message]:
        out = cpb.RouteListResponse(done=True)
        for page in await self.ask_node(req.id, "route_list_request"):
            out.original_message_id = page.route_list_response.original_message_id
            out.entries.extend(page.route_list_response.entries)
        return [out]

    async def _list_connections(self, req: npb.Node) -> list[Message]:
        out = cpb.ConnectionListResponse(done=True)
        for page in await self.ask_node(req.id, "connection_list_request"):
            out.original_message_id = page.connection_list_response.original_message_id
            out.entries.extend(page.connection_list_response.entries)
        return [out]

    async def _list_segments(self, _req: npb.SegmentListRequest) -> list[Message]:
        return [npb.SegmentListResponse(segments=self.core.segments())]

    async def _add_segment(self, req: npb.AddSegmentRequest) -> list[Message]:
        self.core.add_segment(req.name)
        return [npb.AddSegmentResponse()]

    async def _remove_segment(self, req: npb.RemoveSegmentRequest) -> list[Message]:
        self._dispatch(self.core.remove_segment(req.name))
        return [npb.RemoveSegmentResponse()]

    async def _add_topology_link(self, req: npb.AddTopologyLinkRequest) -> list[Message]:
        warnings, outbound = self.core.add_topology_link(req.domain_a, req.domain_b, req.segment)
        self._dispatch(outbound)
        return [npb.AddTopologyLinkResponse(warnings=warnings)]

    async def _remove_topology_link(self, req: npb.RemoveTopologyLinkRequest) -> list[Message]:
        self._dispatch(self.core.remove_topology_link(req.domain_a, req.domain_b, req.segment))
        return [npb.RemoveTopologyLinkResponse()]

    async def _list_domains(self, _req: npb.ListDomainsRequest) -> list[Message]:
        return [npb.ListDomainsResponse(domains=self.core.domains())]

    async def _add_domain(self, req: npb.AddDomainRequest) -> list[Message]:
        self.core.add_domain(req.domain_name, req.secret)
        return [npb.AddDomainResponse()]

    async def _remove_domain(self, req: npb.RemoveDomainRequest) -> list[Message]:
        self.core.remove_domain(req.domain_name)
        return [npb.RemoveDomainResponse()]


_NB_METHODS: dict[str, tuple[type[Any], Callable[[Controller, Any], Awaitable[list[Message]]]]] = {
    "ListNodes": (npb.NodeListRequest, Controller._list_nodes),
    "ListRoutes": (npb.RouteListRequest, Controller._list_routes),
    "ListLinks": (npb.LinkListRequest, Controller._list_links),
    "ListNodeRoutes": (npb.Node, Controller._list_node_routes),
    "ListConnections": (npb.Node, Controller._list_connections),
    "ListSegments": (npb.SegmentListRequest, Controller._list_segments),
    "AddSegment": (npb.AddSegmentRequest, Controller._add_segment),
    "RemoveSegment": (npb.RemoveSegmentRequest, Controller._remove_segment),
    "AddTopologyLink": (npb.AddTopologyLinkRequest, Controller._add_topology_link),
    "RemoveTopologyLink": (npb.RemoveTopologyLinkRequest, Controller._remove_topology_link),
    "ListDomains": (npb.ListDomainsRequest, Controller._list_domains),
    "AddDomain": (npb.AddDomainRequest, Controller._add_domain),
    "RemoveDomain": (npb.RemoveDomainRequest, Controller._remove_domain),
}
