"""The connection table: one mutable row per link, with counters, snapshotted for listing.

Rows are plain slotted objects because the forwarding hot path updates their counters on every
message; callers outside the core only ever see the frozen :class:`ConnInfo` snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from slimwire.link import HeaderMac, Relay

from ._types import ConnInfo, ConnState, ConnType, DropReason

__all__ = ["Conn", "ConnectionTable"]

_log = logging.getLogger(__name__)


class Conn:
    """One row of the connection table (mutable; owned by the core)."""

    __slots__ = (
        "bad_mac_run",
        "bytes_in",
        "bytes_out",
        "conn_id",
        "conn_type",
        "connected_at",
        "drops",
        "group_cache",
        "last_activity",
        "link_id",
        "mac",
        "msgs_in",
        "msgs_out",
        "out",
        "outbound",
        "peer_node_id",
        "peer_version",
        "relay",
        "remote",
        "require_mac",
        "route_cache",
        "route_epoch",
        "rtx_replies",
        "rtx_requests",
        "sign_mac",
        "state",
        "verifies",
    )

    def __init__(
        self,
        conn_id: int,
        conn_type: ConnType,
        *,
        remote: str = "",
        link_id: str = "",
        peer_node_id: str = "",
        peer_version: str = "",
        mac: HeaderMac | None = None,
        require_mac: bool = True,
        outbound: bool = False,
        now: float = 0.0,
    ) -> None:
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.state = ConnState.UP
        self.remote = remote
        self.link_id = link_id
        self.peer_node_id = peer_node_id
        self.peer_version = peer_version
        self.mac = mac
        self.require_mac = require_mac
        self.outbound = outbound
        # header MACs apply to Remote and Edge links only (peers and local apps are exempt)
        self.verifies = conn_type in (ConnType.REMOTE, ConnType.EDGE)
        # the key every copy sent on this link is signed with (None: send unsigned)
        self.sign_mac = mac if self.verifies else None
        # the fused unicast path for what arrives here (MAC'd links; set by the forwarder)
        self.relay: Relay | None = None
        self.connected_at = now
        self.last_activity = now
        self.msgs_in = 0
        self.bytes_in = 0
        self.msgs_out = 0
        self.bytes_out = 0
        self.drops: dict[DropReason, int] = {}
        # session-layer retransmissions received (counted only when the forwarder is asked to)
        self.rtx_requests = 0
        self.rtx_replies = 0
        self.bad_mac_run = 0
        self.out: list[bytes] = []
        # unicast routes from this link: destination key -> target row (see Forwarder)
        self.route_cache: dict[tuple[int, int, int, int], Conn] = {}
        # multicast routes from this link (every target MAC'd): destination key -> targets
        self.group_cache: dict[tuple[int, int, int, int], tuple[Conn, ...]] = {}
        self.route_epoch: tuple[int, int] = (-1, -1)

    def __repr__(self) -> str:
        return (
            f"<Conn {self.conn_id} {self.conn_type.name} {self.state.value} remote={self.remote!r}>"
        )

    def count_drop(self, reason: DropReason, detail: str) -> None:
        """Count a dropped message; log the first of each reason per connection as a warning
        and the rest at debug level, so a flood cannot flood the log."""
        n = self.drops.get(reason, 0)
        self.drops[reason] = n + 1
        if n == 0:
            _log.warning(
                "conn %d (%s %s): dropping message: %s: %s (further drops of this kind are "
                "counted, logged at debug level)",
                self.conn_id,
                self.conn_type.name.lower(),
                self.remote,
                reason.value,
                detail,
            )
        elif _log.isEnabledFor(logging.DEBUG):
            _log.debug("conn %d: dropping message: %s: %s", self.conn_id, reason.value, detail)

    def snapshot(self) -> ConnInfo:
        return ConnInfo(
            conn_id=self.conn_id,
            conn_type=self.conn_type,
            state=self.state,
            remote=self.remote,
            link_id=self.link_id,
            peer_node_id=self.peer_node_id,
            peer_version=self.peer_version,
            outbound=self.outbound,
            authenticated=self.mac is not None,
            connected_at=self.connected_at,
            last_activity=self.last_activity,
            msgs_in=self.msgs_in,
            bytes_in=self.bytes_in,
            msgs_out=self.msgs_out,
            bytes_out=self.bytes_out,
            drops=dict(self.drops),
            rtx_requests=self.rtx_requests,
            rtx_replies=self.rtx_replies,
        )


class ConnectionTable:
    """Rows by conn id; ids are never reused while the table lives (a reconnecting client
    link keeps its id, as the reference does)."""

    def __init__(self) -> None:
        self.rows: dict[int, Conn] = {}
        """Rows by id; the forwarder reads it directly on the hot path."""
        self._next_id = 1

    def __repr__(self) -> str:
        return f"<ConnectionTable {len(self.rows)} connections>"

    def allocate_id(self) -> int:
        cid = self._next_id
        self._next_id += 1
        return cid

    def put(self, conn: Conn) -> None:
        self.rows[conn.conn_id] = conn

    def get(self, conn_id: int) -> Conn | None:
        return self.rows.get(conn_id)

    def pop(self, conn_id: int) -> Conn | None:
        return self.rows.pop(conn_id, None)

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self.rows

    def __iter__(self) -> Iterator[Conn]:
        return iter(list(self.rows.values()))

    def __len__(self) -> int:
        return len(self.rows)

    def of_type(self, conn_type: ConnType) -> list[Conn]:
        return [
            c for c in self.rows.values() if c.conn_type is conn_type and c.state is ConnState.UP
        ]

    def snapshot(self) -> list[ConnInfo]:
        return [c.snapshot() for c in self.rows.values()]
