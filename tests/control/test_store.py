"""The SQLite store: CRUD of the reference's model, statuses, migrations, surviving a reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from slimwire.control._store import (
    ALL_NODES,
    SCHEMA_VERSION,
    ConnDetail,
    LinkRecord,
    LinkStatus,
    NodeRecord,
    RouteRecord,
    RouteStatus,
    Store,
)
from slimwire.errors import ControlPlaneError


def _link(lid: str, src: str, dst: str) -> LinkRecord:
    return LinkRecord(lid, src, "d1", dst, "d2", "http://h:1", "{}")


def _route(src: str, dst: str, name: str = "a", link: str | None = "l1") -> RouteRecord:
    return RouteRecord("", src, "d1", dst, "d2", link, ("org", "ns", name))


def test_nodes_domains_and_secrets() -> None:
    s = Store()
    assert s.schema_version == SCHEMA_VERSION
    n = s.save_node(NodeRecord("n1", "d1", (ConnDetail("10.0.0.1:46357", "pub:1", True, 2),)))
    assert s.get_node("n1") == n
    assert s.get_node("n1").conn_details[0].external_endpoint == "pub:1"  # type: ignore[union-attr]
    again = s.save_node(NodeRecord("n1", "d9"))
    assert again.created_at == n.created_at
    assert s.get_node("n1").domain == "d9"  # type: ignore[union-attr]
    s.set_domain_secret("d1", "x" * 32)
    assert s.domain_secret("d1") == "x" * 32
    assert s.list_domains() == {"d1": [], "d9": ["n1"]}
    assert s.remove_domain("d1")
    assert not s.remove_domain("d1")
    assert s.domain_secret("d1") is None
    s.delete_node("n1")
    assert s.list_nodes() == []


def test_links_one_live_link_per_pair_and_statuses() -> None:
    s = Store()
    s.add_link(_link("l1", "a", "b"))
    with pytest.raises(ControlPlaneError):
        s.add_link(_link("l2", "b", "a"))  # same unordered pair
    assert s.set_link_status("l1", LinkStatus.APPLIED)
    assert s.get_link("l1").status is LinkStatus.APPLIED  # type: ignore[union-attr]
    assert s.set_link_status("l1", LinkStatus.DELETED, "gone")
    assert not s.set_link_status("l1", LinkStatus.APPLIED)  # a deleted link stays deleted
    assert s.list_links() == []
    assert [x.status for x in s.list_links(include_deleted=True)] == [LinkStatus.DELETED]
    s.add_link(_link("l2", "b", "a"))  # the pair is free again
    assert [x.link_id for x in s.list_links(src="b")] == ["l2"]
    assert s.list_links(dst="b") == []
    assert s.purge_deleted_links() == 1


def test_routes_keep_insertion_order_and_filters() -> None:
    s = Store()
    first = s.add_route(_route(ALL_NODES, "n2", link=None))
    s.add_route(_route(ALL_NODES, "n1", link=None))
    r = s.add_route(_route("n1", "n2"))
    assert [a.dest_node_id for a in s.announcements()] == ["n2", "n1"]
    assert first.id
    assert first.component_id is None
    assert s.set_route_status(r.id, RouteStatus.APPLIED, "ok")
    assert [x.status for x in s.list_routes(src="n1")] == [RouteStatus.APPLIED]
    assert s.list_routes(src="n1", dst="n9") == []
    s.set_route_status(r.id, RouteStatus.DELETED)
    assert s.list_routes(src="n1", include_deleted=False) == []
    assert s.delete_route(r.id)
    assert not s.delete_route(r.id)
    with_id = s.add_route(RouteRecord("", "n1", "", "n2", "", "l", ("a", "b", "c"), 2**100))
    assert s.list_routes(src="n1")[0].component_id == 2**100 == with_id.component_id


def test_segments() -> None:
    s = Store()
    assert s.add_segment("s1")
    assert not s.add_segment("s1")
    assert s.add_segment_link("s1", "b", "a")
    assert not s.add_segment_link("s1", "a", "b")  # undirected
    assert s.add_segment_link("s2", "c", "a")  # creates the segment
    segs = {x.name: x for x in s.list_segments()}
    assert segs["s1"].edges == (("a", "b"),)
    assert segs["s2"].domains == ("a", "c")
    with pytest.raises(ControlPlaneError):
        s.add_segment_link("s1", "a", "a")
    assert s.remove_segment_link("s1", "a", "b")
    assert s.list_segments()[0].edges == ()
    assert s.remove_segment("s2")
    assert not s.remove_segment("s2")


def test_survives_reopen_and_keeps_announcement_order(tmp_path: Path) -> None:
    path = tmp_path / "ctl.db"
    s = Store(path)
    s.save_node(NodeRecord("n1", "d1", (ConnDetail("h:1"),)))
    s.set_domain_secret("d1", "s" * 32)
    s.add_link(_link("l1", "n1", "n2"))
    s.add_route(_route(ALL_NODES, "n2", "x", None))
    s.add_segment_link("default", "d1", "d2")
    s.close()
    s2 = Store(path)
    assert s2.get_node("n1") is not None
    assert s2.domain_secret("d1") == "s" * 32
    assert s2.get_link("l1") is not None
    s2.add_route(_route(ALL_NODES, "n1", "x", None))
    assert [a.dest_node_id for a in s2.announcements()] == ["n2", "n1"]
    assert s2.list_segments()[0].edges == (("d1", "d2"),)
    s2.close()


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "ctl.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(ControlPlaneError, match="schema version 99"):
        Store(path)
