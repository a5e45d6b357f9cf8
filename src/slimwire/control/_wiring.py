"""Start a node's control-plane side from its YAML service section (the reference's shape).

.. code-block:: yaml

    services:
      slim/node-a:
        node_id: node-a
        domain_name: domain-a
        auth: {type: shared_secret, secret: "<32+ bytes>"}      # signs the registration
        # or a JWT: {type: jwt, token_file: /run/slim/node.jwt} (read at each registration)
        # or {type: authority, url: http://auth:8080, name: domain-a/nodes/node-a,
        #     client_id: ..., client_secret: ...}                 (renewed in the background)
        dataplane:
          servers: [{endpoint: "0.0.0.0:46357", metadata: {external_endpoint: "a.example:46357"}}]
        controller:
          clients: [{endpoint: "http://controller:50052", tls: {insecure: true}}]
          servers: [{endpoint: "127.0.0.1:46358", tls: {insecure: true}}]

``start_node_control(node, service)`` starts one :class:`Agent` per ``controller.clients``
entry and serves the node's own ``ControllerService`` on each ``controller.servers`` entry, so
``slimwire node`` only has to hand over the section it already parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimwire.auth import Identity, SharedSecretProvider
from slimwire.authority import AuthorityTokenProvider
from slimwire.control._agent import Agent
from slimwire.control._node_port import NodeAdapter
from slimwire.control._store import ConnDetail
from slimwire.errors import AuthError, ConfigError, TransportError
from slimwire.metrics import MetricsServer, served_metrics_url
from slimwire.transport import Server

__all__ = ["NodeControl", "start_node_control"]

log = logging.getLogger(__name__)


@dataclass
class NodeControl:
    """What :func:`start_node_control` started; ``await aclose()`` stops it."""

    agents: list[Agent] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    provider: AuthorityTokenProvider | None = None
    metrics: MetricsServer | None = None
    """The ``/metrics`` endpoint started for the controller's telemetry (None when the node
    already served one, or telemetry was turned off)."""

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.stop()
        for agent in self.agents:
            await agent.stop()
        for server in self.servers:
            await server.close(grace=1.0)
        if self.metrics is not None:
            await self.metrics.close()


def _map(raw: object, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    return raw


def _list(raw: object, where: str) -> list[Mapping[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list")
    return [_map(x, f"{where}[{i}]") for i, x in enumerate(raw)]


def _token_file(path: str) -> Callable[[], str]:
    def read() -> str:
        # read at each (re-)registration, so a token rotated on disk is picked up
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            log.warning("cannot read the registration token %s: %s", path, exc)
            return ""

    return read


async def _credentials(
    service: Mapping[str, Any], domain: str, node_id: str
) -> tuple[Callable[[], str], AuthorityTokenProvider | None]:
    auth = _map(service.get("auth"), "auth")
    kind = auth.get("type")
    if not auth:
        return (lambda: ""), None
    if kind == "shared_secret" and isinstance(auth.get("secret"), str):
        provider = SharedSecretProvider(Identity.generate(f"{domain}/{node_id}"), auth["secret"])
        return provider.token, None
    if kind == "jwt" and isinstance(auth.get("token_file"), str):
        return _token_file(auth["token_file"]), None
    if kind == "authority" and isinstance(auth.get("url"), str):
        authority = AuthorityTokenProvider(
            Identity.generate(f"{domain}/{node_id}"),
            auth["url"],
            name=str(auth.get("name") or f"{domain}/nodes/{node_id}"),
            client_id=auth.get("client_id"),
            client_secret=auth.get("client_secret"),
        )
        try:
            await authority.refresh()
        except (AuthError, TransportError) as exc:
            raise ConfigError(f"auth: no token from the authority: {exc}") from None
        authority.start()
        return authority.token, authority
    raise ConfigError(
        "auth: expected {type: shared_secret, secret}, {type: jwt, token_file} or "
        "{type: authority, url, name, client_id, client_secret}"
    )


def _endpoints(node: Any, service: Mapping[str, Any], metrics_url: str | None) -> list[ConnDetail]:
    dataplane = _map(service.get("dataplane"), "dataplane")
    out = []
    bound = list(getattr(node, "addresses", []))
    for i, server in enumerate(_list(dataplane.get("servers"), "dataplane.servers")):
        endpoint = str(server.get("endpoint", ""))
        host, _, port = endpoint.rpartition(":")
        if port == "0" and i < len(bound):  # a port picked at bind time
            endpoint = f"{host}:{bound[i][1]}"
        meta = _map(server.get("metadata"), "dataplane.servers.metadata")
        tls = _map(server.get("tls"), "dataplane.servers.tls")
        out.append(
            ConnDetail(
                endpoint,
                str(meta.get("external_endpoint", "") or ""),
                tls_required=not tls.get("insecure", False),
                metrics_url=metrics_url or "",
            )
        )
    return out


async def _telemetry_endpoint(node: Any) -> MetricsServer | None:
    """A ``/metrics`` server for the controller to scrape, where the node's data plane
    listens (so it is reachable wherever the node's links are, and exposed no further);
    None (logged) if it cannot be bound: telemetry must never stop a node from registering."""
    bound = list(getattr(node, "addresses", []))
    host = bound[0][0] if bound else "127.0.0.1"
    server = MetricsServer(node, host or "0.0.0.0", 0)
    try:
        await server.start()
    except ConfigError as exc:
        log.warning("no telemetry endpoint for the controller: %s", exc)
        return None
    log.info("telemetry for the controller on %s", server.url)
    return server


async def start_node_control(
    node: Any,
    service: Mapping[str, Any],
    *,
    credentials: Callable[[], str] | None = None,
    metrics_url: str | None = None,
    telemetry: bool = True,
) -> NodeControl:
    """Register ``node`` (a :class:`slimwire.dataplane.Node`) with every configured controller
    and serve its ControllerService; returns what to close at shutdown.

    ``credentials`` overrides the ``auth`` section (e.g. a provider the caller keeps fresh).
    ``metrics_url`` is advertised to the controller for telemetry; by default the URL of a
    :class:`slimwire.metrics.MetricsServer` already serving ``node``, and when there is none
    (and ``telemetry``) one is started here, on the host of the node's first data-plane
    server and a free port: the controller's protocol has no telemetry message, so the
    figures travel by the controller scraping it (see ``_telemetry``), and a node must not
    need an operator to open an endpoint for its figures to reach the controller."""
    controller = _map(service.get("controller"), "controller")
    node_id = str(service.get("node_id") or node.node_id)
    domain = str(service.get("domain_name") or "")
    port = NodeAdapter(node)
    control = NodeControl()
    if credentials is None:
        credentials, control.provider = await _credentials(service, domain, node_id)
    if metrics_url is None:
        metrics_url = served_metrics_url(node)
    try:
        if metrics_url is None and telemetry and _list(controller.get("clients"), "clients"):
            control.metrics = await _telemetry_endpoint(node)
            metrics_url = control.metrics.url if control.metrics is not None else None
        if hasattr(node, "count_retransmissions") and metrics_url:
            node.count_retransmissions = True  # the controller reads them
        endpoints = _endpoints(node, service, metrics_url)
        agents = control.agents
        for client in _list(controller.get("clients"), "controller.clients"):
            url = str(client.get("endpoint", ""))
            if "://" not in url:
                tls = _map(client.get("tls"), "controller.clients.tls")
                url = ("http://" if tls.get("insecure", False) else "https://") + url
            agent = Agent(port, url, domain=domain, endpoints=endpoints, credentials=credentials)
            agent.start()
            agents.append(agent)
        servers = _list(controller.get("servers"), "controller.servers")
        if servers:
            answering = agents[0] if agents else Agent(port, "", domain=domain, endpoints=endpoints)
            for server in servers:
                host, _, p = str(server.get("endpoint", "")).rpartition(":")
                if not p.isdigit():
                    raise ConfigError("controller.servers.endpoint: expected HOST:PORT")
                control.servers.append(await answering.serve(host or "0.0.0.0", int(p)))
    except BaseException:
        await control.aclose()  # nothing half-started outlives a refused config
        raise
    log.info(
        "node %s: %d controller(s), %d control server(s)",
        node_id,
        len(control.agents),
        len(control.servers),
    )
    return control
