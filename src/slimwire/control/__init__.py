"""The control plane: a controller that computes links and routes for a mesh of nodes, its
store, and the node agent that applies them.

* :class:`Store` keeps the model (nodes, domains and their registration secrets, links, routes,
  topology segments) in SQLite, so a restarted controller knows what it had decided.
* :mod:`._routing` holds the pure route computation (domain graphs, gateways, shortest-path
  trees); :class:`ControllerCore` turns events into per-node commands (sans-IO) and
  :class:`Controller` serves it (southbound ``ControllerService``, northbound
  ``ControlPlaneService``).
* :class:`AgentCore` / :class:`Agent`: the node side (register, apply, ack, announce).
"""

from __future__ import annotations

from slimwire.control._agent import Agent, AgentCore, NodePort, Plan
from slimwire.control._controller import (
    DEFAULT_NORTHBOUND_PORT,
    DEFAULT_SOUTHBOUND_PORT,
    Controller,
)
from slimwire.control._core import ControllerCore, Outbound
from slimwire.control._node_port import NodeAdapter
from slimwire.control._routing import (
    Announcement,
    LinkPlan,
    RouteDir,
    RoutePlan,
    Topology,
    choose_gateways,
    plan_links,
    plan_routes,
    segment_graphs,
    shortest_path_tree,
)
from slimwire.control._store import (
    ALL_NODES,
    ConnDetail,
    LinkRecord,
    LinkStatus,
    NodeRecord,
    RouteRecord,
    RouteStatus,
    SegmentRecord,
    Store,
)
from slimwire.control._wiring import NodeControl, start_node_control

__all__ = [
    "ALL_NODES",
    "DEFAULT_NORTHBOUND_PORT",
    "DEFAULT_SOUTHBOUND_PORT",
    "Agent",
    "AgentCore",
    "Announcement",
    "ConnDetail",
    "Controller",
    "ControllerCore",
    "LinkPlan",
    "LinkRecord",
    "LinkStatus",
    "NodeAdapter",
    "NodeControl",
    "NodePort",
    "NodeRecord",
    "Outbound",
    "Plan",
    "RouteDir",
    "RoutePlan",
    "RouteRecord",
    "RouteStatus",
    "SegmentRecord",
    "Store",
    "Topology",
    "choose_gateways",
    "plan_links",
    "plan_routes",
    "segment_graphs",
    "shortest_path_tree",
    "start_node_control",
]
