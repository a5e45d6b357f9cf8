"""After a server sent its trailers, the client's later END_STREAM or RST must still wake
whatever the server side is waiting on (recv, drain), over real sockets and in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from slimwire.transport import MemoryNetwork, Status, Stream, open_stream, start_server

PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"
T = 10.0  # upper bound for any single wait; nothing here asserts on durations


def _closing_handler(
    ended: asyncio.Future[object], *, flood: int = 0
) -> Callable[[Stream], Awaitable[None]]:
    """A handler that waits in recv() while another task ends the call with trailers."""

    async def handler(stream: Stream) -> None:
        first = await stream.recv()  # the client's hello
        assert first == [b"hello"]
        pending = asyncio.ensure_future(stream.recv())
        await asyncio.sleep(0)
        if flood:  # more than the client's window: the trailers wait behind the data
            stream.send_many([b"x" * 16384] * flood)
        await stream.close(Status.OK)
        try:
            async with asyncio.timeout(T):
                result: object = await pending
                while stream.pending_bytes:  # the queued output is dropped at the client's RST
                    await asyncio.sleep(0.01)
        except Exception as exc:  # reported to the test
            result = exc
        ended.set_result(result)

    return handler


async def test_pending_recv_ends_when_the_server_closes_then_client_ends() -> None:
    ended: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    handler = _closing_handler(ended)
    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
        stream.send(b"hello")
        async with asyncio.timeout(T):
            assert await stream.recv() == []  # OK trailers
        await stream.close()  # END_STREAM after the server's trailers
        assert await asyncio.wait_for(ended, T) == []
    finally:
        await srv.close(0)


async def test_reset_after_queued_trailers_drops_the_queue() -> None:
    ended: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    handler = _closing_handler(ended, flood=256)  # 4 MiB > the client's window
    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH, window_size=65535)
        stream.send(b"hello")
        async with asyncio.timeout(T):
            while not stream.response_headers:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # let the server fill our window; we never read
        stream.abort()  # RST_STREAM while the server's trailers still wait for window
        assert await asyncio.wait_for(ended, T) == []
    finally:
        await srv.close(0)


async def test_memory_transport_behaves_the_same() -> None:
    net = MemoryNetwork()
    ended: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    handler = _closing_handler(ended)
    srv = await net.start_server({PATH: handler}, "mem", 1)
    try:
        stream = await net.open_stream(srv.url, PATH)
        stream.send(b"hello")
        async with asyncio.timeout(T):
            assert await stream.recv() == []
        stream.abort()
        assert await asyncio.wait_for(ended, T) == []
    finally:
        await srv.close(0)
