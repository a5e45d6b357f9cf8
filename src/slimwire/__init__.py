"""slimwire: SLIM (Secure Low-Latency Interactive Messaging) in Python.

Wire-compatible with the reference implementation (agntcy/slim): nodes that route by
hierarchical names, sessions with MLS end-to-end encryption, and a control plane.
"""

from __future__ import annotations

from slimwire.errors import (
    AuthError,
    ConfigError,
    ConnectionClosed,
    DeliveryFailed,
    MlsError,
    ProtocolError,
    SessionClosed,
    SessionError,
    SlimwireError,
    SlimwireTimeout,
    SubscriptionError,
    TransportError,
)
from slimwire.names import NULL_ID, Name

__version__ = "0.1.0"

__all__ = [
    "NULL_ID",
    "AuthError",
    "ConfigError",
    "ConnectionClosed",
    "DeliveryFailed",
    "MlsError",
    "Name",
    "ProtocolError",
    "SessionClosed",
    "SessionError",
    "SlimwireError",
    "SlimwireTimeout",
    "SubscriptionError",
    "TransportError",
    "__version__",
]
