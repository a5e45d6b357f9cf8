"""The node routes a link's batches in the transport's read callback (``_LinkReceiver``), and
falls back to its link task, in order, while a destination is congested."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.names import Name

from ._client import RawClient

ALICE = Name("org", "ns", "alice", 11)
BOB = Name("org", "ns", "bob", 22)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    cfg = NodeConfig(node_id="n", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with Node(cfg) as n:
        yield n


def record_callers(node: Node) -> list[tuple[object, int]]:
    """(the task routing, batch size) for every batch the forwarder receives."""
    calls: list[tuple[object, int]] = []
    receive_batch = node.forwarder.receive_batch

    def spy(conn_id: int, batch: Iterable[bytes], now: float = 0.0) -> None:
        batch = list(batch)
        calls.append((asyncio.current_task(), len(batch)))
        receive_batch(conn_id, batch, now)

    node.forwarder.receive_batch = spy  # type: ignore[method-assign]
    return calls


async def test_a_read_is_routed_in_the_read_callback(node: Node) -> None:
    alice = await RawClient.connect(node.url, ALICE)
    bob = await RawClient.connect(node.url, BOB)
    await alice.subscribe()
    calls = record_callers(node)
    bob.publish(ALICE, b"hello")
    (msg,) = await alice.received(1)
    assert msg.publish.msg.app_payload.blob == b"hello"
    # routed by the transport's read callback: no link task was woken for it
    assert calls == [(None, 1)]
    await alice.close()
    await bob.close()


async def test_congested_destination_pauses_the_receiver_and_order_is_kept(node: Node) -> None:
    carol_name = Name("org", "ns", "carol", 33)
    carol = await RawClient.connect(node.url, carol_name, window_size=65535)
    await carol.subscribe()
    carol._reader.cancel()  # carol stops reading for a while
    calls = record_callers(node)
    flood = await RawClient.connect(node.url, Name("org", "ns", "flood"))
    n = 1500  # ~4.5 MB: far over carol's window and the node's high-water mark
    for i in range(n):
        flood.publish(carol_name, i.to_bytes(4, "big") * 750)
    await asyncio.sleep(0.3)  # well under the slow-consumer timeout
    carol._reader = asyncio.ensure_future(carol._read())
    got = await carol.received(n, timeout=20)
    assert [int.from_bytes(m.publish.msg.app_payload.blob[:4], "big") for m in got] == list(
        range(n)
    )
    # both paths ran: the receiver until the congestion, the link task while it lasted
    assert any(task is None for task, _ in calls)
    assert any(task is not None for task, _ in calls)
    # and once the congestion is over, reads are routed by the receiver again
    calls.clear()
    flood.publish(carol_name, b"after")
    (msg,) = await carol.received(1)
    assert msg.publish.msg.app_payload.blob == b"after"
    assert calls == [(None, 1)]
    await carol.close()
    await flood.close()


async def test_small_reads_are_written_at_once_big_ones_at_the_end_of_the_tick(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of a few messages is an exchange waiting on the node: its copies are written
    in the same callback. A big read is a stream: its copies wait for the tick's flush, which
    coalesces the several reads of a busy socket into one write."""
    from slimwire.dataplane._node import _FLUSH_NOW_MAX, _LinkReceiver

    flushes: list[bool] = []
    monkeypatch.setattr(node, "_flush", lambda now=False: flushes.append(now))
    receiver = _LinkReceiver(node, 12345)  # no such conn: the forwarder ignores the batches
    monkeypatch.setitem(node._streams, 12345, object())  # type: ignore[arg-type]
    receiver.paused = False
    assert receiver([b"x"])
    assert receiver([b"x"] * _FLUSH_NOW_MAX)
    assert receiver([b"x"] * (_FLUSH_NOW_MAX + 1))
    assert flushes == [True, True, False]
    receiver.paused = True
    assert not receiver([b"x"])  # paused: left for the link task
    assert flushes == [True, True, False]
