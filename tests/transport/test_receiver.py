"""``Stream.set_receiver`` and ``Stream.flush`` over real loopback sockets.

A receiver takes batches inside the transport's read callback (no task woken), gets its
flow-control credit returned as it takes them, and can decline batches, which then queue for
``recv()`` in order; ``flush()`` writes what is queued without waiting for the loop tick.
"""

from __future__ import annotations

import asyncio

import pytest

from slimwire.errors import ConnectionClosed
from slimwire.transport import MemoryNetwork, Server, Stream, open_stream, start_server

PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"
T = 10.0


async def echo(stream: Stream) -> None:
    async for batch in stream:
        stream.send_many(batch)
        await stream.drain()


@pytest.fixture
async def server() -> Server:
    srv = await start_server({PATH: echo}, "127.0.0.1", 0)
    yield srv  # type: ignore[misc]
    await srv.close(0)


async def _until(predicate: object, what: str) -> None:
    async with asyncio.timeout(T):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.001)


async def test_receiver_takes_batches_in_the_read_callback(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    got: list[bytes] = []
    tasks: list[object] = []

    def receiver(batch: list[bytes]) -> bool:
        tasks.append(asyncio.current_task())
        got.extend(batch)
        return True

    stream.set_receiver(receiver)
    msgs = [i.to_bytes(4, "big") * 25 for i in range(2000)]
    stream.send_many(msgs)
    await _until(lambda: len(got) == len(msgs), "all messages")
    assert got == msgs
    assert tasks
    assert all(t is None for t in tasks)  # called by the protocol, not from a task
    assert stream._inbox == []
    await stream.close()
    async with asyncio.timeout(T):
        assert await stream.recv() == []  # recv() still reports the end


async def test_receiver_returns_flow_control_credit() -> None:
    """More than the receive window goes through a receiver that never calls recv(): the
    credit for what it took must have gone back to the sender."""
    window = 65535
    srv = await start_server({PATH: echo}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH, window_size=window)
        count = [0]

        def receiver(batch: list[bytes]) -> bool:
            count[0] += len(batch)
            return True

        stream.set_receiver(receiver)
        n = 20 * window // 1024
        for _ in range(n // 64):
            stream.send_many([b"m" * 1019] * 64)
            await asyncio.wait_for(stream.drain(), T)
        await _until(lambda: count[0] == n // 64 * 64, "every message")
        await stream.close()
    finally:
        await srv.close(0)


async def test_declined_batches_queue_for_recv_in_order(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    taken: list[bytes] = []
    decline = [True]

    def receiver(batch: list[bytes]) -> bool:
        if decline[0]:
            return False
        taken.extend(batch)
        return True

    stream.set_receiver(receiver)
    stream.send(b"first")
    await _until(lambda: stream._inbox, "the declined batch queued")
    decline[0] = False
    # the queue is not empty: this one must queue behind it, not reach the receiver
    stream.send(b"second")
    await _until(lambda: len(stream._inbox) == 2, "the second batch queued")
    assert taken == []
    async with asyncio.timeout(T):
        assert await stream.recv() == [b"first", b"second"]
    stream.send(b"third")  # the queue was taken: the receiver gets batches again
    await _until(lambda: taken, "the receiver's batch")
    assert taken == [b"third"]
    await stream.close()


async def test_receiver_set_to_none_queues_again(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    taken: list[bytes] = []
    stream.set_receiver(lambda b: taken.extend(b) is None)
    stream.set_receiver(None)
    stream.send(b"x")
    async with asyncio.timeout(T):
        assert await stream.recv() == [b"x"]
    assert taken == []
    await stream.close()


async def test_receiver_that_raises_ends_only_its_stream(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    other = await open_stream(f"http://127.0.0.1:{server.port}", PATH)

    def receiver(batch: list[bytes]) -> bool:
        raise RuntimeError("bug")

    stream.set_receiver(receiver)
    stream.send(b"x")
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(T):
            await stream.recv()
    assert stream.closed
    other.send(b"y")
    async with asyncio.timeout(T):
        assert await other.recv() == [b"y"]
    await other.close()


async def test_flush_writes_in_this_loop_turn(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    stream.send(b"now")
    assert stream.pending_bytes > 0  # queued for the flush at the end of the tick
    stream.flush()
    assert stream.pending_bytes == 0  # handed to the socket already
    assert stream._proto._flush_handle is None  # type: ignore[attr-defined]
    async with asyncio.timeout(T):
        assert await stream.recv() == [b"now"]
    await stream.close()


async def test_memory_transport_keeps_batches_for_recv() -> None:
    """The in-memory transport never calls a receiver (a send would run the peer's receiver
    inside the sender's call): everything still arrives through recv()."""
    net = MemoryNetwork()
    srv = net.serve("n", {PATH: echo})
    try:
        stream = await net.open_stream(srv.url, PATH)
        taken: list[bytes] = []
        stream.set_receiver(lambda b: taken.extend(b) is None)
        stream.send(b"m")
        stream.flush()  # a no-op there
        async with asyncio.timeout(T):
            assert await stream.recv() == [b"m"]
        assert taken == []
        await stream.close()
    finally:
        await srv.close(0)


async def test_flush_asked_for_in_a_read_runs_after_what_the_read_woke(server: Server) -> None:
    """What a read queues (an ack) waits for the callbacks and tasks the read woke, so a reply
    they write on their first turn goes out in the same write."""
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    loop = asyncio.get_running_loop()
    queued_at_wake: list[int] = []

    def woken() -> None:
        queued_at_wake.append(stream.pending_bytes)
        stream.send(b"reply")

    def receiver(batch: list[bytes]) -> bool:
        if batch == [b"request"]:
            stream.send(b"ack")
            loop.call_soon(woken)  # as a future's set_result wakes a task
        return True

    stream.set_receiver(receiver)
    stream.send(b"request")
    await _until(lambda: queued_at_wake, "the woken callback")
    assert queued_at_wake == [8]  # the ack (5-byte prefix + 3) was still queued
    await _until(lambda: stream.pending_bytes == 0, "the flush")
    await stream.close()
