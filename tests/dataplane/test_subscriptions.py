"""The subscription table against the reference's rules and against a simple model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.dataplane import ConnType, RouteKey, SubscriptionTable
from slimwire.errors import SubscriptionError
from slimwire.names import NULL_ID

S = ("org", "ns", "svc")


def k(i: int = NULL_ID, prefix: int = 1) -> RouteKey:
    return RouteKey(prefix, 2, 3, i)


def test_add_reports_first_and_remove_reports_last_per_category() -> None:
    t = SubscriptionTable()
    assert t.add(k(5), S, 10, ConnType.EDGE, 100) is True
    assert t.add(k(5), S, 11, ConnType.EDGE, 101) is False
    assert t.add(k(5), S, 12, ConnType.REMOTE, 102) is True  # another category
    assert t.remove(k(5), 10, ConnType.EDGE, 100) is False
    assert t.remove(k(5), 11, ConnType.EDGE, 101) is True
    assert t.remove(k(5), 12, ConnType.REMOTE, 102) is True
    assert t.entries() == []


def test_conn_stays_while_another_subscription_names_it() -> None:
    t = SubscriptionTable()
    t.add(k(5), S, 10, ConnType.EDGE, 1)
    t.add(k(5), S, 10, ConnType.EDGE, 2)
    assert t.remove(k(5), 10, ConnType.EDGE, 1) is False
    assert t.match_one(k(5), skip=0) == 10
    assert t.remove(k(5), 10, ConnType.EDGE, 2) is True
    assert t.match_one(k(5), skip=0) is None


@pytest.mark.parametrize(
    ("key", "conn", "sid", "reason"),
    [
        (k(5, prefix=9), 10, 1, "subscription not found"),
        (k(6), 10, 1, "id not found: 00000000-0000-0000-0000-000000000006"),
        (k(5), 10, 99, "subscription id not found: 99"),
        (k(5), 11, 1, "connection id not found: 11"),
    ],
)
def test_remove_error_kinds(key: RouteKey, conn: int, sid: int, reason: str) -> None:
    t = SubscriptionTable()
    t.add(k(5), S, 10, ConnType.EDGE, 1)
    t.add(k(6, prefix=2), S, 10, ConnType.EDGE, 2)
    with pytest.raises(SubscriptionError) as info:
        t.remove(key, conn, ConnType.EDGE, sid)
    assert info.value.reason == reason
    assert t.match_one(k(5), skip=0) == 10  # nothing changed


def test_remove_with_id_of_other_name_is_refused() -> None:
    t = SubscriptionTable()
    t.add(k(5), S, 10, ConnType.EDGE, 1)
    t.add(k(6), S, 10, ConnType.EDGE, 2)
    with pytest.raises(SubscriptionError, match="subscription id not found: 2"):
        t.remove(k(5), 10, ConnType.EDGE, 2)


def test_specific_id_does_not_match_null_subscription() -> None:
    # reference forwarder.rs test_forwarder: publish to id 2 fails with only NULL and 1 stored
    t = SubscriptionTable()
    t.add(k(NULL_ID), S, 10, ConnType.EDGE, 1)
    t.add(k(1), S, 11, ConnType.EDGE, 2)
    assert t.match_one(k(2), skip=0) is None
    assert t.match_all(k(2), skip=0) == []
    assert t.match_one(k(1), skip=0) == 11
    # a NULL destination is anycast over every id under the prefix
    assert sorted(t.match_all(k(NULL_ID), skip=0)) == [10, 11]
    assert {t.match_one(k(NULL_ID), skip=0) for _ in range(4)} == {10, 11}


def test_match_one_prefers_categories_in_reference_order() -> None:
    t = SubscriptionTable()
    t.add(k(5), S, 40, ConnType.EDGE, 1)
    t.add(k(5), S, 30, ConnType.PEER, 2)
    t.add(k(5), S, 20, ConnType.REMOTE, 3)
    assert t.match_one(k(5), skip=0) == 20
    assert t.match_one(k(5), skip=20) == 30
    assert t.match_one(k(5), skip=20, exclude_peer=True) == 40
    t.add(k(5), S, 10, ConnType.LOCAL, 4)
    assert t.match_one(k(5), skip=0) == 10
    assert t.match_one(k(NULL_ID), skip=10) == 20


def test_match_one_round_robins_and_skips_incoming() -> None:
    t = SubscriptionTable()
    for i, c in enumerate((10, 11, 12)):
        t.add(k(5), S, c, ConnType.EDGE, i + 1)
    picks = [t.match_one(k(5), skip=0) for _ in range(6)]
    assert sorted(picks) == [10, 10, 11, 11, 12, 12]
    assert all(t.match_one(k(5), skip=11) != 11 for _ in range(6))
    t2 = SubscriptionTable()
    t2.add(k(5), S, 10, ConnType.EDGE, 1)
    assert t2.match_one(k(5), skip=10) is None


def test_remove_connection_returns_names_and_last_flags() -> None:
    t = SubscriptionTable()
    t.add(k(5), S, 10, ConnType.EDGE, 1)
    t.add(k(6), S, 10, ConnType.EDGE, 2)
    t.add(k(6), S, 11, ConnType.EDGE, 3)
    lost = t.remove_connection(10)
    assert lost == {k(5): (S, True), k(6): (S, False)}
    assert t.match_all(k(NULL_ID), skip=0) == [11]
    assert t.remove_connection(10) == {}
    assert not t.has_subscription(1)


def test_generation_changes_on_every_update() -> None:
    t = SubscriptionTable()
    g = t.generation
    t.add(k(5), S, 10, ConnType.EDGE, 1)
    assert t.generation != g
    g = t.generation
    t.remove(k(5), 10, ConnType.EDGE, 1)
    assert t.generation != g


# -- model-based check -----------------------------------------------------------------------

CONNS = {
    1: ConnType.LOCAL,
    2: ConnType.REMOTE,
    3: ConnType.PEER,
    4: ConnType.EDGE,
    5: ConnType.EDGE,
}
KEYS = [k(1), k(2), k(NULL_ID), k(1, prefix=7)]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(KEYS), st.sampled_from(sorted(CONNS))),
        st.tuples(st.just("remove"), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("drop"), st.sampled_from(sorted(CONNS)), st.none()),
        st.tuples(
            st.just("match"), st.sampled_from([*KEYS, k(3)]), st.sampled_from([0, *sorted(CONNS)])
        ),
    ),
    max_size=60,
)


def _slot(model: dict[int, tuple[RouteKey, int]], key: RouteKey, cat: ConnType) -> set[int]:
    return {c for kk, c in model.values() if kk == key and CONNS[c] is cat}


@settings(max_examples=300, deadline=None)
@given(ops)
def test_table_matches_model(sequence: list[tuple[str, object, object]]) -> None:
    t = SubscriptionTable()
    model: dict[int, tuple[RouteKey, int]] = {}
    next_sid = 1
    for op, a, b in sequence:
        if op == "add":
            assert isinstance(a, RouteKey)
            assert isinstance(b, int)
            first = not _slot(model, a, CONNS[b])
            assert t.add(a, S, b, CONNS[b], next_sid) is first
            model[next_sid] = (a, b)
            next_sid += 1
        elif op == "remove":
            assert isinstance(a, int)
            if a not in model:
                if model:
                    kk, c = next(iter(model.values()))
                    with pytest.raises(SubscriptionError):
                        t.remove(kk, c, CONNS[c], 1000 + a)
                continue
            kk, c = model[a]
            if b:  # wrong conn is refused and changes nothing
                other = 1 if c != 1 else 2
                with pytest.raises(SubscriptionError):
                    t.remove(kk, other, CONNS[other], a)
                continue
            del model[a]
            still = any(v == (kk, c) for v in model.values())
            expect_last = (not still) and not _slot(model, kk, CONNS[c])
            assert t.remove(kk, c, CONNS[c], a) is expect_last
        elif op == "drop":
            assert isinstance(a, int)
            for sid in [s for s, (_, c) in model.items() if c == a]:
                del model[sid]
            t.remove_connection(a)
        else:
            assert isinstance(a, RouteKey)
            assert isinstance(b, int)
            if a.id == NULL_ID:
                subs = [(kk, c) for kk, c in model.values() if kk[:3] == a[:3]]
            else:
                subs = [(kk, c) for kk, c in model.values() if kk == a]
            expect_all = {c for _, c in subs if c != b}
            got_all = t.match_all(a, b)
            assert len(got_all) == len(set(got_all))
            assert set(got_all) == expect_all
            one = t.match_one(a, b)
            if not expect_all:
                assert one is None
            else:
                best = min(CONNS[c] for c in expect_all)
                assert one in {c for c in expect_all if CONNS[c] is best}
            no_peer = t.match_all(a, b, exclude_peer=True)
            assert set(no_peer) == {c for c in expect_all if CONNS[c] is not ConnType.PEER}
    assert len(t) == len(model)
