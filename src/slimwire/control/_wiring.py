"""Start a node's control-plane side from its YAML service section (the reference's shape).

.. code-block:: yaml

    services:
      slim/node-a:
        node_id: node-a
        domain_name: domain-a
        auth: {type: shared_secret, secret: "<32+ bytes>"}      # signs the registration
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
from typing import Any

from slimwire.auth import Identity, SharedSecretProvider
from slimwire.control._agent import Agent
from slimwire.control._node_port import NodeAdapter
from slimwire.control._store import ConnDetail
from slimwire.errors import ConfigError
from slimwire.transport import Server

__all__ = ["NodeControl", "start_node_control"]

log = logging.getLogger(__name__)


@dataclass
class NodeControl:
    """What :func:`start_node_control` started; ``await aclose()`` stops it."""

    agents: list[Agent] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)

    async def aclose(self) -> None:
        for agent in self.agents:
            await agent.stop()
        for server in self.servers:
            await server.close(grace=1.0)


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


def _credentials(service: Mapping[str, Any], domain: str, node_id: str) -> Callable[[], str]:
    auth = _map(service.get("auth"), "auth")
    if not auth:
        return lambda: ""
    if auth.get("type") != "shared_secret" or not isinstance(auth.get("secret"), str):
        raise ConfigError("auth: only {type: shared_secret, secret} signs a registration here")
    provider = SharedSecretProvider(Identity.generate(f"{domain}/{node_id}"), auth["secret"])
    return provider.token


def _endpoints(node: Any, service: Mapping[str, Any]) -> list[ConnDetail]:
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
            )
        )
    return out


async def start_node_control(node: Any, service: Mapping[str, Any]) -> NodeControl:
    """Register ``node`` (a :class:`slimwire.dataplane.Node`) with every configured controller
    and serve its ControllerService; returns what to close at shutdown."""
    controller = _map(service.get("controller"), "controller")
    node_id = str(service.get("node_id") or node.node_id)
    domain = str(service.get("domain_name") or "")
    port = NodeAdapter(node)
    credentials = _credentials(service, domain, node_id)
    endpoints = _endpoints(node, service)
    control = NodeControl()
    agents = []
    for client in _list(controller.get("clients"), "controller.clients"):
        url = str(client.get("endpoint", ""))
        if "://" not in url:
            tls = _map(client.get("tls"), "controller.clients.tls")
            url = ("http://" if tls.get("insecure", False) else "https://") + url
        agent = Agent(port, url, domain=domain, endpoints=endpoints, credentials=credentials)
        agent.start()
        agents.append(agent)
    control.agents = agents
    servers = _list(controller.get("servers"), "controller.servers")
    if servers:
        answering = agents[0] if agents else Agent(port, "", domain=domain, endpoints=endpoints)
        for server in servers:
            host, _, p = str(server.get("endpoint", "")).rpartition(":")
            if not p.isdigit():
                raise ConfigError("controller.servers.endpoint: expected HOST:PORT")
            control.servers.append(await answering.serve(host or "0.0.0.0", int(p)))
    log.info(
        "node %s: %d controller(s), %d control server(s)",
        node_id,
        len(control.agents),
        len(control.servers),
    )
    return control
