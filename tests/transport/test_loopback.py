"""gRPC over real loopback sockets: h2c and TLS, limits, back-pressure, shutdown, keepalive."""

from __future__ import annotations

import asyncio
import socket

import pytest

from slimwire.errors import ConnectionClosed, GrpcError, MessageTooLarge, TransportError
from slimwire.transport import Server, Status, Stream, connect, open_stream, start_server

from .conftest import Pki

PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"
T = 10.0  # generous upper bound for any single wait; tests never assert on durations


async def echo(stream: Stream) -> None:
    async for batch in stream:
        stream.send_many(batch)
        await stream.drain()


async def recv_n(stream: Stream, n: int) -> list[bytes]:
    got: list[bytes] = []
    async with asyncio.timeout(T):
        while len(got) < n:
            batch = await stream.recv()
            assert batch, f"stream ended after {len(got)} of {n} messages"
            got += batch
    return got


async def drain_to_end(stream: Stream) -> None:
    async with asyncio.timeout(T):
        while await stream.recv():
            pass


@pytest.fixture
async def server() -> Server:
    srv = await start_server({PATH: echo}, "127.0.0.1", 0)
    yield srv  # type: ignore[misc]
    await srv.close(0)


async def test_h2c_round_trip_in_order(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH, headers=[("x-a", "1")])
    msgs = [i.to_bytes(4, "big") * 25 for i in range(10_000)]
    stream.send_many(msgs[:5000])
    for m in msgs[5000:]:
        stream.send(m)
    assert await recv_n(stream, len(msgs)) == msgs
    await stream.close()
    async with asyncio.timeout(T):
        assert await stream.recv() == []
        assert await stream.recv() == []  # stays ended
    assert stream.closed
    with pytest.raises(ConnectionClosed):
        stream.send(b"late")


async def test_request_headers_and_peer_reach_handler() -> None:
    seen: asyncio.Future[Stream] = asyncio.get_running_loop().create_future()

    async def handler(stream: Stream) -> None:
        seen.set_result(stream)
        await stream.recv()

    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH, headers=[("x-link", "7")])
        server_side = await asyncio.wait_for(seen, T)
        assert ("x-link", "7") in server_side.request_headers
        assert ("content-type", "application/grpc") in server_side.request_headers
        assert server_side.path == PATH
        assert server_side.peer.startswith("127.0.0.1:")
        await stream.close()
        assert await asyncio.wait_for(stream.recv(), T) == []
    finally:
        await srv.close(0)


async def test_response_headers_sent_before_any_message() -> None:
    release = asyncio.Event()

    async def silent(stream: Stream) -> None:
        await release.wait()

    srv = await start_server({PATH: silent}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
        async with asyncio.timeout(T):
            while not stream.response_headers:
                await asyncio.sleep(0.01)
        assert (":status", "200") in stream.response_headers
        release.set()
        assert await asyncio.wait_for(stream.recv(), T) == []
    finally:
        await srv.close(0)


async def test_tls_with_alpn_h2(pki: Pki) -> None:
    srv = await start_server({PATH: echo}, "127.0.0.1", 0, ssl=pki.server_context())
    try:
        stream = await open_stream(f"https://localhost:{srv.port}", PATH, ssl=pki.client_context())
        proto = stream._proto  # type: ignore[attr-defined]
        assert proto.transport.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        stream.send_many([b"secure"] * 100)
        assert await recv_n(stream, 100) == [b"secure"] * 100
        await stream.close()
        assert await asyncio.wait_for(stream.recv(), T) == []
    finally:
        await srv.close(0)


async def test_tls_untrusted_server_fails(pki: Pki) -> None:
    import ssl

    srv = await start_server({PATH: echo}, "127.0.0.1", 0, ssl=pki.server_context())
    try:
        with pytest.raises(TransportError):
            await open_stream(
                f"https://localhost:{srv.port}", PATH, ssl=ssl.create_default_context()
            )
    finally:
        await srv.close(0)


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = await start_server({PATH: echo}, "::1", 0)
    except OSError:
        pytest.skip("::1 not available")
    try:
        stream = await open_stream(f"http://[::1]:{srv.port}", PATH)
        stream.send(b"v6")
        assert await recv_n(stream, 1) == [b"v6"]
        assert stream.peer.startswith("[::1]:")
        await stream.close()
    finally:
        await srv.close(0)


async def test_big_messages_across_many_frames() -> None:
    # Small windows and the minimum frame size force many frames and window updates.
    srv = await start_server({PATH: echo}, "127.0.0.1", 0, window_size=65535, max_frame_size=16384)
    try:
        stream = await open_stream(
            f"http://127.0.0.1:{srv.port}", PATH, window_size=65535, max_frame_size=16384
        )
        big = [bytes([i]) * (3 * 1024 * 1024 + i) for i in range(3)]
        stream.send_many(big)
        got = await recv_n(stream, 3)
        assert got == big
        await stream.close()
        assert await asyncio.wait_for(stream.recv(), T) == []
    finally:
        await srv.close(0)


async def test_oversized_message_closes_only_that_stream() -> None:
    errors: list[BaseException] = []

    async def handler(stream: Stream) -> None:
        try:
            await echo(stream)
        except MessageTooLarge as exc:
            errors.append(exc)
            raise

    srv = await start_server({PATH: handler}, "127.0.0.1", 0, max_message_size=1000)
    channel = await connect(f"http://127.0.0.1:{srv.port}")
    try:
        bad = await channel.open_stream(PATH)
        good = await channel.open_stream(PATH)
        bad.send(b"x" * 1001)
        with pytest.raises(GrpcError) as info:
            await drain_to_end(bad)
        assert info.value.status == Status.RESOURCE_EXHAUSTED
        assert len(errors) == 1
        # Same connection, other stream: still fine; exactly the limit is allowed.
        good.send(b"y" * 1000)
        assert await recv_n(good, 1) == [b"y" * 1000]
        assert srv.connections == 1
        third = await channel.open_stream(PATH)
        third.send(b"z")
        assert await recv_n(third, 1) == [b"z"]
    finally:
        await channel.aclose()
        await srv.close(0)


async def test_unknown_path_is_unimplemented(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", "/no.Such/Method")
    with pytest.raises(GrpcError) as info:
        await asyncio.wait_for(stream.recv(), T)
    assert info.value.status == Status.UNIMPLEMENTED


async def test_handler_exception_is_internal_with_message() -> None:
    async def broken(stream: Stream) -> None:
        await stream.recv()
        raise ValueError("kaputt")

    srv = await start_server({PATH: broken}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
        stream.send(b"go")
        with pytest.raises(GrpcError) as info:
            await asyncio.wait_for(stream.recv(), T)
        assert info.value.status == Status.INTERNAL
        assert "kaputt" in info.value.grpc_message
    finally:
        await srv.close(0)


async def test_graceful_close_with_trailers() -> None:
    handler_done = asyncio.Event()

    async def handler(stream: Stream) -> None:
        stream.send_many([b"a", b"b", b"c"])
        await stream.close(Status.NOT_FOUND, "gone: 100% ☃")
        with pytest.raises(ConnectionClosed):
            stream.send(b"after close")
        assert await stream.recv() == []  # the call is over on this side too
        handler_done.set()

    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
        assert await recv_n(stream, 3) == [b"a", b"b", b"c"]
        with pytest.raises(GrpcError) as info:
            await asyncio.wait_for(stream.recv(), T)
        assert info.value.status == Status.NOT_FOUND
        assert info.value.grpc_message == "gone: 100% ☃"
        assert ("grpc-status", "5") in stream.trailers
        assert stream.closed
        await asyncio.wait_for(handler_done.wait(), T)
    finally:
        await srv.close(0)


async def test_handler_return_ends_ok_and_dedicated_connection_closes() -> None:
    async def handler(stream: Stream) -> None:
        stream.send(b"bye")

    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
        assert await recv_n(stream, 1) == [b"bye"]
        assert await asyncio.wait_for(stream.recv(), T) == []
        await stream.close()
        async with asyncio.timeout(T):
            while srv.connections:
                await asyncio.sleep(0.01)
    finally:
        await srv.close(0)


async def test_back_pressure_stalls_writer_and_bounds_memory() -> None:
    window = 65535
    reading = asyncio.Event()
    first_batch: list[int] = []

    async def slow_reader(stream: Stream) -> None:
        await reading.wait()
        n = 0
        async for batch in stream:
            if not first_batch:
                first_batch.append(sum(map(len, batch)))
            n += len(batch)
        stream.send(n.to_bytes(8, "big"))

    srv = await start_server({PATH: slow_reader}, "127.0.0.1", 0, window_size=window)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH, high_water=64 * 1024)
        msg = b"m" * 1019  # 1 KiB on the wire
        sent = 0
        cap = 64 * 1024 * 1024  # if we get here, nothing pushes back
        stalled = False
        while sent < cap:
            stream.send_many([msg] * 64)
            sent += 64 * 1024
            try:
                await asyncio.wait_for(stream.drain(), 1.0)
            except TimeoutError:
                stalled = True
                break
        assert stalled, "the writer never felt back-pressure"
        # What left the writer is bounded by windows, the high-water mark and socket buffers.
        assert sent - stream.pending_bytes < 24 * 1024 * 1024
        assert stream.pending_bytes >= stream.high_water
        reading.set()
        # The reader's memory was bounded by its stream window: that is all it had buffered.
        async with asyncio.timeout(T):
            while not first_batch:
                await asyncio.sleep(0.01)
        assert first_batch[0] <= window
        await asyncio.wait_for(stream.drain(), T)
        await stream.close()
        got = await recv_n(stream, 1)
        assert int.from_bytes(got[0], "big") == sent // 1024
    finally:
        await srv.close(0)


async def test_writes_are_coalesced(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    for i in range(2000):
        stream.send(i.to_bytes(2, "big") * 50)  # one loop tick, 2000 sends
    batches = 0
    got = 0
    async with asyncio.timeout(T):
        while got < 2000:
            got += len(await stream.recv())
            batches += 1
    assert batches < 100  # many messages per DATA frame / read, not one each
    await stream.close()


async def test_channel_unary_server_stream_and_concurrent_streams() -> None:
    async def unary(stream: Stream) -> None:
        (req,) = await stream.recv()
        stream.send(req[::-1])

    async def counting(stream: Stream) -> None:
        (req,) = await stream.recv()
        for i in range(int(req)):
            stream.send(str(i).encode())

    srv = await start_server(
        {"/t.S/Unary": unary, "/t.S/Count": counting, PATH: echo}, "127.0.0.1", 0
    )
    try:
        async with await connect(f"http://127.0.0.1:{srv.port}") as ch:
            assert await ch.unary("/t.S/Unary", b"abc", timeout=T) == b"cba"
            got = [m async for m in ch.server_stream("/t.S/Count", b"5")]
            assert got == [b"0", b"1", b"2", b"3", b"4"]
            streams = [await ch.open_stream(PATH) for _ in range(20)]
            for i, s in enumerate(streams):
                s.send(str(i).encode())
            for i, s in enumerate(streams):
                assert await recv_n(s, 1) == [str(i).encode()]
            with pytest.raises(GrpcError) as info:
                await ch.unary("/t.S/Missing", b"")
            assert info.value.status == Status.UNIMPLEMENTED
            assert srv.connections == 1
        assert ch.closed  # type: ignore[attr-defined]
    finally:
        await srv.close(0)


async def test_server_close_lets_calls_finish_within_grace() -> None:
    srv = await start_server({PATH: echo}, "127.0.0.1", 0)
    port = srv.port
    stream = await open_stream(f"http://127.0.0.1:{port}", PATH)
    stream.send(b"before")
    assert await recv_n(stream, 1) == [b"before"]
    closing = asyncio.create_task(srv.close(grace=T))
    await asyncio.sleep(0.05)
    stream.send(b"during")  # the open call still works after GOAWAY
    assert await recv_n(stream, 1) == [b"during"]
    await stream.close()
    assert await asyncio.wait_for(stream.recv(), T) == []
    await asyncio.wait_for(closing, T)
    with pytest.raises(TransportError):
        await open_stream(f"http://127.0.0.1:{port}", PATH, connect_timeout=T)


async def test_server_close_cancels_calls_after_grace() -> None:
    started = asyncio.Event()

    async def stuck(stream: Stream) -> None:
        started.set()
        await asyncio.Event().wait()

    srv = await start_server({PATH: stuck}, "127.0.0.1", 0)
    stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
    await asyncio.wait_for(started.wait(), T)
    await asyncio.wait_for(srv.close(grace=0.1), T)
    with pytest.raises((GrpcError, ConnectionClosed)) as info:
        await asyncio.wait_for(stream.recv(), T)
    if isinstance(info.value, GrpcError):
        assert info.value.status == Status.UNAVAILABLE


async def test_keepalive_closes_dead_connection() -> None:
    # A TCP peer that accepts and never speaks HTTP/2: PINGs go unanswered.
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    dead = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = dead.sockets[0].getsockname()[1]
    try:
        stream = await open_stream(
            f"http://127.0.0.1:{port}", PATH, keepalive_interval=0.05, keepalive_timeout=0.2
        )
        with pytest.raises(ConnectionClosed, match="keepalive"):
            await asyncio.wait_for(stream.recv(), T)
    finally:
        dead.close()


async def test_keepalive_pings_are_answered(server: Server) -> None:
    stream = await open_stream(
        f"http://127.0.0.1:{server.port}", PATH, keepalive_interval=0.02, keepalive_timeout=2.0
    )
    await asyncio.sleep(0.2)  # several ping round trips
    stream.send(b"alive")
    assert await recv_n(stream, 1) == [b"alive"]
    await stream.close()


async def test_tcp_nodelay_on_both_ends(server: Server) -> None:
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    stream.send(b"x")
    await recv_n(stream, 1)
    client_sock = stream._proto.transport.get_extra_info("socket")  # type: ignore[attr-defined]
    assert client_sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    (conn,) = server._connections
    server_sock = conn.transport.get_extra_info("socket")  # type: ignore[union-attr]
    assert server_sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    await stream.close()


async def test_connect_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(TransportError):
        await open_stream(f"http://127.0.0.1:{port}", PATH)


async def test_peer_loss_fails_streams() -> None:
    started = asyncio.Event()

    async def handler(stream: Stream) -> None:
        started.set()
        await stream.recv()

    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
    await asyncio.wait_for(started.wait(), T)
    for conn in list(srv._connections):
        conn.transport.abort()  # type: ignore[union-attr]
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(stream.recv(), T)
    assert stream.closed
    with pytest.raises(ConnectionClosed):
        stream.send(b"x")
    await srv.close(0)


def test_round_trip_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[bytes]:
        srv = await start_server({PATH: echo}, "127.0.0.1", 0)
        try:
            stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
            stream.send_many([b"uv"] * 1000 + [b"L" * 200_000])
            got = await recv_n(stream, 1001)
            await stream.close()
            assert await asyncio.wait_for(stream.recv(), T) == []
            return got
        finally:
            await srv.close(0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == [b"uv"] * 1000 + [b"L" * 200_000]


async def test_channel_after_server_goaway() -> None:
    srv = await start_server({PATH: echo}, "127.0.0.1", 0)
    ch = await connect(f"http://127.0.0.1:{srv.port}")
    stream = await ch.open_stream(PATH)
    stream.send(b"1")
    assert await recv_n(stream, 1) == [b"1"]
    closing = asyncio.create_task(srv.close(grace=T))
    async with asyncio.timeout(T):
        while not ch.closed:  # the GOAWAY arrives
            await asyncio.sleep(0.01)
    with pytest.raises(ConnectionClosed):
        await ch.open_stream(PATH)
    stream.send(b"2")  # the open call still completes
    assert await recv_n(stream, 1) == [b"2"]
    await stream.close()
    assert await asyncio.wait_for(stream.recv(), T) == []
    await asyncio.wait_for(closing, T)
    await asyncio.wait_for(ch.aclose(), T)


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not HTTP/2 at all
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x09\x00\x00\x00\x00\x01abcd",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64,
    ],
    ids=["http1", "bad-continuation", "junk-frame"],
)
async def test_garbage_on_the_socket_gets_goaway_and_server_lives(
    server: Server, garbage: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(garbage)
    received = await asyncio.wait_for(reader.read(-1), T)  # the server closes the connection
    writer.close()
    frame_types = []
    pos = 0
    while pos + 9 <= len(received):
        frame_types.append(received[pos + 3])
        pos += 9 + int.from_bytes(received[pos : pos + 3], "big")
    assert 0x7 in frame_types  # GOAWAY
    stream = await open_stream(f"http://127.0.0.1:{server.port}", PATH)
    stream.send(b"still serving")
    assert await recv_n(stream, 1) == [b"still serving"]
    await stream.close()


async def test_client_abort_resets_server_call_and_closes_its_connection() -> None:
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def handler(stream: Stream) -> None:
        try:
            async for _ in stream:
                pass
            outcome.set_result(None)
        except ConnectionClosed as exc:
            outcome.set_result(exc)

    srv = await start_server({PATH: handler}, "127.0.0.1", 0)
    try:
        stream = await open_stream(f"http://127.0.0.1:{srv.port}", PATH)
        stream.send(b"x")
        async with asyncio.timeout(T):
            while not srv.connections:
                await asyncio.sleep(0.01)
        stream.abort()
        assert isinstance(await asyncio.wait_for(outcome, T), ConnectionClosed)
        with pytest.raises(ConnectionClosed):
            await stream.recv()
        async with asyncio.timeout(T):
            while srv.connections:
                await asyncio.sleep(0.01)
    finally:
        await srv.close(0)


async def test_many_connections_at_once(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}"
    streams = await asyncio.gather(*(open_stream(url, PATH) for _ in range(30)))
    for i, s in enumerate(streams):
        s.send_many([i.to_bytes(2, "big")] * 100)
    for i, s in enumerate(streams):
        assert await recv_n(s, 100) == [i.to_bytes(2, "big")] * 100
    assert server.connections == 30
    for s in streams:
        await s.close()
    for s in streams:
        assert await asyncio.wait_for(s.recv(), T) == []
