"""Interop with grpcio (grpc.aio, generic handlers on raw bytes): both directions, h2c and TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from slimwire.errors import GrpcError
from slimwire.transport import Status, Stream, connect, open_stream, start_server

from .conftest import Pki

PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"
T = 10.0


async def echo(stream: Stream) -> None:
    async for batch in stream:
        stream.send_many(batch)
        await stream.drain()


async def refuse(stream: Stream) -> None:
    await stream.recv()
    await stream.close(Status.PERMISSION_DENIED, "no entry ☃")


async def _grpcio_bidi(channel: grpc.aio.Channel, msgs: list[bytes]) -> list[bytes]:
    call = channel.stream_stream(PATH)()  # no serializers: bytes in, bytes out
    got: list[bytes] = []
    for m in msgs:
        await call.write(m)
    await call.done_writing()
    async for reply in call:
        got.append(reply)
    assert await call.code() == grpc.StatusCode.OK
    return got


async def test_grpcio_client_against_our_server_h2c() -> None:
    srv = await start_server({PATH: echo, "/t.S/Refuse": refuse}, "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            msgs = [bytes([i % 256]) * (i * 37) for i in range(200)] + [b"z" * 1_000_000]
            got = await asyncio.wait_for(_grpcio_bidi(channel, msgs), T)
            assert got == msgs
            # Non-OK trailers with a percent-encoded message.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(channel.unary_unary("/t.S/Refuse")(b"x"), T)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert info.value.details() == "no entry ☃"
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(channel.unary_unary("/t.S/Nope")(b"x"), T)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await srv.close(0)


async def test_grpcio_client_against_our_server_tls(pki: Pki) -> None:
    srv = await start_server({PATH: echo}, "127.0.0.1", 0, ssl=pki.server_context())
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{srv.port}", creds) as channel:
            got = await asyncio.wait_for(_grpcio_bidi(channel, [b"a", b"b" * 5000]), T)
            assert got == [b"a", b"b" * 5000]
    finally:
        await srv.close(0)


async def _bidi(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    await context.send_initial_metadata(())
    async for req in requests:
        yield req


async def _count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()


async def _fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "missing 100%")
    return b""  # pragma: no cover


async def _grpcio_server(
    creds: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    handlers = {
        "OpenChannel": grpc.stream_stream_rpc_method_handler(_bidi),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("dataplane.proto.v1.DataPlaneService", handlers),)
    )
    if creds is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    return server, port


async def test_our_client_against_grpcio_server_h2c() -> None:
    server, port = await _grpcio_server()
    try:
        stream = await open_stream(f"http://127.0.0.1:{port}", PATH)
        msgs = [i.to_bytes(3, "big") * 30 for i in range(5000)] + [b"big" * 300_000]
        stream.send_many(msgs)
        got: list[bytes] = []
        async with asyncio.timeout(T):
            while len(got) < len(msgs):
                batch = await stream.recv()
                assert batch
                got += batch
        assert got == msgs
        await stream.close()
        assert await asyncio.wait_for(stream.recv(), T) == []

        base = "/dataplane.proto.v1.DataPlaneService"
        async with await connect(f"http://127.0.0.1:{port}") as ch:
            replies = [m async for m in ch.server_stream(f"{base}/Count", b"4")]
            assert replies == [b"0", b"1", b"2", b"3"]
            with pytest.raises(GrpcError) as info:
                await ch.unary(f"{base}/Fail", b"", timeout=T)
            assert info.value.status == Status.NOT_FOUND
            assert info.value.grpc_message == "missing 100%"
            with pytest.raises(GrpcError) as info:
                await ch.unary(f"{base}/Nope", b"", timeout=T)
            assert info.value.status == Status.UNIMPLEMENTED
    finally:
        await server.stop(0)


async def test_our_client_against_grpcio_server_tls(pki: Pki) -> None:
    creds = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())]
    )
    server, port = await _grpcio_server(creds)
    try:
        stream = await open_stream(f"https://localhost:{port}", PATH, ssl=pki.client_context())
        stream.send_many([b"tls"] * 10)
        got: list[bytes] = []
        async with asyncio.timeout(T):
            while len(got) < 10:
                got += await stream.recv()
        assert got == [b"tls"] * 10
        await stream.close()
        assert await asyncio.wait_for(stream.recv(), T) == []
    finally:
        await server.stop(0)
