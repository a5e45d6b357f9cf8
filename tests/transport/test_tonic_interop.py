"""Interop with the reference's gRPC stack (tonic/hyper, via ``slim-bindings``), transport level.

* tonic client -> our server: a bindings app dials us; tonic waits for our response HEADERS
  before it sends anything, so receiving its first message (a LinkNegotiation) proves we send
  them at once and that its framing reaches us intact.
* our client -> tonic server: we dial a reference node: response headers, a status for an
  unknown method, and a clean gRPC error when we send bytes that are not a ``Message``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slimwire._constants import DATAPLANE_PATH
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import GrpcError
from slimwire.transport import Status, Stream, open_stream, start_server

pytest.importorskip("slim_bindings")

from tests.interop._harness import NodeInfo, reference_node

T = 20.0

_DIAL = """
import asyncio, sys
import slim_bindings as slim

async def main():
    slim.initialize_with_configs(
        runtime_config=slim.new_runtime_config(),
        tracing_config=slim.new_tracing_config(),
        service_config=[slim.new_service_config()],
    )
    service = slim.get_global_service()
    await service.connect_async(slim.new_insecure_client_config(sys.argv[1]))

try:
    asyncio.run(asyncio.wait_for(main(), 30))
except BaseException as exc:
    print("dial ended:", exc, file=sys.stderr)
"""


async def test_tonic_client_reaches_our_server(tmp_path: Path) -> None:
    first: asyncio.Future[tuple[Stream, list[bytes]]] = asyncio.get_running_loop().create_future()

    async def handler(stream: Stream) -> None:
        batch = await stream.recv()
        if not first.done():
            first.set_result((stream, batch))
        await asyncio.sleep(T)  # keep the link open until the test ends

    srv = await start_server({DATAPLANE_PATH: handler}, "127.0.0.1", 0)
    script = tmp_path / "dial.py"
    script.write_text(_DIAL)
    log = (tmp_path / "dial.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(script), f"http://127.0.0.1:{srv.port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        stream, batch = await asyncio.wait_for(first, T)
        msg = pb.Message.FromString(batch[0])
        assert msg.HasField("link")
        assert msg.link.link_negotiation.slim_version
        agent = dict(stream.request_headers).get("user-agent", "")
        assert agent.startswith("tonic/")
        assert ("te", "trailers") in stream.request_headers
    finally:
        proc.kill()  # by PID: the process we started
        proc.wait(10)
        log.close()
        await srv.close(0)


@pytest.fixture(scope="module")
def ref_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeInfo]:
    with reference_node(tmp_path_factory.mktemp("tonic")) as node:
        yield node


async def test_our_client_reaches_tonic_server(ref_node: NodeInfo) -> None:
    stream = await open_stream(ref_node.endpoint, DATAPLANE_PATH)
    async with asyncio.timeout(T):
        while not stream.response_headers:
            await asyncio.sleep(0.01)
    headers = dict(stream.response_headers)
    assert headers[":status"] == "200"
    assert headers["content-type"].startswith("application/grpc")
    # Not a protobuf Message: the reference drops the link and ends the call with trailers
    # (observed: grpc-status 0), which our client must parse as a clean end.
    stream.send(b"\xff\xff\xff")
    assert await asyncio.wait_for(stream.recv(), T) == []
    assert ("grpc-status", "0") in stream.trailers
    assert stream.closed


async def test_unknown_method_on_tonic_server(ref_node: NodeInfo) -> None:
    stream = await open_stream(ref_node.endpoint, "/no.Such/Method")
    with pytest.raises(GrpcError) as info:
        await asyncio.wait_for(stream.recv(), T)
    assert info.value.status == Status.UNIMPLEMENTED
