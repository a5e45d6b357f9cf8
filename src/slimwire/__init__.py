"""slimwire: SLIM (Secure Low-Latency Interactive Messaging) in Python.

Wire-compatible with the reference implementation (agntcy/slim): nodes that route by
hierarchical names, sessions with MLS end-to-end encryption, and a control plane.

    async with await slimwire.connect(url, name="org/ns/alice", secret=s) as app:
        async with app.open_session("org/ns/bob", reliable=True) as session:
            await session.publish(b"hello")
            reply = await session.receive(timeout=5)

Lower layers (``slimwire.transport``, ``slimwire.link``, ``slimwire.dataplane``,
``slimwire.session``, ``slimwire.mls``, ``slimwire.auth``, ``slimwire.policy``) have their own
curated APIs.
"""

from __future__ import annotations

from slimwire.auth import (
    Identity,
    KeyAlgorithm,
    SharedSecretProvider,
    SharedSecretVerifier,
    SigningKey,
)
from slimwire.client import App, Message, Session, connect
from slimwire.config import NodeConfig, default_config, load_config
from slimwire.dataplane import Node, run_node
from slimwire.errors import (
    AuthError,
    ConfigError,
    ConnectionClosed,
    DeliveryFailed,
    MlsError,
    ProtocolError,
    PublishDenied,
    SessionClosed,
    SessionError,
    SlimwireError,
    SlimwireTimeout,
    SubscriptionError,
    TransportError,
)
from slimwire.names import NULL_ID, Name
from slimwire.session import SessionConfig

__version__ = "0.1.0"

__all__ = [
    "NULL_ID",
    "App",
    "AuthError",
    "ConfigError",
    "ConnectionClosed",
    "DeliveryFailed",
    "Identity",
    "KeyAlgorithm",
    "Message",
    "MlsError",
    "Name",
    "Node",
    "NodeConfig",
    "ProtocolError",
    "PublishDenied",
    "Session",
    "SessionClosed",
    "SessionConfig",
    "SessionError",
    "SharedSecretProvider",
    "SharedSecretVerifier",
    "SigningKey",
    "SlimwireError",
    "SlimwireTimeout",
    "SubscriptionError",
    "TransportError",
    "__version__",
    "connect",
    "default_config",
    "load_config",
    "run_node",
]
