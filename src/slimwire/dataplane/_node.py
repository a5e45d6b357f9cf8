"""The asyncio Node: the sans-IO :class:`Forwarder` driven over the gRPC transport.

Each link's *batches* (one per read) go to the forwarder from the transport's read callback
(:class:`_LinkReceiver`), and what came out is handed to each destination at once (one
``send_framed`` per destination, written before the callback returns for a read of a few
messages). When a destination is over its high-water mark the receiver pauses and the link's task
awaits ``drain()`` on it before routing anything more from that link, so a slow consumer slows its
producers through HTTP/2 flow control instead of growing our memory. A destination that stays
congested longer than ``slow_consumer_timeout`` has stopped reading and is closed, so the others
keep flowing.

Every failure is scoped to one stream and logged once with its reason: a first message that is
not a link negotiation, a failed or late negotiation, a malformed or oversized message, a run of
bad header MACs, a peer that stopped reading. Graceful stop sends our pending output, ends every
stream with OK trailers, then closes the listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from slimwire._constants import DATAPLANE_PATH, NEGOTIATION_TIMEOUT_S, SLIM_VERSION
from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import prefetch_keys
from slimwire.config import AuthConfig, ClientConfig, NodeConfig, ServerConfig, TlsConfig
from slimwire.errors import GrpcError, LinkNegotiationError, SlimwireError
from slimwire.link import ClientNegotiation, LinkConnectionType, LinkInfo, ServerNegotiation
from slimwire.names import NULL_ID

from ._channel_auth import (
    ChannelServerAuth,
    build_client_auth,
    build_server_auth,
    client_ssl_context,
    server_ssl_context,
)
from ._forwarder import Forwarder
from ._traced import MessageTracer
from ._types import ConnInfo, ConnState, SubscriptionEntry, conn_type_from_link

if TYPE_CHECKING:
    from slimwire.policy import NodeAuthorizer, PolicyStore, ReloadResult

__all__ = ["Node"]

_log = logging.getLogger(__name__)

# gRPC status codes used to end streams (numbers from the gRPC spec)
_OK = 0
_CANCELLED = 1
_INVALID_ARGUMENT = 3
_DEADLINE_EXCEEDED = 4
_PERMISSION_DENIED = 7
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14
_UNAUTHENTICATED = 16

_SLICE = 1024
"""Messages routed between two event-loop turns when a received batch is large."""
_FLUSH_NOW_MAX = 16
"""Reads of at most this many messages have their copies written at once (see _LinkReceiver)."""
_WINDOW = 1024 * 1024
"""HTTP/2 receive window per link, as the reference advertises: enough to keep a link busy,
small enough that a backlog (and its latency) stays bounded when the node is the slow part."""


class _Stream(Protocol):
    """The transport's Stream, as far as the node uses it."""

    peer: str
    high_water: int
    request_headers: tuple[tuple[str, str], ...]

    def send(self, message: bytes) -> None: ...
    def send_many(self, messages: Iterable[bytes]) -> None: ...
    def send_framed(self, chunks: list[bytes]) -> None: ...
    def flush(self) -> None: ...
    def set_receiver(self, receiver: Callable[[list[bytes]], bool] | None) -> None: ...
    @property
    def pending_bytes(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    async def recv(self) -> list[bytes]: ...
    async def drain(self) -> None: ...
    async def close(self, status: int = 0, message: str = "") -> None: ...
    def abort(self, status: int = _CANCELLED, message: str = "") -> None: ...


_LINK_TYPES = {
    "remote": LinkConnectionType.REMOTE,
    "peer": LinkConnectionType.PEER,
    "edge": LinkConnectionType.EDGE,
}


class Node:
    """A SLIM messaging node. ``async with Node(config) as node:`` serves until the block ends.

    ``node.addresses`` lists the bound ``(host, port)`` pairs (use port 0 in tests),
    ``node.connections()`` and ``node.subscriptions()`` snapshot the tables, and
    ``await node.add_link(url)`` dials another node as a remote link (re-dialled with backoff,
    same link id, our subscriptions replayed after each reconnect).
    """

    def __init__(
        self,
        config: NodeConfig | None = None,
        *,
        transport: Any = None,
        tracer: MessageTracer | None = None,
    ) -> None:
        """``transport`` is anything with the :mod:`slimwire.transport` module's
        ``start_server`` and ``open_stream`` (default: that module, real sockets); a
        :class:`slimwire.transport.MemoryNetwork` runs a whole mesh in one process.
        ``tracer`` (a :class:`slimwire.tracing.NodeTracer`) makes a span per message that
        carries a ``traceparent``; by default one is made from ``tracing.opentelemetry`` when
        it is enabled, and none otherwise (tracing then costs nothing)."""
        if transport is None:
            from slimwire import transport as default_transport

            transport = default_transport
        self.transport = transport
        self.config = config or NodeConfig()
        cfg = self.config
        self.node_id = cfg.node_id
        # node-enforced authorization (slimwire.policy); None: no checks, as in the reference
        self.authorizer: NodeAuthorizer | None = None
        self.policy_store: PolicyStore | None = None
        self._sighup = False
        if cfg.authorization is not None:
            from slimwire.policy._config import build_authorizer

            self.authorizer, self.policy_store = build_authorizer(cfg.authorization)
        self.forwarder = Forwarder(
            cfg.node_id,
            max_message_size=cfg.max_message_size,
            bad_mac_limit=cfg.bad_mac_limit,
            # like a reference node without a ``peers`` section (standalone), relay publishes
            # that arrive from peers: that is what lets traffic cross a chain of peer links
            relay_peer_publishes=not any(s.endswith(".peers") for s in cfg.ignored),
            framed_outputs=True,  # copies built with their gRPC prefix: see _flush
            authorizer=self.authorizer,
            tracer=tracer if tracer is not None else self._config_tracer(),
        )
        self._streams: dict[int, _Stream] = {}
        self._servers: list[Any] = []
        self._links: list[_ClientLink] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._started = False
        self._changed = asyncio.Event()
        # routes a control plane bound to links: (name, link id) -> (conn id, subscription id)
        self._routes: dict[tuple[tuple[str, str, str, int | None], str], tuple[int, int]] = {}
        self.addresses: list[tuple[str, int]] = []

    def __repr__(self) -> str:
        return (
            f"<Node {self.node_id!r} on {self.addresses} conns={len(self._streams)} "
            f"subs={len(self.forwarder.table)}>"
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every configured server and dial every configured client link."""
        transport = self.transport
        if self._started:
            raise RuntimeError("node already started")
        self._started = True
        auths = [
            build_server_auth(scfg.auth, f"dataplane.servers[{i}].auth")
            for i, scfg in enumerate(self.config.servers)
        ]
        # JWKS URLs are fetched before the first link or message needs their keys
        await prefetch_keys(
            *(getattr(auth, "verifier", None) for auth in auths),
            getattr(self.authorizer and self.authorizer.engine, "verifier", None),
        )
        for scfg, auth in zip(self.config.servers, auths, strict=True):
            server = await transport.start_server(
                {DATAPLANE_PATH: self._make_handler(scfg, auth)},
                scfg.host,
                scfg.port,
                ssl=server_ssl_context(scfg.tls),
                max_message_size=self.config.max_message_size,
                window_size=_WINDOW,
                keepalive_interval=scfg.keepalive_time or None,
                keepalive_timeout=scfg.keepalive_timeout,
            )
            self._servers.append(server)
            self.addresses.append((scfg.host, server.port))
        for ccfg in self.config.clients:
            self._start_link(ccfg)
        for section in self.config.ignored:
            _log.info("config section %s is accepted but not used by slimwire yet", section)
        if self.policy_store is not None:
            self._start_policy_reload()

    def _config_tracer(self) -> MessageTracer | None:
        otel = self.config.opentelemetry
        if otel is None or not otel.enabled:
            return None
        from slimwire.tracing import start_node_tracing

        return start_node_tracing(otel, self.node_id)

    @property
    def tracer(self) -> MessageTracer | None:
        """The tracer making this node's spans (None: tracing is off)."""
        return self.forwarder.tracer

    async def stop(self, grace: float | None = None) -> None:
        """Drain and stop: send pending output, end every stream with OK trailers, close."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_policy_reload()
        grace = self.config.drain_timeout if grace is None else grace
        for link in self._links:
            link.stop()
        self._flush()
        streams = list(self._streams.values())
        for s in streams:
            await self._close_stream(s, _OK, "")
        # wait until our output (trailers included) has gone to the network; the readers
        # end by themselves (a server's recv() ends with its trailers, a client link's with
        # the peer's), and whatever is still running after ``grace`` is cancelled below
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while any(s.pending_bytes for s in streams):
                    await asyncio.sleep(0.01)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.close(grace)
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        shutdown = getattr(self.forwarder.tracer, "shutdown", None)
        if shutdown is not None:  # flush the spans still batched (the exporter may block)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(shutdown)
        _log.info("node %s stopped", self.node_id)

    # -- authorization -----------------------------------------------------------------------

    def reload_policy(self) -> ReloadResult | None:
        """Re-read the policy file now (SIGHUP does this); a file that does not validate is
        logged and the policy in force stays. None when the node has no policy file."""
        store = self.policy_store
        if store is None or store.path is None:
            _log.info("no policy file to reload")
            return None
        result = store.reload()
        self._log_reload(result)
        return result

    @staticmethod
    def _log_reload(result: ReloadResult) -> None:
        if result.ok:
            _log.info("policy reloaded (generation %d, changed: %s)", result.generation,
                      result.changed)  # fmt: skip
        else:
            _log.error("policy reload failed, previous policy kept: %s", result.error)

    def policy_counters(self) -> dict[str, dict[str, int]]:
        """Allowed/denied decisions per action since start (empty without a policy)."""
        return self.authorizer.counters() if self.authorizer is not None else {}

    def _start_policy_reload(self) -> None:
        store, auth_cfg = self.policy_store, self.config.authorization
        if store is None or store.path is None or auth_cfg is None:
            return
        if auth_cfg.watch_interval > 0:
            from slimwire.policy import PolicyFileWatcher

            watcher = PolicyFileWatcher(
                store, interval=auth_cfg.watch_interval, on_reload=self._log_reload
            )
            self._spawn(watcher.run())
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload_policy)
            self._sighup = True

    def _stop_policy_reload(self) -> None:
        if self._sighup:
            self._sighup = False
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The first server's bound port."""
        return self.addresses[0][1]

    @property
    def url(self) -> str:
        """``http://host:port`` of the first server (for clients and ``add_link``)."""
        host, port = self.addresses[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # -- inspection ------------------------------------------------------------------------

    def connections(self) -> list[ConnInfo]:
        return self.forwarder.connections()

    @property
    def count_retransmissions(self) -> bool:
        """Whether each link's received session retransmissions (RTX requests and replies)
        are counted into :meth:`connections`. Off by default: it costs ~0.3-0.5 µs per
        message, so it is turned on where the figures are read (``slimwire node --metrics``,
        a node under a controller)."""
        return self.forwarder.count_rtx

    @count_retransmissions.setter
    def count_retransmissions(self, on: bool) -> None:
        self.forwarder.count_rtx = on

    def subscriptions(self) -> list[SubscriptionEntry]:
        return self.forwarder.subscriptions()

    async def wait_for(self, predicate: Callable[[Node], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate(node)`` holds, re-checked after each connection or
        subscription change (raises ``TimeoutError``)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._changed.wait()

    # -- links we dial ---------------------------------------------------------------------

    async def add_link(
        self,
        url: str,
        *,
        connection_type: str = "remote",
        link_id: str | None = None,
        require_header_mac: bool = True,
        tls: TlsConfig | None = None,
        auth: AuthConfig | None = None,
    ) -> int:
        """Dial ``url`` as a static link (re-dialled after a drop); returns its conn id.
        ``tls`` (for https:// URLs) and ``auth`` are a client's ``tls`` and ``auth`` sections."""
        kwargs: dict[str, Any] = {
            "endpoint": url,
            "connection_type": connection_type,
            "require_header_mac": require_header_mac,
        }
        if tls is not None:
            kwargs["tls"] = tls
        if auth is not None:
            kwargs["auth"] = auth
        if link_id:
            kwargs["link_id"] = link_id
        return self._start_link(ClientConfig(**kwargs)).conn_id

    async def remove_link(self, link_id: str) -> bool:
        """Stop re-dialling the outbound link ``link_id`` and close it (its subscriptions go
        with it); False when no link we dial has that id."""
        link = next((lk for lk in self._links if lk.cfg.link_id == link_id), None)
        if link is None:
            return False
        self._links.remove(link)
        stream = link.stream
        link.stop()
        if stream is not None and not stream.closed:
            stream.abort(_CANCELLED, "link removed")
        if link.task is not None and not link.task.done():
            await asyncio.wait([link.task], timeout=self.config.drain_timeout)
        self._link_down(link.conn_id, None, "link removed", reconnecting=False)
        _log.info("link %s removed", link_id)
        return True

    # -- routes a control plane binds to links (slimwire.control) ---------------------------

    def _conn_for_link(self, link_id: str) -> int | None:
        for conn in self.forwarder.conns:
            if conn.link_id == link_id and conn.state is ConnState.UP:
                return conn.conn_id
        return None

    async def set_route(self, name: tuple[str, str, str, int | None], link_id: str) -> None:
        """Forward ``name`` (three strings and an id, None: any id) over the connection with
        ``link_id``, dialled or accepted, as the reference does for a controller's route.
        Idempotent; kept across that link's reconnects (a link we dial that is not up yet
        gets it when it comes up); ``LookupError`` if no connection has that link id."""
        cid = self._conn_for_link(link_id)
        if cid is None:
            if not any(lk.cfg.link_id == link_id for lk in self._links):
                raise LookupError(f"no connection with link id {link_id}")
            self._routes.setdefault((name, link_id), (-1, 0))  # bound when the link is up
            return
        held = self._routes.get((name, link_id))
        if held is not None and held[0] == cid:
            return
        strings, nid = (name[0], name[1], name[2]), NULL_ID if name[3] is None else name[3]
        self._routes[(name, link_id)] = (cid, self.forwarder.add_route(strings, nid, cid))
        self._flush()
        self._changed.set()

    async def delete_route(self, name: tuple[str, str, str, int | None], link_id: str) -> None:
        """Undo :meth:`set_route` (idempotent); ``LookupError`` when neither the route nor a
        connection with ``link_id`` is known."""
        held = self._routes.pop((name, link_id), None)
        if held is None:
            if self._conn_for_link(link_id) is None:
                raise LookupError(f"no connection with link id {link_id}")
            return
        strings, nid = (name[0], name[1], name[2]), NULL_ID if name[3] is None else name[3]
        self.forwarder.remove_route(strings, nid, held[0], held[1])
        self._flush()
        self._changed.set()

    def routes(self) -> dict[tuple[tuple[str, str, str, int | None], str], int]:
        """The routes set by :meth:`set_route`: (name, link id) -> the conn they use now."""
        return {k: cid for k, (cid, _sid) in self._routes.items()}

    def _restore_routes(self, cid: int) -> None:
        """A link came (back) up: bind the routes set for its link id to this connection."""
        conn = self.forwarder.conns.get(cid)
        if conn is None:
            return
        for (name, link_id), (old, sid) in list(self._routes.items()):
            if link_id != conn.link_id or old == cid:
                continue
            strings, nid = (name[0], name[1], name[2]), NULL_ID if name[3] is None else name[3]
            self.forwarder.remove_route(strings, nid, old, sid)
            new = self.forwarder.add_route(strings, nid, cid)
            self._routes[(name, link_id)] = (cid, new)

    def _start_link(self, cfg: ClientConfig) -> _ClientLink:
        link = _ClientLink(self, cfg, self.forwarder.reserve_id())
        self._links.append(link)
        link.task = self._spawn(link.run())
        return link

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the per-stream machinery ----------------------------------------------------------

    def _make_handler(
        self, scfg: ServerConfig, auth: ChannelServerAuth | None
    ) -> Callable[[Any], Any]:
        async def handle(stream: _Stream) -> None:
            if auth is not None:
                # transport auth comes before anything else the stream says (slim-wire.md §2.1)
                refused = await auth.check(stream.request_headers)
                if refused is not None:
                    self._reject(stream, _UNAUTHENTICATED, f"unauthenticated: {refused}")
                    return
            await self._serve(stream, scfg)

        return handle

    async def _serve(self, stream: _Stream, scfg: ServerConfig) -> None:
        """An incoming link: negotiate (first message, within the timeout), then route."""
        if self._stopping:
            stream.abort(_UNAVAILABLE, "node shutting down")
            return
        neg = ServerNegotiation(self.node_id, require_mac=scfg.require_header_mac)
        try:
            async with asyncio.timeout(scfg.negotiation_timeout):
                batch = await stream.recv()
        except TimeoutError:
            self._reject(stream, _DEADLINE_EXCEEDED, "no link negotiation within the timeout")
            return
        except SlimwireError as exc:
            _log.info("link from %s ended before negotiation: %s", stream.peer, exc)
            return
        if not batch:
            return
        try:
            first = pb.Message.FromString(batch[0])
        except Exception:
            self._reject(stream, _INVALID_ARGUMENT, "first message is not a protobuf Message")
            return
        if first.WhichOneof("message_type") != "link":
            self._reject(stream, _INVALID_ARGUMENT, "first message is not a link negotiation")
            return
        try:
            reply, info = neg.receive(first)
        except LinkNegotiationError as exc:
            status = _PERMISSION_DENIED if "peer link" in str(exc) else _INVALID_ARGUMENT
            self._reject(stream, status, f"link negotiation failed: {exc}")
            return
        stream.send(reply.SerializeToString())
        ctype = conn_type_from_link(int(info.connection_type))
        cid = self.forwarder.add_connection(
            ctype,
            remote=stream.peer,
            link_id=info.link_id,
            peer_node_id=info.peer_node_id,
            peer_version=info.peer_version,
            mac=info.mac,
            require_mac=scfg.require_header_mac,
            outbound=False,
            now=time.monotonic(),
        )
        _log.info(
            "link %s from %s (%s, node %r, version %s) up as conn %d",
            info.link_id,
            stream.peer,
            ctype.name.lower(),
            info.peer_node_id,
            info.peer_version,
            cid,
        )
        reason = await self._run_link(cid, stream, batch[1:])
        self._link_down(cid, stream, reason, reconnecting=False)
        if not stream.closed:
            await self._close_stream(stream, _OK, "")

    def _reject(self, stream: _Stream, status: int, reason: str) -> None:
        _log.warning("rejecting link from %s: %s", stream.peer, reason)
        stream.abort(status, reason)

    async def _run_link(self, cid: int, stream: _Stream, first: list[bytes]) -> str:
        """Route everything ``stream`` sends until it ends; returns why it ended.

        Batches are routed by a :class:`_LinkReceiver` the transport calls from its read
        callback: read, route and write happen in one loop turn, with no task woken per read
        (on a request/reply exchange that wake-up is a loop turn and a future per hop). This
        task routes only what the receiver declined, in order (a batch to route in slices,
        what came while a destination was congested), and learns how the stream ended.
        """
        self._streams[cid] = stream
        self._changed.set()
        if self._routes:  # control-plane routes bound to this link id (empty: no cost)
            self._restore_routes(cid)
        fwd = self.forwarder
        if first:
            fwd.receive_batch(cid, first, time.monotonic())
        congested = self._flush()
        rx = _LinkReceiver(self, cid)
        stream.set_receiver(rx)
        try:
            while True:
                if congested:
                    await self._relieve(cid, congested)
                    congested = None
                if rx.relief is not None:  # the receiver met a congested destination
                    await rx.relief
                    rx.relief = None
                rx.paused = False
                batch = await stream.recv()
                rx.paused = True  # until this batch is routed: later ones queue behind it
                if not batch:
                    return "closed by peer"
                now = time.monotonic()
                if len(batch) <= _SLICE:
                    fwd.receive_batch(cid, batch, now)
                    congested = self._flush()
                else:
                    # a big batch is routed in slices with a loop turn between them, so the
                    # transport writes the first copies while we route the rest (the output of
                    # one huge slice would all go out at once, after it, leaving both ends idle)
                    for i in range(0, len(batch), _SLICE):
                        fwd.receive_batch(cid, batch[i : i + _SLICE], now)
                        congested = self._flush()
                        if congested:
                            await self._relieve(cid, congested)
                            congested = None
                        else:
                            await asyncio.sleep(0)
                        if cid not in self._streams:
                            break
                if cid not in self._streams:
                    return "closed by node"
        except GrpcError as exc:
            return f"ended by peer with status {exc.status} {exc.grpc_message!r}"
        except SlimwireError as exc:
            return f"connection lost: {exc}"
        except asyncio.CancelledError:
            raise
        finally:
            stream.set_receiver(None)
            if rx.relief is not None:
                rx.relief.cancel()

    def _flush(self, now: bool = False) -> list[tuple[int, _Stream]] | None:
        """Send what the forwarder produced; close what it wants closed. Returns the
        destinations now over their high-water mark (the caller decides whether to wait).
        ``now``: hand each destination's output to the network at once (the caller routed a
        whole read) instead of at the end of the loop tick."""
        fwd = self.forwarder
        streams = self._streams
        congested: list[tuple[int, _Stream]] | None = None
        for cid, msgs in fwd.take_outputs():
            s = streams.get(cid)
            if s is None or s.closed:
                continue
            try:
                s.send_framed(msgs)
            except SlimwireError:
                continue
            if now:
                s.flush()
            if s.pending_bytes >= s.high_water:
                if congested is None:
                    congested = []
                congested.append((cid, s))
        for cid, reason in fwd.take_closes():
            s = streams.get(cid)
            _log.warning("closing conn %d (%s): %s", cid, s.peer if s else "?", reason)
            status = _RESOURCE_EXHAUSTED if "exceeds" in reason else _INVALID_ARGUMENT
            if s is not None:
                s.abort(status, reason)
            self._link_down(cid, s, reason, reconnecting=False, already_logged=True)
        return congested

    async def _relieve(self, own: int, congested: list[tuple[int, _Stream]]) -> None:
        """Back-pressure: wait (bounded) for each congested destination to drain."""
        timeout = self.config.slow_consumer_timeout
        for cid, s in congested:
            if cid == own or s.closed or s.pending_bytes < s.high_water:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await s.drain()
            except TimeoutError:
                reason = f"peer stopped reading ({s.pending_bytes} bytes queued for {timeout}s)"
                _log.warning("closing conn %d (%s): %s", cid, s.peer, reason)
                s.abort(_RESOURCE_EXHAUSTED, reason)
                self._link_down(cid, s, reason, reconnecting=False, already_logged=True)
            except SlimwireError:
                continue

    def _link_down(
        self,
        cid: int,
        stream: _Stream | None,
        reason: str,
        *,
        reconnecting: bool,
        already_logged: bool = False,
    ) -> None:
        if self._streams.get(cid) is not stream and stream is not None:
            return
        self._streams.pop(cid, None)
        conn = self.forwarder.conns.get(cid)
        if conn is None and not reconnecting:
            return
        if not already_logged:
            _log.info("conn %d (%s) down: %s", cid, stream.peer if stream else "?", reason)
        self.forwarder.connection_down(cid, reconnecting=reconnecting)
        self._flush()
        self._changed.set()

    @staticmethod
    async def _close_stream(stream: _Stream, status: int, message: str) -> None:
        with contextlib.suppress(SlimwireError, OSError):
            await stream.close(status, message)


class _LinkReceiver:
    """Routes one link's batches from the transport's read callback (see ``Node._run_link``).

    ``paused`` while the link's task has batches of its own to route (they came first) or a
    destination is congested: the transport then queues what arrives for the task, without
    returning its flow-control credit, which is the back-pressure the task-driven loop
    applied. ``relief`` is the wait for congested destinations to drain (and to be closed if
    they stay congested), started here because this callback cannot await.
    """

    __slots__ = ("cid", "node", "paused", "relief")

    def __init__(self, node: Node, cid: int) -> None:
        self.node = node
        self.cid = cid
        self.paused = True
        self.relief: asyncio.Future[None] | None = None

    def __call__(self, batch: list[bytes]) -> bool:
        if self.paused or len(batch) > _SLICE:
            return False
        node = self.node
        cid = self.cid
        node.forwarder.receive_batch(cid, batch, time.monotonic())
        # A read of a few messages is an exchange waiting on us: write it now. A big read is
        # a stream: leave its copies to the flush at the end of the tick, which coalesces the
        # several reads uvloop makes of a busy socket in one tick into one write (flushing
        # each of them cost ~15 % more node CPU per message under load, in syscalls).
        congested = node._flush(now=len(batch) <= _FLUSH_NOW_MAX)
        if congested:
            self.paused = True
            self.relief = asyncio.ensure_future(node._relieve(cid, congested))
        elif cid not in node._streams:  # the node closed this link: nothing more to route
            self.paused = True
        return True


class _ClientLink:
    """A static outbound link: dial, negotiate, route; re-dial with backoff on loss."""

    def __init__(self, node: Node, cfg: ClientConfig, conn_id: int) -> None:
        self.node = node
        self.cfg = cfg
        self.conn_id = conn_id
        self.task: asyncio.Task[None] | None = None
        self.stream: _Stream | None = None
        self._stopped = False
        self._auth = build_client_auth(cfg.auth, default_subject=node.node_id)

    def stop(self) -> None:
        self._stopped = True
        if self.stream is None and self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        node = self.node
        transport = node.transport
        cfg = self.cfg
        attempt = 0
        ctype = _LINK_TYPES[cfg.connection_type]
        while not self._stopped:
            stream: _Stream | None = None
            try:
                headers = cfg.headers
                if self._auth is not None:  # a fresh credential on every (re)connect
                    headers = (*headers, ("authorization", self._auth.header()))
                stream = await transport.open_stream(
                    cfg.endpoint,
                    DATAPLANE_PATH,
                    ssl=client_ssl_context(cfg.tls, cfg.endpoint),
                    headers=headers,
                    **({"server_hostname": cfg.server_name} if cfg.server_name else {}),
                    window_size=_WINDOW,
                    max_message_size=node.config.max_message_size,
                    keepalive_interval=cfg.keepalive_time or None,
                    keepalive_timeout=cfg.keepalive_timeout,
                )
                neg = ClientNegotiation(
                    cfg.link_id,
                    node_id=node.node_id,
                    connection_type=ctype,
                    require_mac=cfg.require_header_mac,
                    deployment_name=node.config.domain_name,
                )
                stream.send(neg.request().SerializeToString())
                async with asyncio.timeout(NEGOTIATION_TIMEOUT_S):
                    batch = await stream.recv()
                if not batch:
                    raise LinkNegotiationError("stream ended before the negotiation reply")
                info: LinkInfo = neg.receive(pb.Message.FromString(batch[0]))
            except asyncio.CancelledError:
                if stream is not None:
                    stream.abort(_CANCELLED, "node shutting down")
                raise
            except GrpcError as exc:
                if stream is not None:
                    stream.abort(_CANCELLED, "")
                if exc.status == _PERMISSION_DENIED:
                    _log.error("link to %s refused for good: %s", cfg.endpoint, exc)
                    return
                await self._backoff(attempt, f"{exc}")
                attempt += 1
                continue
            except (SlimwireError, OSError, TimeoutError, ValueError) as exc:
                if stream is not None:
                    stream.abort(_CANCELLED, "")
                await self._backoff(attempt, f"{type(exc).__name__}: {exc}")
                attempt += 1
                continue
            if self._stopped:
                stream.abort(_CANCELLED, "node shutting down")
                return
            attempt = 0
            self.stream = stream
            ct = conn_type_from_link(int(info.connection_type))
            node.forwarder.add_connection(
                ct,
                remote=cfg.endpoint,
                link_id=info.link_id,
                peer_node_id=info.peer_node_id,
                peer_version=info.peer_version or SLIM_VERSION,
                mac=info.mac,
                require_mac=cfg.require_header_mac,
                outbound=True,
                now=time.monotonic(),
                conn_id=self.conn_id,
            )
            _log.info(
                "link %s to %s (%s, node %r) up as conn %d",
                info.link_id,
                cfg.endpoint,
                ct.name.lower(),
                info.peer_node_id,
                self.conn_id,
            )
            reason = await node._run_link(self.conn_id, stream, batch[1:])
            self.stream = None
            if self._stopped:
                node._link_down(self.conn_id, stream, reason, reconnecting=False)
                return
            node._link_down(self.conn_id, stream, reason, reconnecting=True)
            if not stream.closed:
                stream.abort(_CANCELLED, "")
            await self._backoff(0, reason)

    async def _backoff(self, attempt: int, reason: str) -> None:
        cfg = self.cfg.backoff
        if cfg.max_attempts and attempt >= cfg.max_attempts:
            _log.error("link to %s: giving up after %d attempts", self.cfg.endpoint, attempt)
            self._stopped = True
            return
        delay = cfg.delay(attempt)
        if attempt == 0 or _log.isEnabledFor(logging.DEBUG):
            _log.info("link to %s: %s; re-dialling in %.1fs", self.cfg.endpoint, reason, delay)
        await asyncio.sleep(delay)
