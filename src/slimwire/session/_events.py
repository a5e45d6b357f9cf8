"""What the session layer tells its driver: immutable event values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from slimwire.names import Name
from slimwire.session._config import SessionConfig

__all__ = [
    "DeliveryFailed",
    "MessageDelivered",
    "MessageLost",
    "MessageReceived",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantStatus",
    "ReceivedMessage",
    "SessionClosed",
    "SessionEstablished",
    "SessionEvent",
    "SessionFailed",
    "SubscriptionChange",
    "TaskDone",
]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """An application message as the user sees it (internal metadata removed)."""

    session_id: int
    message_id: int
    source: Name
    destination: Name
    payload: bytes
    payload_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    sender_id: str = ""
    """The verified subject of the sender's token when it was checked, else ``""``."""


_RECEIVED_FIELDS = (
    "session_id",
    "message_id",
    "source",
    "destination",
    "payload",
    "payload_type",
    "metadata",
    "sender_id",
)
assert tuple(f.name for f in fields(ReceivedMessage)) == _RECEIVED_FIELDS
_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7 = (
    getattr(ReceivedMessage, name).__set__ for name in _RECEIVED_FIELDS
)
_object_new = object.__new__


def received_message(  # noqa: PLR0917 - the fields, in order, as ReceivedMessage(...) takes them
    session_id: int,
    message_id: int,
    source: Name,
    destination: Name,
    payload: bytes,
    payload_type: str,
    metadata: Mapping[str, str],
) -> ReceivedMessage:
    """``ReceivedMessage(...)`` at half the cost, for the data path (one per received message):
    a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, the slots'
    descriptors set them directly. The value is as immutable afterwards."""
    msg: ReceivedMessage = _object_new(ReceivedMessage)
    _R0(msg, session_id)
    _R1(msg, message_id)
    _R2(msg, source)
    _R3(msg, destination)
    _R4(msg, payload)
    _R5(msg, payload_type)
    _R6(msg, metadata)
    _R7(msg, "")
    return msg


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """A session is ready: we initiated it (``initiator``) or a peer invited us."""

    session_id: int
    peer: Name
    initiator: bool
    config: SessionConfig


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """Opening a session failed (no peer answered, or it was refused)."""

    session_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session is over; ``by_peer`` when the other side closed it."""

    session_id: int
    by_peer: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message: ReceivedMessage


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """Every receiver acknowledged our reliable message ``message_id``."""

    session_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """Our reliable message ``message_id`` was not acknowledged after every retry."""

    session_id: int
    message_id: int
    missing: tuple[Name, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageLost:
    """Messages from ``source`` will never arrive (``count`` ids from ``message_id`` on): the
    sender no longer has them, or retransmission requests gave up."""

    session_id: int
    source: Name
    message_id: int
    count: int = 1


@dataclass(frozen=True, slots=True)
class ParticipantJoined:
    session_id: int
    participant: Name


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    session_id: int
    participant: Name


@dataclass(frozen=True, slots=True)
class ParticipantStatus:
    """A member went offline (missed heartbeats) or came back online."""

    session_id: int
    participant: Name
    online: bool


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """The driver must (un)subscribe ``name`` (a group channel) at the node for this app.

    Handled before the messages of the same batch are sent, so a member is subscribed to the
    channel by the time its GROUP_ACK reaches the moderator."""

    session_id: int
    name: Name
    subscribe: bool


@dataclass(frozen=True, slots=True)
class TaskDone:
    """A moderator task (``invite``/``remove``) finished; ``error`` is empty on success."""

    session_id: int
    task_id: int
    participant: Name | None
    error: str = ""


SessionEvent = (
    SessionEstablished
    | SessionFailed
    | SessionClosed
    | MessageReceived
    | MessageDelivered
    | DeliveryFailed
    | MessageLost
    | ParticipantJoined
    | ParticipantLeft
    | ParticipantStatus
    | SubscriptionChange
    | TaskDone
)
