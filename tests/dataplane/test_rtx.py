"""Session retransmissions (RTX requests/replies) recognised and counted per link."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb
from slimwire.dataplane import ConnType, Forwarder
from slimwire.dataplane._rtx import count_retransmissions, session_message_type
from slimwire.names import Name

from ._helpers import TestMac

ALICE = Name("org", "ns", "alice", 5)
BOB = Name("org", "ns", "bob", 6)


def session_msg(
    kind: int,
    *,
    src: Name = ALICE,
    dst: Name = BOB,
    session_type: int = 1,
    identity: str = "",
    payload: bytes = b"hi",
    metadata: dict[str, str] | None = None,
    mac: object = None,
    error: bool = False,
) -> bytes:
    msg = pb.Message()
    p = msg.publish
    h = p.header
    src.fill_proto(h.source)
    dst.fill_proto(h.destination)
    h.fanout = 1
    h.ttl = 8
    h.identity = identity
    if error:
        h.error = True
    p.session.session_type = session_type  # type: ignore[assignment]
    p.session.session_message_type = kind  # type: ignore[assignment]
    p.session.session_id = 4_000_000_000
    p.session.message_id = 2_000_000_000
    p.msg.app_payload.blob = payload
    for k, v in (metadata or {}).items():
        msg.metadata[k] = v
    if mac is not None:
        mac.sign(h)  # type: ignore[attr-defined]
    return msg.SerializeToString()


@given(
    kind=st.integers(0, 20),
    session_type=st.integers(0, 2),
    identity=st.text(max_size=300),
    payload=st.binary(max_size=20_000),
    metadata=st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=3),
    error=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_the_session_type_is_read_from_any_well_formed_publish(
    kind: int,
    session_type: int,
    identity: str,
    payload: bytes,
    metadata: dict[str, str],
    error: bool,
) -> None:
    raw = session_msg(
        kind,
        session_type=session_type,
        identity=identity,
        payload=payload,
        metadata=metadata,
        error=error,
    )
    assert session_message_type(raw) == kind
    expected = (int(kind == 3), int(kind == 4))
    assert count_retransmissions([raw]) == expected
    assert count_retransmissions([raw, raw, b""]) == (2 * expected[0], 2 * expected[1])


@given(st.lists(st.binary(max_size=400), max_size=8))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_raise_and_agree_with_the_exact_reader(batch: list[bytes]) -> None:
    """The network feeds this reader: it never raises, and the inlined batch loop counts
    exactly what the one-message reader classifies."""
    kinds = [session_message_type(raw) for raw in batch]
    assert count_retransmissions(batch) == (kinds.count(3), kinds.count(4))


@given(st.binary(min_size=1, max_size=200), st.integers(0, 300))
@settings(max_examples=200, deadline=None)
def test_corrupted_rtx_messages_never_raise(noise: bytes, at: int) -> None:
    raw = bytearray(session_msg(3, payload=b"x" * 200))
    at %= len(raw)
    raw[at : at + len(noise)] = noise
    kinds = [session_message_type(bytes(raw))]
    assert count_retransmissions([bytes(raw)]) == (kinds.count(3), kinds.count(4))


def test_subscriptions_and_garbage_are_not_retransmissions() -> None:
    sub = pb.Message()
    ALICE.fill_proto(sub.subscribe.header.source)
    ALICE.fill_proto(sub.subscribe.header.destination)
    assert session_message_type(sub.SerializeToString()) == 0
    assert session_message_type(b"") == 0
    assert session_message_type(b"\x1a") == 0


def _two_edges(fwd: Forwarder) -> tuple[int, object, int, object]:
    amac, bmac = TestMac(b"a"), TestMac(b"b")
    a = fwd.add_connection(ConnType.EDGE, mac=amac)
    b = fwd.add_connection(ConnType.EDGE, mac=bmac)
    sub = pb.Message()
    h = sub.subscribe.header
    BOB.fill_proto(h.source)
    BOB.fill_proto(h.destination)
    h.fanout = 1
    h.ttl = 8
    sub.subscribe.subscription_id = 9
    bmac.sign(h)
    fwd.receive(b, sub.SerializeToString())
    fwd.take_outputs()
    return a, amac, b, bmac


def test_the_forwarder_counts_rtx_per_link_only_when_asked() -> None:
    fwd = Forwarder("n1", count_rtx=True)
    a, amac, b, _ = _two_edges(fwd)
    batch = [
        session_msg(1, mac=amac),
        session_msg(3, mac=amac),
        session_msg(4, mac=amac, identity="t" * 200),
        session_msg(4, mac=amac, error=True, payload=b""),
        session_msg(2, mac=amac),
    ]
    fwd.receive_batch(a, batch)
    (dest, copies), *_ = fwd.take_outputs()
    assert dest == b  # counting changes no routing
    assert len(copies) == 5
    info = {c.conn_id: c for c in fwd.connections()}
    assert (info[a].rtx_requests, info[a].rtx_replies) == (1, 2)
    assert (info[b].rtx_requests, info[b].rtx_replies) == (0, 0)

    fwd.count_rtx = False
    fwd.receive_batch(a, batch)
    info = {c.conn_id: c for c in fwd.connections()}
    assert (info[a].rtx_requests, info[a].rtx_replies) == (1, 2)


def test_a_reconnected_link_keeps_its_rtx_counts() -> None:
    fwd = Forwarder("n1", count_rtx=True)
    a, amac, _b, _ = _two_edges(fwd)
    fwd.receive(a, session_msg(3, mac=amac))
    fwd.connection_down(a, reconnecting=True)
    fwd.add_connection(ConnType.EDGE, mac=amac, conn_id=a)
    fwd.receive(a, session_msg(3, mac=amac))
    info = {c.conn_id: c for c in fwd.connections()}
    assert info[a].rtx_requests == 2
