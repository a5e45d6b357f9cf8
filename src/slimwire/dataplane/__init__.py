"""The messaging node: connection table, subscription table, forwarding rules, the Node.

The core (:class:`Forwarder`) is sans-IO: messages in, messages out per connection. The asyncio
:class:`Node` drives it over the gRPC transport and the link layer.
"""

from __future__ import annotations

from ._forwarder import DEFAULT_MAX_MESSAGE_SIZE, Forwarder
from ._launch import NodeProcess, run_node
from ._node import Node
from ._subscriptions import SubscriptionTable
from ._types import (
    ConnInfo,
    ConnState,
    ConnType,
    DropReason,
    RouteKey,
    SubscriptionEntry,
    conn_type_from_link,
    link_type_of,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ConnInfo",
    "ConnState",
    "ConnType",
    "DropReason",
    "Forwarder",
    "MessageTracer",
    "Node",
    "NodeProcess",
    "RouteKey",
    "SubscriptionEntry",
    "SubscriptionTable",
    "conn_type_from_link",
    "link_type_of",
    "run_node",
]
