"""Link negotiation and header MACs against the reference itself (``slim-bindings`` 3.3.8).

* Our client against a reference node (MAC enforced): the node acks our signed Subscribes and
  forwards our signed Publishes, drops the ones whose tag we corrupt, and signs what it forwards
  so that our HeaderMac (parsed and raw paths) verifies it. A message re-emitted by
  ``Frame.forward(...).signed(...)`` is accepted by the node too.
* A reference app against our server (``ServerNegotiation`` under a minimal grpcio server): its
  Subscribe's tag verifies with the key we agreed.

gRPC here is grpcio, raw bytes in and out, so only slimwire.link is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from slimwire._constants import DATAPLANE_PATH, SLIM_VERSION
from slimwire._proto import data_plane_pb2 as pb
from slimwire.link import (
    ClientNegotiation,
    HeaderMac,
    LinkConnectionType,
    LinkInfo,
    ServerNegotiation,
    parse_frame,
)
from slimwire.names import Name

grpc = pytest.importorskip("grpc")
pytest.importorskip("slim_bindings")
from grpc import aio  # noqa: E402

SCRIPT = Path(__file__).with_name("_ref_proc.py")
STEP = 15.0  # seconds any single wait may take before the test fails


@contextlib.asynccontextmanager
async def ref_process(log_dir: Path, *argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A ``_ref_proc.py`` subprocess, ended (stdin EOF, then by PID) when the block exits."""
    log = (log_dir / f"{argv[0]}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


async def next_event(proc: asyncio.subprocess.Process, log_dir: Path) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), STEP)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in log_dir.glob("*.log"))
    assert line, f"reference process exited early; logs:\n{logs}"
    event: dict[str, Any] = json.loads(line)
    assert event["event"] != "error", f"{event}; logs:\n{logs}"
    return event


class Link:
    """One data-plane stream to the reference node, negotiated with ClientNegotiation.

    A reader task moves received messages into a queue: cancelling a pending grpc.aio read
    would cancel the whole call, cancelling a queue get is harmless.
    """

    def __init__(self, channel: Any, call: Any, info: LinkInfo) -> None:
        self.channel = channel
        self.call = call
        self.info = info
        assert info.mac is not None
        self.mac: HeaderMac = info.mac
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            data = await self.call.read()
            if not isinstance(data, bytes):
                return
            self.inbox.put_nowait(data)

    @classmethod
    async def open(cls, endpoint: str, node_id: str) -> Link:
        channel = aio.insecure_channel(endpoint)
        call = channel.stream_stream(DATAPLANE_PATH)()
        neg = ClientNegotiation(node_id=node_id)
        await call.write(neg.request().SerializeToString())
        reply = await asyncio.wait_for(call.read(), STEP)
        return cls(channel, call, neg.receive(pb.Message.FromString(reply)))

    async def send(self, data: bytes) -> None:
        await self.call.write(data)

    async def recv(self) -> bytes:
        return await asyncio.wait_for(self.inbox.get(), STEP)

    async def close(self) -> None:
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.channel.close()


def subscribe(name: Name, sub_id: int, mac: HeaderMac, *, corrupt: bool = False) -> bytes:
    m = pb.Message()
    h = m.subscribe.header
    name.fill_proto(h.source)
    name.fill_proto(h.destination)
    h.fanout, h.version, h.ttl = 1, SLIM_VERSION, 8
    m.subscribe.subscription_id = sub_id
    mac.sign(h)
    if corrupt:
        h.header_mac = bytes(b ^ 0x01 for b in h.header_mac)
    return m.SerializeToString()


def publish(src: Name, dst: Name, text: str, mac: HeaderMac, *, corrupt: bool = False) -> bytes:
    m = pb.Message()
    p = m.publish
    src.fill_proto(p.header.source)
    dst.fill_proto(p.header.destination)
    p.header.identity = "token-" + text
    p.header.fanout, p.header.version, p.header.ttl = 1, SLIM_VERSION, 8
    p.session.session_type = pb.SESSION_TYPE_POINT_TO_POINT
    p.session.session_message_type = pb.SESSION_MESSAGE_TYPE_MSG
    p.session.session_id = 4242
    p.session.message_id = 1
    p.msg.app_payload.payload_type = "msg"
    p.msg.app_payload.blob = text.encode()
    m.metadata["k"] = "v"
    mac.sign(p.header)
    if corrupt:
        p.header.ttl = 9  # changed after signing: the tag no longer matches
    return m.SerializeToString()


async def expect_ack(link: Link, good: int, bad: int | None = None) -> None:
    """Read until the ack for ``good``; the ack for ``bad`` (sent earlier) must not come first."""
    while True:
        msg = pb.Message.FromString(await link.recv())
        if msg.WhichOneof("message_type") != "subscription_ack":
            continue
        ack = msg.subscription_ack
        assert ack.subscription_id != bad, "the node accepted a Subscribe with a corrupted tag"
        if ack.subscription_id == good:
            assert ack.success, ack.error
            return


async def first_publish(*links: Link) -> tuple[Link, bytes]:
    """The first Publish to arrive on any of ``links`` (the node round-robins between them)."""
    deadline = asyncio.get_running_loop().time() + STEP
    while True:
        for link in links:
            while not link.inbox.empty():
                raw = link.inbox.get_nowait()
                if pb.Message.FromString(raw).WhichOneof("message_type") == "publish":
                    return link, raw
        assert asyncio.get_running_loop().time() < deadline, "no publish arrived"
        await asyncio.sleep(0.01)


async def test_reference_node_and_our_links_agree_on_every_tag(tmp_path: Path) -> None:
    async with ref_process(tmp_path, "node") as node:
        ready = await next_event(node, tmp_path)
        endpoint = ready["endpoint"]
        a = await Link.open(endpoint, "our-producer")
        b = await Link.open(endpoint, "our-consumer-1")
        c = await Link.open(endpoint, "our-consumer-2")
        try:
            for link in (a, b, c):
                assert link.info.peer_node_id == ready["node_id"]
                assert link.info.connection_type is LinkConnectionType.EDGE
                assert link.info.peer_version.count(".") >= 2

            prod = Name("org", "ns", "prod", random.getrandbits(64))
            cons = Name("org", "ns", "cons", random.getrandbits(64))
            # Subscribes: a corrupted tag is dropped (no ack), a good one is acked.
            for link in (b, c):
                bad_id, good_id = random.getrandbits(63), random.getrandbits(63)
                await link.send(subscribe(cons, bad_id, link.mac, corrupt=True))
                await link.send(subscribe(cons, good_id, link.mac))
                await expect_ack(link, good_id, bad_id)

            # Publishes: the corrupted one (sent first) is dropped, the good one arrives,
            # re-signed by the node for the receiving link, ttl 8 -> 7.
            await a.send(publish(prod, cons, "bad", a.mac, corrupt=True))
            await a.send(publish(prod, cons, "good", a.mac))
            receiver, raw = await first_publish(b, c)
            msg = pb.Message.FromString(raw)
            assert msg.publish.msg.app_payload.blob == b"good"
            assert msg.publish.header.ttl == 7
            assert receiver.mac.verify(msg.publish.header)
            frame = receiver.mac.verify_message(raw)
            assert frame is not None
            assert frame.ttl == 7
            assert frame.destination == (*cons.encoded, cons.id)
            assert frame.keep_len > 0  # the reference's (prost) layout takes the fast reader
            other = c if receiver is b else b
            assert not other.mac.verify(msg.publish.header)  # the tag is per link

            # Re-emit it spliced and signed by us: the node accepts it and delivers it to the
            # other subscriber (never back to the link it came from), signed again.
            await receiver.send(frame.forward(frame.ttl, None).signed(receiver.mac))
            _, raw2 = await first_publish(other)
            again = parse_frame(raw2)
            assert again is not None
            assert other.mac.verify_frame(again)
            assert again.ttl == 6
            assert pb.Message.FromString(raw2).publish.msg.app_payload.blob == b"good"
        finally:
            for link in (a, b, c):
                await link.close()


async def test_reference_app_tags_verify_on_our_server(tmp_path: Path) -> None:
    seen: list[tuple[str, bool, bool]] = []
    infos: list[LinkInfo] = []

    async def open_channel(requests: Any, context: Any) -> AsyncIterator[bytes]:
        await context.send_initial_metadata(())  # the reference waits for headers first
        it = requests.__aiter__()
        reply, info = ServerNegotiation("our-node").receive(pb.Message.FromString(await anext(it)))
        infos.append(info)
        yield reply.SerializeToString()
        assert info.mac is not None
        async for raw in it:
            msg = pb.Message.FromString(raw)
            kind = msg.WhichOneof("message_type") or ""
            body = getattr(msg, kind)
            fast = info.mac.verify_message(raw) is not None
            seen.append((kind, info.mac.verify(body.header), fast))
            if kind == "subscribe" and msg.subscribe.subscription_id:
                ack = pb.Message()
                ack.subscription_ack.subscription_id = msg.subscribe.subscription_id
                ack.subscription_ack.success = True
                yield ack.SerializeToString()

    server = aio.server()
    handler = grpc.method_handlers_generic_handler(
        "dataplane.proto.v1.DataPlaneService",
        {"OpenChannel": grpc.stream_stream_rpc_method_handler(open_channel)},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with ref_process(tmp_path, "app", "--endpoint", f"127.0.0.1:{port}") as app:
            event = await next_event(app, tmp_path)
            assert event["event"] == "subscribed"
    finally:
        await server.stop(0)
    assert len(infos) == 1
    assert infos[0].connection_type is LinkConnectionType.EDGE
    assert infos[0].peer_version == "3.4.6"
    assert ("subscribe", True, True) in seen
    assert all(ok and fast for _, ok, fast in seen), seen
