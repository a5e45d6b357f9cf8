"""``Stream.send_framed``: messages queued with their gRPC prefix arrive as messages."""

from __future__ import annotations

import asyncio

from slimwire.transport import MemoryNetwork, Stream, encode_message, open_stream, start_server

PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"
T = 10.0  # upper bound for any single wait; nothing here asserts on durations


async def test_send_framed_delivers_the_messages_over_h2_and_in_memory() -> None:
    msgs = [b"", b"a", b"x" * 70_000, bytes(range(256))]
    got: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

    async def handler(stream: Stream) -> None:
        stream.send_framed([encode_message(m) for m in msgs])
        received: list[bytes] = []
        while len(received) < len(msgs):
            received += await stream.recv()
        got.set_result(received)

    net = MemoryNetwork()
    mem = await net.start_server({PATH: handler}, "mem", 2)
    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    try:
        for stream in (
            await open_stream(f"http://127.0.0.1:{srv.port}", PATH),
            await net.open_stream(mem.url, PATH),
        ):
            got = asyncio.get_running_loop().create_future()
            stream.send_framed([encode_message(m) for m in msgs])
            echoed: list[bytes] = []
            async with asyncio.timeout(T):
                while len(echoed) < len(msgs):
                    echoed += await stream.recv()
                assert await got == msgs
            assert echoed == msgs
            stream.abort()
    finally:
        await srv.close(0)
        await mem.close(0)
