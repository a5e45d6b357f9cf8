"""The controller's persistent model, in SQLite (a file, or ``:memory:`` for tests).

The tables follow the reference controller's (nodes, routes, links, topology segments and
registration secrets) so that what survives a restart is the same: which nodes exist and how to
reach them, which names were announced where (routes whose source is ``*``), which links and
per-node routes were computed and how far each got (Pending -> Applied | Failed, Deleted).
Whether a node is *connected* is not stored: it is a fact about the current process.

The store is plain methods over one ``sqlite3`` connection, no asyncio: the controller calls it
from its event loop and every call is a short local transaction. A ``schema_version`` table and
an ordered list of migrations let later versions change the schema without losing data.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from slimwire.errors import ControlPlaneError

__all__ = [
    "ALL_NODES",
    "METRICS_KEY",
    "TELEMETRY_KEY",
    "ConnDetail",
    "LinkRecord",
    "LinkStatus",
    "NodeRecord",
    "RouteRecord",
    "RouteStatus",
    "SegmentRecord",
    "Store",
]

ALL_NODES = "*"
"""The source node of an *announcement*: a route row that says "this name lives on dest"."""


class LinkStatus(enum.IntEnum):
    """Link states; 1-3 are the northbound ``LinkStatus`` values, 4 is the reference's deleted."""

    PENDING = 1
    APPLIED = 2
    FAILED = 3
    DELETED = 4


class RouteStatus(enum.IntEnum):
    """Route states, numbered as the northbound ``RouteStatus`` enum."""

    APPLIED = 1
    FAILED = 2
    DELETED = 3
    PENDING = 4


METRICS_KEY = "slimwire_metrics"
"""``ConnectionDetails.metadata`` key: the node's Prometheus ``/metrics`` URL."""
TELEMETRY_KEY = "slimwire_telemetry"
"""``ListNodes`` ``ConnectionDetails.metadata`` key: the node's latest scraped figures."""


@dataclass(frozen=True, slots=True)
class ConnDetail:
    """How other nodes reach a node (one ``ConnectionDetails`` of its registration)."""

    endpoint: str
    external_endpoint: str = ""
    tls_required: bool = False
    auth_method: int = 0
    metrics_url: str = ""
    """Where the node serves Prometheus ``/metrics`` (``metadata.slimwire_metrics``)."""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "endpoint": self.endpoint,
            "external_endpoint": self.external_endpoint,
            "tls_required": self.tls_required,
            "auth_method": self.auth_method,
        }
        if self.metrics_url:
            out["metrics_url"] = self.metrics_url
        return out

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> ConnDetail:
        return cls(
            endpoint=str(raw.get("endpoint", "")),
            external_endpoint=str(raw.get("external_endpoint") or ""),
            tls_required=bool(raw.get("tls_required", False)),
            auth_method=int(raw.get("auth_method", 0)),  # type: ignore[call-overload]
            metrics_url=str(raw.get("metrics_url") or ""),
        )


@dataclass(frozen=True, slots=True)
class NodeRecord:
    id: str
    domain: str
    conn_details: tuple[ConnDetail, ...] = ()
    created_at: int = 0
    last_updated: int = 0


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A link the controller wants: ``source`` dials ``dest`` at ``dest_endpoint``."""

    link_id: str
    source_node_id: str
    source_domain: str
    dest_node_id: str
    dest_domain: str
    dest_endpoint: str
    conn_config_data: str
    status: LinkStatus = LinkStatus.PENDING
    status_msg: str = ""
    created_at: int = 0
    last_updated: int = 0


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """A name routed at ``source_node_id`` toward ``dest_node_id`` over ``link_id``.

    With ``source_node_id == ALL_NODES`` it is an announcement: ``dest_node_id`` has a local
    subscriber for the name, and the concrete routes are derived from it.
    """

    id: str
    source_node_id: str
    source_domain: str
    dest_node_id: str
    dest_domain: str
    link_id: str | None
    components: tuple[str, str, str]
    component_id: int | None = None
    status: RouteStatus = RouteStatus.PENDING
    status_msg: str = ""
    created_at: int = 0
    last_updated: int = 0

    @property
    def name_key(self) -> tuple[str, str, str, int | None]:
        return (*self.components, self.component_id)


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    name: str
    edges: tuple[tuple[str, str], ...] = field(default=())

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted({d for e in self.edges for d in e}))


_MIGRATIONS: tuple[str, ...] = (
    # 1: the reference's initial schema (plus a monotonic sequence for announcement order)
    """
    CREATE TABLE nodes (
        id TEXT NOT NULL PRIMARY KEY,
        domain_name TEXT,
        conn_details TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_updated BIGINT NOT NULL
    );
    CREATE TABLE routes (
        id TEXT NOT NULL PRIMARY KEY,
        seq INTEGER NOT NULL,
        source_node_id TEXT NOT NULL,
        source_domain TEXT NOT NULL DEFAULT '',
        dest_node_id TEXT NOT NULL,
        dest_domain TEXT NOT NULL DEFAULT '',
        link_id TEXT,
        component0 TEXT NOT NULL,
        component1 TEXT NOT NULL,
        component2 TEXT NOT NULL,
        component_id TEXT,
        status INTEGER NOT NULL,
        status_msg TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_updated BIGINT NOT NULL
    );
    CREATE INDEX idx_routes_source_node_id ON routes (source_node_id);
    CREATE INDEX idx_routes_dest_node_id ON routes (dest_node_id);
    CREATE TABLE links (
        link_id TEXT NOT NULL,
        source_node_id TEXT NOT NULL,
        source_domain TEXT NOT NULL DEFAULT '',
        dest_node_id TEXT NOT NULL,
        dest_domain TEXT NOT NULL,
        dest_endpoint TEXT NOT NULL,
        conn_config_data TEXT NOT NULL,
        status INTEGER NOT NULL,
        status_msg TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_updated BIGINT NOT NULL,
        PRIMARY KEY (link_id, source_node_id, dest_node_id, dest_endpoint)
    );
    CREATE UNIQUE INDEX idx_links_unique_active_pair ON links (
        CASE WHEN source_node_id < dest_node_id THEN source_node_id ELSE dest_node_id END,
        CASE WHEN source_node_id < dest_node_id THEN dest_node_id ELSE source_node_id END
    ) WHERE status != 4 AND dest_node_id != '';
    CREATE TABLE topology_segments (
        id TEXT NOT NULL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE topology_segment_links (
        segment_id TEXT NOT NULL REFERENCES topology_segments(id) ON DELETE CASCADE,
        source_domain TEXT NOT NULL,
        dest_domain TEXT NOT NULL,
        PRIMARY KEY (segment_id, source_domain, dest_domain)
    );
    CREATE TABLE registration_secrets (
        domain_name TEXT NOT NULL PRIMARY KEY,
        secret TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)


def _edge(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class Store:
    """The controller's model over SQLite. ``Store(":memory:")`` keeps nothing on disk."""

    def __init__(
        self, path: str | Path = ":memory:", *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._seq = 0
        self._migrate()
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM routes").fetchone()
        self._seq = int(row[0])

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    # -- schema ----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
            current = 0
        else:
            current = int(row[0])
        if current > SCHEMA_VERSION:
            raise ControlPlaneError(
                f"database {self.path} has schema version {current}, newer than this "
                f"controller's {SCHEMA_VERSION}"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self._tx():
                for statement in _MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (version,))

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _now(self) -> int:
        return int(self._clock())

    # -- nodes -----------------------------------------------------------------------------

    def save_node(self, node: NodeRecord) -> NodeRecord:
        """Insert or update a node (keeps its first ``created_at``)."""
        now = self._now()
        old = self.get_node(node.id)
        saved = replace(node, created_at=old.created_at if old else now, last_updated=now)
        details = json.dumps([d.to_json() for d in saved.conn_details])
        self._db.execute(
            "INSERT INTO nodes (id, domain_name, conn_details, created_at, last_updated) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET domain_name = excluded."
            "domain_name, conn_details = excluded.conn_details, last_updated = excluded."
            "last_updated",
            (saved.id, saved.domain, details, saved.created_at, saved.last_updated),
        )
        return saved

    def get_node(self, node_id: str) -> NodeRecord | None:
        row = self._db.execute(
            "SELECT id, domain_name, conn_details, created_at, last_updated FROM nodes "
            "WHERE id = ?",
            (node_id,),
        ).fetchone()
        return None if row is None else self._node(row)

    def list_nodes(self) -> list[NodeRecord]:
        rows = self._db.execute(
            "SELECT id, domain_name, conn_details, created_at, last_updated FROM nodes ORDER BY id"
        ).fetchall()
        return [self._node(r) for r in rows]

    def delete_node(self, node_id: str) -> None:
        self._db.execute("DELETE FROM nodes WHERE id = ?", (node_id,))

    @staticmethod
    def _node(row: Sequence[object]) -> NodeRecord:
        details = tuple(ConnDetail.from_json(d) for d in json.loads(str(row[2])))
        return NodeRecord(str(row[0]), str(row[1] or ""), details, int(row[3]), int(row[4]))  # type: ignore[call-overload]

    # -- domains and registration secrets --------------------------------------------------

    def set_domain_secret(self, domain: str, secret: str) -> None:
        self._db.execute(
            "INSERT INTO registration_secrets (domain_name, secret, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT(domain_name) DO UPDATE SET secret = excluded.secret",
            (domain, secret, self._now()),
        )

    def domain_secret(self, domain: str) -> str | None:
        row = self._db.execute(
            "SELECT secret FROM registration_secrets WHERE domain_name = ?", (domain,)
        ).fetchone()
        return None if row is None else str(row[0])

    def remove_domain(self, domain: str) -> bool:
        """Forget a domain's secret (its nodes stay until they go); True if it had one."""
        cur = self._db.execute("DELETE FROM registration_secrets WHERE domain_name = ?", (domain,))
        return cur.rowcount > 0

    def list_domains(self) -> dict[str, list[str]]:
        """Every domain with a secret or a node, mapped to its node ids (sorted)."""
        out: dict[str, list[str]] = {
            str(r[0]): []
            for r in self._db.execute("SELECT domain_name FROM registration_secrets").fetchall()
        }
        for node in self.list_nodes():
            out.setdefault(node.domain, []).append(node.id)
        return dict(sorted(out.items()))

    # -- links -----------------------------------------------------------------------------

    def add_link(self, link: LinkRecord) -> LinkRecord:
        """Store a new link; at most one non-deleted link may join a pair of nodes."""
        now = self._now()
        saved = replace(link, created_at=now, last_updated=now)
        try:
            self._db.execute(
                "INSERT INTO links (link_id, source_node_id, source_domain, dest_node_id, "
                "dest_domain, dest_endpoint, conn_config_data, status, status_msg, created_at, "
                "last_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    saved.link_id,
                    saved.source_node_id,
                    saved.source_domain,
                    saved.dest_node_id,
                    saved.dest_domain,
                    saved.dest_endpoint,
                    saved.conn_config_data,
                    int(saved.status),
                    saved.status_msg,
                    now,
                    now,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise ControlPlaneError(
                f"a link between {link.source_node_id} and {link.dest_node_id} exists: {exc}"
            ) from None
        return saved

    def set_link_status(self, link_id: str, status: LinkStatus, msg: str = "") -> bool:
        """Change the status of the live (non-deleted) link ``link_id``; False if none."""
        cur = self._db.execute(
            "UPDATE links SET status = ?, status_msg = ?, last_updated = ? "
            "WHERE link_id = ? AND status != 4",
            (int(status), msg, self._now(), link_id),
        )
        return cur.rowcount > 0

    def get_link(self, link_id: str) -> LinkRecord | None:
        """The live link with this id (or the last deleted one, if none is live)."""
        row = self._db.execute(
            f"SELECT {_LINK_COLS} FROM links WHERE link_id = ? "
            "ORDER BY status = 4, last_updated DESC LIMIT 1",
            (link_id,),
        ).fetchone()
        return None if row is None else self._link(row)

    def list_links(
        self, src: str = "", dst: str = "", *, include_deleted: bool = False
    ) -> list[LinkRecord]:
        sql = f"SELECT {_LINK_COLS} FROM links WHERE 1"
        args: list[object] = []
        if src:
            sql += " AND source_node_id = ?"
            args.append(src)
        if dst:
            sql += " AND dest_node_id = ?"
            args.append(dst)
        if not include_deleted:
            sql += " AND status != 4"
        rows = self._db.execute(sql + " ORDER BY created_at, link_id", args).fetchall()
        return [self._link(r) for r in rows]

    def purge_deleted_links(self) -> int:
        return self._db.execute("DELETE FROM links WHERE status = 4").rowcount

    @staticmethod
    def _link(row: Sequence[object]) -> LinkRecord:
        (lid, src, sdom, dst, ddom, ep, cfg, status, msg, created, updated) = row
        return LinkRecord(
            str(lid),
            str(src),
            str(sdom),
            str(dst),
            str(ddom),
            str(ep),
            str(cfg),
            LinkStatus(int(status)),  # type: ignore[call-overload]
            str(msg),
            int(created),  # type: ignore[call-overload]
            int(updated),  # type: ignore[call-overload]
        )

    # -- routes and announcements ----------------------------------------------------------

    def add_route(self, route: RouteRecord) -> RouteRecord:
        """Store a route (an id is made if empty); returns it as stored."""
        now = self._now()
        self._seq += 1
        saved = replace(route, id=route.id or str(uuid.uuid4()), created_at=now, last_updated=now)
        c0, c1, c2 = saved.components
        self._db.execute(
            "INSERT INTO routes (id, seq, source_node_id, source_domain, dest_node_id, "
            "dest_domain, link_id, component0, component1, component2, component_id, status, "
            "status_msg, created_at, last_updated) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                saved.id,
                self._seq,
                saved.source_node_id,
                saved.source_domain,
                saved.dest_node_id,
                saved.dest_domain,
                saved.link_id,
                c0,
                c1,
                c2,
                None if saved.component_id is None else str(saved.component_id),
                int(saved.status),
                saved.status_msg,
                now,
                now,
            ),
        )
        return saved

    def set_route_status(self, route_id: str, status: RouteStatus, msg: str = "") -> bool:
        cur = self._db.execute(
            "UPDATE routes SET status = ?, status_msg = ?, last_updated = ? WHERE id = ?",
            (int(status), msg, self._now(), route_id),
        )
        return cur.rowcount > 0

    def delete_route(self, route_id: str) -> bool:
        return self._db.execute("DELETE FROM routes WHERE id = ?", (route_id,)).rowcount > 0

    def list_routes(
        self, src: str = "", dst: str = "", *, include_deleted: bool = True
    ) -> list[RouteRecord]:
        """Routes in insertion order (so announcements list the first announcer first)."""
        sql = f"SELECT {_ROUTE_COLS} FROM routes WHERE 1"
        args: list[object] = []
        if src:
            sql += " AND source_node_id = ?"
            args.append(src)
        if dst:
            sql += " AND dest_node_id = ?"
            args.append(dst)
        if not include_deleted:
            sql += " AND status != 3"
        rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [self._route(r) for r in rows]

    def announcements(self) -> list[RouteRecord]:
        """Every announced (name, node), oldest first."""
        return self.list_routes(src=ALL_NODES, include_deleted=False)

    @staticmethod
    def _route(row: Sequence[object]) -> RouteRecord:
        (rid, src, sdom, dst, ddom, lid, c0, c1, c2, cid, status, msg, created, updated) = row
        return RouteRecord(
            str(rid),
            str(src),
            str(sdom),
            str(dst),
            str(ddom),
            None if lid is None else str(lid),
            (str(c0), str(c1), str(c2)),
            None if cid is None else int(str(cid)),
            RouteStatus(int(status)),  # type: ignore[call-overload]
            str(msg),
            int(created),  # type: ignore[call-overload]
            int(updated),  # type: ignore[call-overload]
        )

    # -- topology segments -----------------------------------------------------------------

    def add_segment(self, name: str) -> bool:
        """Create a segment; False if it exists."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO topology_segments (id, name, created_at) VALUES (?, ?, ?)",
            (str(uuid.uuid4()), name, self._now()),
        )
        return cur.rowcount > 0

    def remove_segment(self, name: str) -> bool:
        with self._tx():
            row = self._db.execute(
                "SELECT id FROM topology_segments WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM topology_segment_links WHERE segment_id = ?", (row[0],))
            self._db.execute("DELETE FROM topology_segments WHERE id = ?", (row[0],))
        return True

    def add_segment_link(self, segment: str, domain_a: str, domain_b: str) -> bool:
        """Join two domains in ``segment`` (created if missing); False if already joined."""
        if domain_a == domain_b:
            raise ControlPlaneError("a topology link needs two different domains")
        self.add_segment(segment)
        a, b = _edge(domain_a, domain_b)
        cur = self._db.execute(
            "INSERT OR IGNORE INTO topology_segment_links (segment_id, source_domain, "
            "dest_domain) SELECT id, ?, ? FROM topology_segments WHERE name = ?",
            (a, b, segment),
        )
        return cur.rowcount > 0

    def remove_segment_link(self, segment: str, domain_a: str, domain_b: str) -> bool:
        a, b = _edge(domain_a, domain_b)
        cur = self._db.execute(
            "DELETE FROM topology_segment_links WHERE source_domain = ? AND dest_domain = ? "
            "AND segment_id = (SELECT id FROM topology_segments WHERE name = ?)",
            (a, b, segment),
        )
        return cur.rowcount > 0

    def list_segments(self) -> list[SegmentRecord]:
        segs: dict[str, list[tuple[str, str]]] = {
            str(r[0]): []
            for r in self._db.execute("SELECT name FROM topology_segments ORDER BY name")
        }
        for name, a, b in self._db.execute(
            "SELECT s.name, l.source_domain, l.dest_domain FROM topology_segment_links l "
            "JOIN topology_segments s ON s.id = l.segment_id ORDER BY 1, 2, 3"
        ):
            segs[str(name)].append((str(a), str(b)))
        return [SegmentRecord(n, tuple(e)) for n, e in segs.items()]


_LINK_COLS = (
    "link_id, source_node_id, source_domain, dest_node_id, dest_domain, dest_endpoint, "
    "conn_config_data, status, status_msg, created_at, last_updated"
)
_ROUTE_COLS = (
    "id, source_node_id, source_domain, dest_node_id, dest_domain, link_id, component0, "
    "component1, component2, component_id, status, status_msg, created_at, last_updated"
)
