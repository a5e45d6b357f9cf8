"""The session layer, sans-IO: point-to-point sessions with optional reliable delivery.

:class:`SessionLayer` holds every session of one app; feed it messages and clock ticks, and it
hands back messages to send and events for the app. The asyncio driver is ``slimwire.client``.
"""

from slimwire.session._base import SessionState
from slimwire.session._config import (
    CONTROL_INTERVAL,
    CONTROL_MAX_RETRIES,
    HEARTBEAT_INTERVAL,
    SessionConfig,
    SessionKind,
)
from slimwire.session._crypto import GroupCrypto
from slimwire.session._events import (
    DeliveryFailed,
    MessageDelivered,
    MessageLost,
    MessageReceived,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantStatus,
    ReceivedMessage,
    SessionClosed,
    SessionEstablished,
    SessionEvent,
    SessionFailed,
    SubscriptionChange,
    TaskDone,
)
from slimwire.session._group import GroupSession
from slimwire.session._ids import MAX_PUBLISH_ID, is_after, next_data_id
from slimwire.session._layer import Outputs, SessionLayer
from slimwire.session._p2p import P2PSession
from slimwire.session._reliability import Lost, ProducerBuffer, ReorderBuffer
from slimwire.session._replay import ControlReplayGuard
from slimwire.session._tokens import DEFAULT_TOKEN_REUSE, TokenCache
from slimwire.session._wire import INTERNAL_METADATA

__all__ = [
    "CONTROL_INTERVAL",
    "CONTROL_MAX_RETRIES",
    "DEFAULT_TOKEN_REUSE",
    "HEARTBEAT_INTERVAL",
    "INTERNAL_METADATA",
    "MAX_PUBLISH_ID",
    "ControlReplayGuard",
    "DeliveryFailed",
    "GroupCrypto",
    "GroupSession",
    "Lost",
    "MessageDelivered",
    "MessageLost",
    "MessageReceived",
    "Outputs",
    "P2PSession",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantStatus",
    "ProducerBuffer",
    "ReceivedMessage",
    "ReorderBuffer",
    "SessionClosed",
    "SessionConfig",
    "SessionEstablished",
    "SessionEvent",
    "SessionFailed",
    "SessionKind",
    "SessionLayer",
    "SessionState",
    "SubscriptionChange",
    "TaskDone",
    "TokenCache",
    "is_after",
    "next_data_id",
]
