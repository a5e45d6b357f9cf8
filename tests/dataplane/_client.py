"""A raw SLIM client for node tests: transport + link negotiation, no session layer."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from slimwire._constants import DATAPLANE_PATH
from slimwire._proto import data_plane_pb2 as pb
from slimwire.link import ClientNegotiation, LinkConnectionType, LinkInfo
from slimwire.names import Name
from slimwire.transport import Stream, open_stream


class RawClient:
    """One link to a node; signs what it sends, keeps what it receives."""

    def __init__(self, stream: Stream, info: LinkInfo, name: Name) -> None:
        self.stream = stream
        self.info = info
        self.name = name
        self.inbox: list[pb.Message] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())
        self.ended: BaseException | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        name: Name,
        *,
        require_mac: bool = True,
        connection_type: LinkConnectionType = LinkConnectionType.EDGE,
        window_size: int | None = None,
        opener: Any = open_stream,
    ) -> RawClient:
        kw = {} if window_size is None else {"window_size": window_size}
        stream = await opener(url, DATAPLANE_PATH, **kw)
        neg = ClientNegotiation(
            node_id=f"client-{name.service}",
            connection_type=connection_type,
            require_mac=require_mac,
        )
        stream.send(neg.request().SerializeToString())
        async with asyncio.timeout(5):
            batch = await stream.recv()
        info = neg.receive(pb.Message.FromString(batch[0]))
        return cls(stream, info, name)

    async def _read(self) -> None:
        try:
            while batch := await self.stream.recv():
                self.inbox.extend(pb.Message.FromString(d) for d in batch)
                self._arrived.set()
        except Exception as exc:
            self.ended = exc
        else:
            self.ended = EOFError("stream ended")
        self._arrived.set()

    def send(self, msg: pb.Message) -> None:
        kind = msg.WhichOneof("message_type")
        if kind in ("publish", "subscribe", "unsubscribe") and self.info.mac is not None:
            self.info.mac.sign(getattr(msg, kind).header)
        self.stream.send(msg.SerializeToString())

    async def wait(self, predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self.ended is not None:
                    raise AssertionError(f"stream ended: {self.ended!r}")
                self._arrived.clear()
                await self._arrived.wait()

    def take(self, kind: str) -> list[pb.Message]:
        got = [m for m in self.inbox if m.WhichOneof("message_type") == kind]
        self.inbox = [m for m in self.inbox if m.WhichOneof("message_type") != kind]
        return got

    async def subscribe(self, name: Name | None = None, sid: int | None = None) -> int:
        sid = sid if sid is not None else random.getrandbits(63) + 1
        self.send(subscription_msg(name or self.name, sid))
        await self.wait(
            lambda c: any(
                m.subscription_ack.subscription_id == sid
                for m in c.inbox
                if m.WhichOneof("message_type") == "subscription_ack"
            )
        )
        (ack,) = [
            m for m in self.take("subscription_ack") if m.subscription_ack.subscription_id == sid
        ]
        assert ack.subscription_ack.success, ack.subscription_ack.error
        return sid

    async def unsubscribe(self, name: Name, sid: int) -> pb.SubscriptionAck:
        self.send(subscription_msg(name, sid, add=False))
        await self.wait(
            lambda c: any(m.WhichOneof("message_type") == "subscription_ack" for m in c.inbox)
        )
        return self.take("subscription_ack")[0].subscription_ack

    def publish(self, dst: Name, payload: bytes, *, fanout: int = 1, ttl: int = 8) -> None:
        self.send(publish_msg(self.name, dst, payload, fanout=fanout, ttl=ttl))

    async def received(self, n: int, timeout: float = 5.0) -> list[pb.Message]:
        await self.wait(
            lambda c: sum(m.WhichOneof("message_type") == "publish" for m in c.inbox) >= n, timeout
        )
        return self.take("publish")

    async def close(self) -> None:
        if not self.stream.closed:
            await self.stream.close()
        self._reader.cancel()


def subscription_msg(name: Name, sid: int, *, add: bool = True) -> pb.Message:
    msg = pb.Message()
    sub = msg.subscribe if add else msg.unsubscribe
    sub.subscription_id = sid
    h = sub.header
    name.fill_proto(h.source)
    name.fill_proto(h.destination)
    h.fanout = 1
    h.ttl = 8
    h.version = "3.4.6"
    return msg


def publish_msg(
    src: Name, dst: Name, payload: bytes, *, fanout: int = 1, ttl: int = 8
) -> pb.Message:
    msg = pb.Message()
    p = msg.publish
    h = p.header
    src.fill_proto(h.source)
    dst.fill_proto(h.destination)
    h.fanout = fanout
    h.ttl = ttl
    h.version = "3.4.6"
    p.session.session_id = 1
    p.session.message_id = 1
    p.msg.app_payload.payload_type = "msg"
    p.msg.app_payload.blob = payload
    return msg
