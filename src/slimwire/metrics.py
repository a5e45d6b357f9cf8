"""A node's monitoring endpoints: Prometheus ``/metrics`` and a ``/healthz`` for probes.

Everything is read from tables the node keeps anyway (the connection table's per-link counters,
the subscription table, the policy counters), so serving it costs the data path nothing: a
scrape snapshots them. The text is built by pure functions (:func:`render_metrics`,
:func:`health`, :func:`parse_request`); :class:`MetricsServer` serves them with the package's
one small HTTP/1.1 server (:mod:`slimwire._http`). ``slimwire node --metrics HOST:PORT`` starts one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from slimwire import _http
from slimwire.errors import ConfigError

__all__ = [
    "MetricsServer",
    "Request",
    "health",
    "parse_request",
    "render_metrics",
    "served_metrics_url",
]

log = logging.getLogger(__name__)

MAX_REQUEST = 8192
"""Bytes of request line and headers we read; a scraper sends a few hundred."""
READ_TIMEOUT = 5.0
"""A client that has not sent its request by then is dropped (no idle sockets held open)."""
_LIMITS = _http.Limits(head=MAX_REQUEST, body=4096)


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

_SERVED: dict[int, str] = {}
"""id(node) -> the URL of the MetricsServer serving it, so the control agent can advertise it to
the controller (telemetry) without the node command passing it around."""


def served_metrics_url(node: object) -> str | None:
    """The ``/metrics`` URL of a :class:`MetricsServer` serving ``node`` in this process."""
    return _SERVED.get(id(node))


class Request(NamedTuple):
    method: str
    path: str


def parse_request(head: bytes) -> Request:
    """The method and path of an HTTP/1.x request head (everything before the blank line).
    Raises :class:`ValueError` on anything malformed; the query string is dropped."""
    if len(head) > MAX_REQUEST:
        raise ValueError("request head too large")
    try:
        parsed = _http.parse_request(head + b"\r\n\r\n", _LIMITS)
    except _http.HttpError as exc:
        raise ValueError(str(exc)) from None
    if parsed is None:  # a Content-Length with no body after it
        raise ValueError("request has a body")
    return Request(parsed[0].method, parsed[0].path)


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Mapping[str, object]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


class _Family:
    def __init__(self, name: str, kind: str, text: str) -> None:
        self.name, self.kind, self.text = name, kind, text
        self.samples: list[str] = []

    def add(self, value: float, **labels: object) -> None:
        shown = _labels(labels) if labels else ""
        number = int(value) if float(value).is_integer() else value
        self.samples.append(f"{self.name}{shown} {number}")

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.text}"
        yield f"# TYPE {self.name} {self.kind}"
        yield from self.samples


def render_metrics(
    node_id: str,
    connections: Sequence[Any],
    subscriptions: int,
    policy: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """Prometheus text exposition (format 0.0.4) of a node's figures. ``connections`` are
    :class:`slimwire.dataplane.ConnInfo` rows; each link's counters carry its conn id, link id,
    type and peer node, so a scraper can follow a link across reconnects by its link id."""
    info = _Family("slimwire_node_info", "gauge", "This node (always 1).")
    info.add(1, node_id=node_id)
    subs = _Family("slimwire_subscriptions", "gauge", "Rows in the subscription table.")
    subs.add(subscriptions)
    conns = _Family("slimwire_connections", "gauge", "Connections by type and state.")
    counts: dict[tuple[str, str], int] = {}
    per_link = {
        "msgs_in": _Family(
            "slimwire_link_messages_received_total", "counter", "Messages received on a link."
        ),
        "msgs_out": _Family(
            "slimwire_link_messages_sent_total", "counter", "Messages sent on a link."
        ),
        "bytes_in": _Family(
            "slimwire_link_bytes_received_total", "counter", "Bytes received on a link."
        ),
        "bytes_out": _Family("slimwire_link_bytes_sent_total", "counter", "Bytes sent on a link."),
    }
    drops = _Family(
        "slimwire_link_drops_total", "counter", "Messages dropped on a link, by reason."
    )
    rtx = _Family(
        "slimwire_link_retransmissions_total",
        "counter",
        "Session retransmissions received on a link (kind: RTX request or reply).",
    )
    for c in connections:
        ctype = c.conn_type.name.lower()
        state = c.state.value
        counts[(ctype, state)] = counts.get((ctype, state), 0) + 1
        labels = {
            "conn": c.conn_id,
            "link_id": c.link_id,
            "type": ctype,
            "peer_node": c.peer_node_id,
        }
        for field, family in per_link.items():
            family.add(getattr(c, field), **labels)
        for reason, n in sorted(c.drops.items(), key=lambda kv: kv[0].value):
            drops.add(n, **labels, reason=reason.value)
        rtx.add(getattr(c, "rtx_requests", 0), **labels, kind="request")
        rtx.add(getattr(c, "rtx_replies", 0), **labels, kind="reply")
    for (ctype, state), n in sorted(counts.items()):
        conns.add(n, type=ctype, state=state)
    families = [info, subs, conns, *per_link.values(), drops, rtx]
    if policy:
        decisions = _Family(
            "slimwire_policy_decisions_total", "counter", "Authorization decisions by action."
        )
        for outcome, actions in sorted(policy.items()):
            for action, n in sorted(actions.items()):
                decisions.add(n, decision=outcome, action=action)
        families.append(decisions)
    return "\n".join(line for f in families for line in f.render()) + "\n"


def health(
    node_id: str, connections: Sequence[Any], subscriptions: int, up: bool
) -> dict[str, Any]:
    """The ``/healthz`` body: ``status`` is ``ok`` while the node serves, ``stopping`` after."""
    live = sum(1 for c in connections if c.state.value == "up")
    return {
        "status": "ok" if up else "stopping",
        "node_id": node_id,
        "connections_up": live,
        "connections": len(connections),
        "subscriptions": subscriptions,
    }


class MetricsServer:
    """``/metrics`` and ``/healthz`` for a running :class:`slimwire.dataplane.Node` over plain
    HTTP/1.1 (one request per connection: what Prometheus and kubelet probes need)."""

    def __init__(self, node: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.node = node
        self.host, self.port = host, port
        self._server: _http.HttpServer | None = None

    def __repr__(self) -> str:
        return f"MetricsServer({self.host}:{self.port})"

    async def start(self) -> None:
        server = _http.HttpServer(
            self._handle, self.host, self.port, request_timeout=READ_TIMEOUT, limits=_LIMITS
        )
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(f"metrics endpoint {self.host}:{self.port}: {exc}") from exc
        self._server, self.port = server, server.port
        if self.node is not None:
            _SERVED[id(self.node)] = self.url
            if hasattr(self.node, "count_retransmissions"):
                # the figures are read from now on: count what they show (off by default,
                # it costs the forwarder a little per message)
                self.node.count_retransmissions = True
        log.info("metrics on %s", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def close(self) -> None:
        if self.node is not None and _SERVED.get(id(self.node)) == self.url:
            del _SERVED[id(self.node)]
        server, self._server = self._server, None
        if server is not None:
            await server.close()

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _respond(self, request: Request) -> _http.Response:
        node = self.node
        conns = node.connections()
        subs = len(node.subscriptions())
        if request.method != "GET":
            return _http.Response(405, b"GET only\n")
        if request.path == "/metrics":
            policy = node.policy_counters() if hasattr(node, "policy_counters") else None
            text = render_metrics(str(node.node_id), conns, subs, policy)
            return _http.Response(200, text.encode(), PROMETHEUS_TEXT)
        if request.path in ("/healthz", "/health"):
            up = bool(getattr(node, "_started", True)) and not getattr(node, "_stopping", False)
            body = json.dumps(health(str(node.node_id), conns, subs, up)).encode() + b"\n"
            return _http.Response(200 if up else 503, body, "application/json")
        return _http.Response(404, b"try /metrics or /healthz\n")

    async def _handle(self, request: _http.HttpRequest, _tls: object) -> _http.Response:
        return self._respond(Request(request.method, request.path))
