"""Session configuration: what the initiator chooses and the joiner learns from JoinRequest."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from slimwire._proto import data_plane_pb2 as pb

__all__ = [
    "CONTROL_INTERVAL",
    "CONTROL_MAX_RETRIES",
    "HEARTBEAT_INTERVAL",
    "MAX_MISSED_HEARTBEATS",
    "SessionConfig",
    "SessionKind",
]

CONTROL_INTERVAL = 1.0
"""Seconds between resends of an unanswered control request (the reference's default)."""
CONTROL_MAX_RETRIES = 10
HEARTBEAT_INTERVAL = 10.0
MAX_MISSED_HEARTBEATS = 3
DEFAULT_DATA_INTERVAL = 1.0
DEFAULT_DATA_MAX_RETRIES = 5


class SessionKind(enum.IntEnum):
    """The wire's session type."""

    POINT_TO_POINT = pb.SESSION_TYPE_POINT_TO_POINT
    GROUP = pb.SESSION_TYPE_MULTICAST


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How a session behaves.

    Delivery is reliable (acks, retransmission, in-order delivery) only when both ``interval``
    (seconds) and ``max_retries`` are set, exactly as in the reference; the joiner inherits
    them from the JoinRequest's timer settings. ``metadata`` travels on the JoinRequest.
    """

    kind: SessionKind = SessionKind.POINT_TO_POINT
    interval: float | None = None
    max_retries: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    mls: bool = False
    integrity_percent: int = 100
    """With MLS: how often (percent) a received message's sealed AAD is checked against its
    header (the reference's ``header_integrity_validation_percent``; 0 = never). The initiator
    sends it in the JoinRequest; a joiner takes it from there (clamped to 100)."""

    def __post_init__(self) -> None:
        if self.interval is not None and not self.interval > 0:
            raise ValueError("interval must be positive")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.integrity_percent < 0:
            raise ValueError("integrity_percent must be >= 0")

    @classmethod
    def p2p(
        cls,
        *,
        reliable: bool = False,
        interval: float = DEFAULT_DATA_INTERVAL,
        max_retries: int = DEFAULT_DATA_MAX_RETRIES,
        metadata: Mapping[str, str] | None = None,
        mls: bool = False,
    ) -> SessionConfig:
        return cls(
            SessionKind.POINT_TO_POINT,
            interval if reliable else None,
            max_retries if reliable else None,
            dict(metadata or {}),
            mls,
        )

    @classmethod
    def group(
        cls,
        *,
        reliable: bool = False,
        interval: float = DEFAULT_DATA_INTERVAL,
        max_retries: int = DEFAULT_DATA_MAX_RETRIES,
        metadata: Mapping[str, str] | None = None,
        mls: bool = False,
    ) -> SessionConfig:
        return cls(
            SessionKind.GROUP,
            interval if reliable else None,
            max_retries if reliable else None,
            dict(metadata or {}),
            mls,
        )

    @property
    def reliable(self) -> bool:
        return self.interval is not None and self.max_retries is not None

    def timer_settings(self) -> pb.TimerSettings | None:
        """What the JoinRequest carries (only when both values are set)."""
        if self.interval is None or self.max_retries is None:
            return None
        return pb.TimerSettings(timeout=round(self.interval * 1000), max_retries=self.max_retries)

    @classmethod
    def from_join_request(
        cls, kind: SessionKind, join: pb.JoinRequestPayload, metadata: Mapping[str, str]
    ) -> SessionConfig:
        interval: float | None = None
        retries: int | None = None
        if join.HasField("timer_settings"):
            interval = max(join.timer_settings.timeout, 1) / 1000.0
            retries = join.timer_settings.max_retries
        mls = join.HasField("mls_settings")
        percent = min(join.mls_settings.header_integrity_validation_percent, 100) if mls else 100
        return cls(kind, interval, retries, dict(metadata), mls, percent)
