"""The in-memory transport: same Stream semantics as HTTP/2, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from slimwire.errors import ConnectionClosed, GrpcError, TransportError
from slimwire.transport import MemoryNetwork, Status, Stream

PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"
T = 10.0


async def echo(stream: Stream) -> None:
    async for batch in stream:
        stream.send_many(batch)
        await stream.drain()


async def recv_n(stream: Stream, n: int) -> list[bytes]:
    got: list[bytes] = []
    async with asyncio.timeout(T):
        while len(got) < n:
            batch = await stream.recv()
            assert batch
            got += batch
    return got


async def test_round_trip_and_clean_end() -> None:
    net = MemoryNetwork()
    net.serve("node-a", {PATH: echo})
    stream = await net.open_stream("memory://node-a", PATH, headers=[("x", "1")])
    msgs = [str(i).encode() for i in range(1000)]
    stream.send_many(msgs[:500])
    for m in msgs[500:]:
        stream.send(m)
    assert await recv_n(stream, 1000) == msgs
    await stream.close()
    assert await asyncio.wait_for(stream.recv(), T) == []
    assert stream.peer == "memory://node-a"


async def test_batches_arrive_whole() -> None:
    net = MemoryNetwork()
    seen: list[int] = []

    async def count(stream: Stream) -> None:
        async for batch in stream:
            seen.append(len(batch))

    net.serve("n", {PATH: count})
    stream = await net.open_stream("memory://n", PATH)
    for i in range(100):
        stream.send(bytes([i]))
    await stream.close()
    async with asyncio.timeout(T):
        while sum(seen) < 100:
            await asyncio.sleep(0.01)
    assert seen == [100]  # everything sent in one tick is one batch


async def test_status_errors_and_unknown_path() -> None:
    net = MemoryNetwork()

    async def deny(stream: Stream) -> None:
        stream.send(b"partial")
        await stream.close(Status.PERMISSION_DENIED, "no")

    async def boom(stream: Stream) -> None:
        raise RuntimeError("bad")

    net.serve("n", {PATH: deny, "/t/Boom": boom})
    s = await net.open_stream("memory://n", PATH)
    assert await recv_n(s, 1) == [b"partial"]
    with pytest.raises(GrpcError) as info:
        await asyncio.wait_for(s.recv(), T)
    assert (info.value.status, info.value.grpc_message) == (Status.PERMISSION_DENIED, "no")
    assert s.closed
    with pytest.raises(ConnectionClosed):
        s.send(b"x")

    s = await net.open_stream("memory://n", "/t/Missing")
    with pytest.raises(GrpcError) as info:
        await asyncio.wait_for(s.recv(), T)
    assert info.value.status == Status.UNIMPLEMENTED

    s = await net.open_stream("memory://n", "/t/Boom")
    with pytest.raises(GrpcError) as info:
        await asyncio.wait_for(s.recv(), T)
    assert info.value.status == Status.INTERNAL
    assert "bad" in info.value.grpc_message

    with pytest.raises(TransportError):
        await net.open_stream("memory://nowhere", PATH)


async def test_back_pressure_follows_the_reader() -> None:
    net = MemoryNetwork()
    go = asyncio.Event()
    total = 0

    async def slow(stream: Stream) -> None:
        nonlocal total
        await go.wait()
        async for batch in stream:
            total += len(batch)

    net.serve("n", {PATH: slow})
    stream = await net.open_stream("memory://n", PATH, high_water=10_000)
    stream.send_many([b"x" * 100] * 200)
    assert stream.pending_bytes == 20_000
    drain = asyncio.ensure_future(stream.drain())
    await asyncio.sleep(0.05)
    assert not drain.done()  # nobody reads: the writer waits
    go.set()
    await asyncio.wait_for(drain, T)
    assert stream.pending_bytes < stream.high_water
    await stream.close()
    async with asyncio.timeout(T):
        while total < 200:
            await asyncio.sleep(0.01)


async def test_client_abort_resets_server_side() -> None:
    net = MemoryNetwork()
    result: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(stream: Stream) -> None:
        try:
            await stream.recv()
            await stream.recv()
        except ConnectionClosed as exc:
            result.set_result(exc)

    net.serve("n", {PATH: handler})
    s = await net.open_stream("memory://n", PATH)
    s.send(b"one")
    await asyncio.sleep(0)
    s.abort()
    assert isinstance(await asyncio.wait_for(result, T), ConnectionClosed)
    with pytest.raises(ConnectionClosed):
        await s.recv()


async def test_channel_unary_and_server_close() -> None:
    net = MemoryNetwork()

    async def rev(stream: Stream) -> None:
        (req,) = await stream.recv()
        stream.send(req[::-1])

    started = asyncio.Event()

    async def hang(stream: Stream) -> None:
        started.set()
        await asyncio.Event().wait()

    server = net.serve("ctl", {"/c/Rev": rev, "/c/Hang": hang})
    async with await net.connect("memory://ctl") as ch:
        assert await ch.unary("/c/Rev", b"abc", timeout=T) == b"cba"
        hung = await ch.open_stream("/c/Hang")
        await asyncio.wait_for(started.wait(), T)
        await asyncio.wait_for(server.close(grace=0.05), T)
        with pytest.raises((GrpcError, ConnectionClosed)):
            await asyncio.wait_for(hung.recv(), T)
    with pytest.raises(TransportError):
        await net.open_stream("memory://ctl", "/c/Rev")


async def test_network_stands_in_for_the_transport_module() -> None:
    """Same start_server/open_stream shape as slimwire.transport; http URLs map to servers."""
    net = MemoryNetwork()
    a = await net.start_server({PATH: echo}, "127.0.0.1", 0, ssl=None, max_message_size=10)
    b = await net.start_server({PATH: echo}, "127.0.0.1", 0)
    assert a.port != b.port
    assert a.sockets == ()
    stream = await net.open_stream(f"http://127.0.0.1:{b.port}", PATH, ssl=None)
    stream.send(b"via http url")
    assert await recv_n(stream, 1) == [b"via http url"]
    assert b.connections == 1
    await stream.close()
    with pytest.raises(TransportError):
        await net.open_stream("http://127.0.0.1:1", PATH)
    fixed = await net.start_server({PATH: echo}, "node-b", 46357)
    s2 = await net.open_stream("http://node-b:46357/", PATH)
    s2.send(b"x")
    assert await recv_n(s2, 1) == [b"x"]
    await fixed.close(0)
