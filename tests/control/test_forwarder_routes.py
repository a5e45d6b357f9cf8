"""Forwarder.add_route/remove_route (the sans-IO side of Node.set_route): routing follows the
routes that are set, and nothing is left behind, whatever the order of operations."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.dataplane._forwarder import Forwarder
from slimwire.dataplane._types import ConnType
from slimwire.names import NULL_ID

NAMES = [("org", "ns", "a"), ("org", "ns", "b"), ("org", "x", "a")]


def _forwarder() -> tuple[Forwarder, list[int]]:
    fwd = Forwarder("n", rng=random.Random(1))
    conns = [fwd.add_connection(ConnType.REMOTE, link_id=f"l{i}", outbound=True) for i in range(3)]
    return fwd, conns


def _model_rows(routes: dict[tuple[int, int], int]) -> set[tuple[tuple[str, str, str], int]]:
    return {(NAMES[n], c) for (n, c) in routes}


def _table_rows(fwd: Forwarder) -> set[tuple[tuple[str, str, str], int]]:
    return {(e.strings, c) for e in fwd.subscriptions() for c in e.remote}


def test_unknown_or_down_connection_is_a_lookup_error() -> None:
    fwd, conns = _forwarder()
    with pytest.raises(LookupError):
        fwd.add_route(NAMES[0], NULL_ID, 99)
    fwd.connection_down(conns[0], reconnecting=True)
    with pytest.raises(LookupError):
        fwd.add_route(NAMES[0], NULL_ID, conns[0])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "remove", "down"]), st.integers(0, 2), st.integers(0, 2)),
        max_size=30,
    )
)
def test_table_matches_the_routes_set(ops: list[tuple[str, int, int]]) -> None:
    fwd, conns = _forwarder()
    routes: dict[tuple[int, int], int] = {}  # (name index, conn) -> subscription id
    up = set(conns)
    for op, n, c in ops:
        cid = conns[c]
        if op == "add":
            if cid not in up:
                with pytest.raises(LookupError):
                    fwd.add_route(NAMES[n], NULL_ID, cid)
            elif (n, cid) not in routes:
                routes[(n, cid)] = fwd.add_route(NAMES[n], NULL_ID, cid)
        elif op == "remove":
            sid = routes.pop((n, cid), None)
            if sid is not None:
                assert fwd.remove_route(NAMES[n], NULL_ID, cid, sid) is True
        else:
            fwd.connection_down(cid, reconnecting=True)
            up.discard(cid)
            for key in [k for k in routes if k[1] == cid]:
                sid = routes.pop(key)
                assert fwd.remove_route(NAMES[key[0]], NULL_ID, cid, sid) is False
        assert _table_rows(fwd) == _model_rows(routes)
    for (n, cid), sid in list(routes.items()):
        assert fwd.remove_route(NAMES[n], NULL_ID, cid, sid) is True
    assert fwd.subscriptions() == []
