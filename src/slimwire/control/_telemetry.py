"""Node telemetry for the controller, without touching the control protocol.

The reference's control protocol has no telemetry message, and putting figures in
``config_data`` (or a new oneof field) could break a reference controller a node registers
with. So a node *advertises* where its Prometheus ``/metrics`` is, in
``RegisterNodeRequest.connection_details[].metadata`` (a ``google.protobuf.Struct`` the reference
carries and ignores: ``{"slimwire_metrics": "http://host:port/metrics"}``), and the controller
*pulls*: every ``interval`` it scrapes each connected node that advertised one (HTTP/1.1 GET,
timeouts, a bounded response, a bounded number at once) and keeps the latest figures per node in
memory with the time of the last successful scrape. Pulling keeps a slow or dead node's cost on
the controller side bounded by the timeout, and the same endpoint serves Prometheus.

``ListNodes`` carries the figures in the first connection's ``metadata`` (``slimwire_telemetry``,
a Struct, so ``slimctl`` still parses the answer), ``slimwire ctl node list`` shows them, and the
controller's own ``/metrics`` (:class:`ControllerMetricsServer`) exports nodes connected, links by
status, routes by status and the per-node figures.

Pure parts: :func:`parse_prometheus` (hypothesis-fuzzed: its input comes from the network),
:func:`figures_from_samples`, :func:`render_controller_metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from slimwire import _http
from slimwire._tasks import BackgroundTask
from slimwire.errors import SlimwireError
from slimwire.metrics import PROMETHEUS_TEXT, MetricsServer, Request, _Family

__all__ = [
    "ControllerMetricsServer",
    "NodeFigures",
    "Sample",
    "TelemetryScraper",
    "figures_from_samples",
    "http_get",
    "parse_prometheus",
    "render_controller_metrics",
]

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
"""Largest /metrics body accepted (a node with thousands of links stays well under)."""
MAX_SAMPLES = 20000


class Sample(NamedTuple):
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def _parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    """``k="v",k2="v2"`` with Prometheus escapes; ValueError on anything else."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError("label without value")
        key = text[i:eq].strip()
        if (
            not key
            or not (key[0].isalpha() or key[0] == "_")
            or not key.replace("_", "a").isalnum()
        ):
            raise ValueError(f"bad label name {key!r}")
        if eq + 1 >= n or text[eq + 1] != '"':
            raise ValueError("label value is not quoted")
        j = eq + 2
        value: list[str] = []
        while True:
            if j >= n:
                raise ValueError("unterminated label value")
            ch = text[j]
            if ch == "\\":
                if j + 1 >= n:
                    raise ValueError("dangling escape")
                esc = text[j + 1]
                value.append({"n": "\n", "\\": "\\", '"': '"'}.get(esc, "\\" + esc))
                j += 2
                continue
            if ch == '"':
                break
            value.append(ch)
            j += 1
        out.append((key, "".join(value)))
        i = j + 1
        if i < n:
            if text[i] != ",":
                raise ValueError("labels must be separated by commas")
            i += 1
    return tuple(out)


def parse_prometheus(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition (format 0.0.4). Comments and blank lines are
    skipped; a malformed line raises :class:`ValueError` (the whole scrape is then discarded:
    half-read figures would be worse than the previous ones)."""
    samples: list[Sample] = []
    for raw in text.split("\n"):  # only \n ends a line: label values may hold \r and friends
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        if len(samples) >= MAX_SAMPLES:
            raise ValueError("too many samples")
        if "{" in line:
            name, _, rest = line.partition("{")
            labels_text, sep, tail = rest.rpartition("}")
            if not sep:
                raise ValueError("unclosed label set")
            labels = _parse_labels(labels_text)
        else:
            name, _, tail = line.partition(" ")
            labels = ()
        name = name.strip()
        if not name or not (name[0].isalpha() or name[0] in "_:"):
            raise ValueError(f"bad metric name {name[:40]!r}")
        if not name.replace("_", "a").replace(":", "a").isalnum():
            raise ValueError(f"bad metric name {name[:40]!r}")
        fields = tail.split()
        if len(fields) not in (1, 2):
            raise ValueError("expected a value and an optional timestamp")
        value = float(fields[0])  # ValueError on garbage; +Inf/NaN are valid Prometheus
        samples.append(Sample(name, labels, value))
    return samples


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """One node's latest scraped figures (totals over its links)."""

    connections: int = 0
    connections_up: int = 0
    subscriptions: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    drops: Mapping[str, int] = field(default_factory=dict)
    scraped_at: float = 0.0
    """Wall-clock time of the scrape these figures come from (the node's "last seen")."""
    retransmissions: Mapping[str, int] = field(default_factory=dict)
    """Session retransmissions the node's links received, by kind (``request``/``reply``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "connections_up": self.connections_up,
            "subscriptions": self.subscriptions,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "drops": dict(sorted(self.drops.items())),
            "retransmissions": dict(sorted(self.retransmissions.items())),
            "last_seen": self.scraped_at,
        }


_SUMS = {
    "slimwire_link_messages_received_total": "messages_in",
    "slimwire_link_messages_sent_total": "messages_out",
    "slimwire_link_bytes_received_total": "bytes_in",
    "slimwire_link_bytes_sent_total": "bytes_out",
}


def _count(value: float) -> int:
    return int(value) if math.isfinite(value) and value >= 0 else 0


def figures_from_samples(samples: Iterable[Sample], scraped_at: float) -> NodeFigures:
    """Totals of a node's ``/metrics`` (the names :func:`slimwire.metrics.render_metrics` uses)."""
    sums = dict.fromkeys(_SUMS.values(), 0)
    drops: dict[str, int] = {}
    rtx: dict[str, int] = {}
    conns = up = subs = 0
    for s in samples:
        if s.name in _SUMS:
            sums[_SUMS[s.name]] += _count(s.value)
        elif s.name == "slimwire_link_drops_total":
            reason = dict(s.labels).get("reason", "unknown")
            drops[reason] = drops.get(reason, 0) + _count(s.value)
        elif s.name == "slimwire_link_retransmissions_total":
            kind = dict(s.labels).get("kind", "unknown")
            rtx[kind] = rtx.get(kind, 0) + _count(s.value)
        elif s.name == "slimwire_connections":
            conns += _count(s.value)
            if dict(s.labels).get("state") == "up":
                up += _count(s.value)
        elif s.name == "slimwire_subscriptions":
            subs = _count(s.value)
    return NodeFigures(
        conns, up, subs, **sums, drops=drops, scraped_at=scraped_at, retransmissions=rtx
    )


async def http_get(url: str, timeout: float, max_body: int = MAX_BODY) -> str:
    """GET ``url`` (plain http) and return the body of a 200. Raises :class:`ValueError` for a
    URL that is not ``http://`` or a status other than 200, :class:`TransportError` when the
    connection fails or ``timeout`` runs out, :class:`RemoteProtocolError` for a response that
    is not HTTP or is over ``max_body``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http:// metrics URLs are scraped, got {url!r}")
    answer = await _http.request(
        "GET", url, headers={"Accept": "text/plain"}, timeout=timeout, max_body=max_body
    )
    if answer.status != 200:
        raise ValueError(f"HTTP status {answer.status}")
    return answer.body.decode("utf-8", errors="replace")


class TelemetryScraper:
    """Scrapes ``targets()`` (node id -> metrics URL) every ``interval`` seconds, at most
    ``concurrency`` at once, each within ``timeout``; :attr:`latest` holds the figures of each
    node's last successful scrape (kept after a failure: ``scraped_at`` then tells its age)."""

    def __init__(
        self,
        targets: Callable[[], Mapping[str, str]],
        *,
        interval: float = 15.0,
        timeout: float = 5.0,
        concurrency: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._targets = targets
        self.interval = interval
        self.timeout = timeout
        self._sem = asyncio.Semaphore(concurrency)
        self._clock = clock
        self.latest: dict[str, NodeFigures] = {}
        self.errors: dict[str, str] = {}
        self._task = BackgroundTask(self._run, "telemetry-scraper", log)

    def __repr__(self) -> str:
        return f"<TelemetryScraper every {self.interval}s, {len(self.latest)} node(s) seen>"

    async def scrape_one(self, node_id: str, url: str) -> NodeFigures | None:
        async with self._sem:
            try:
                text = await http_get(url, self.timeout)
                figures = figures_from_samples(parse_prometheus(text), self._clock())
            except (SlimwireError, ValueError) as exc:
                self.errors[node_id] = str(exc) or type(exc).__name__
                log.debug("telemetry scrape of %s (%s) failed: %s", node_id, url, exc)
                return None
        self.latest[node_id] = figures
        self.errors.pop(node_id, None)
        return figures

    async def scrape_all(self) -> None:
        targets = dict(self._targets())
        await asyncio.gather(*(self.scrape_one(n, u) for n, u in targets.items()))

    async def _run(self) -> None:
        while True:
            await self.scrape_all()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()


def render_controller_metrics(
    connected: int,
    nodes: int,
    links: Mapping[str, int],
    routes: Mapping[str, int],
    figures: Mapping[str, NodeFigures],
) -> str:
    """The controller's Prometheus text: its own tables plus each node's scraped totals."""
    fams = [
        _Family("slimwire_controller_nodes", "gauge", "Registered nodes."),
        _Family("slimwire_controller_nodes_connected", "gauge", "Nodes with an open stream."),
        _Family("slimwire_controller_links", "gauge", "Links by status."),
        _Family("slimwire_controller_routes", "gauge", "Routes by status."),
    ]
    fams[0].add(nodes)
    fams[1].add(connected)
    for status, n in sorted(links.items()):
        fams[2].add(n, status=status)
    for status, n in sorted(routes.items()):
        fams[3].add(n, status=status)
    per_node = {
        key: _Family(f"slimwire_controller_node_{key}", "gauge", f"A node's {key}, last scrape.")
        for key in (
            "connections",
            "subscriptions",
            "messages_in",
            "messages_out",
            "bytes_in",
            "bytes_out",
            "last_seen_seconds",
        )
    }
    drops = _Family("slimwire_controller_node_drops", "gauge", "A node's drops by reason.")
    rtx = _Family(
        "slimwire_controller_node_retransmissions",
        "gauge",
        "Session retransmissions a node's links received, by kind, last scrape.",
    )
    for node_id, f in sorted(figures.items()):
        for key, fam in per_node.items():
            value = f.scraped_at if key == "last_seen_seconds" else getattr(f, key)
            fam.add(value, node=node_id)
        for reason, n in sorted(f.drops.items()):
            drops.add(n, node=node_id, reason=reason)
        for kind, n in sorted(f.retransmissions.items()):
            rtx.add(n, node=node_id, kind=kind)
    fams.extend(per_node.values())
    fams.append(drops)
    fams.append(rtx)
    return "\n".join(line for f in fams for line in f.render()) + "\n"


class ControllerMetricsServer(MetricsServer):
    """``/metrics`` and ``/healthz`` of the controller (the node server's HTTP driver with the
    controller's text)."""

    def __init__(self, render: Callable[[], str], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(None, host, port)
        self._render = render

    def _respond(self, request: Request) -> _http.Response:
        if request.method != "GET":
            return _http.Response(405, b"GET only\n")
        if request.path == "/metrics":
            return _http.Response(200, self._render().encode(), PROMETHEUS_TEXT)
        if request.path in ("/healthz", "/health"):
            return _http.Response(200, b'{"status": "ok"}\n', "application/json")
        return _http.Response(404, b"try /metrics or /healthz\n")
