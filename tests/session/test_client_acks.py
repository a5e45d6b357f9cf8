"""Reliable sends without a future per message: wait=True, flush() and delivery failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from slimwire.client import connect
from slimwire.config import NodeConfig, ServerConfig
from slimwire.dataplane import Node
from slimwire.errors import DeliveryFailed
from tests.session._net import SECRET


@pytest.fixture
async def url() -> AsyncIterator[str]:
    config = NodeConfig(node_id="acks", servers=(ServerConfig(host="127.0.0.1", port=0),))
    async with Node(config) as node:
        yield f"http://127.0.0.1:{node.port}"


async def test_flush_waits_for_every_ack_and_wait_returns_after_its_own(url: str) -> None:
    async with asyncio.timeout(30):
        a = await connect(url, name="org/ns/acks-a", secret=SECRET)
        b = await connect(url, name="org/ns/acks-b", secret=SECRET)
        try:
            s = await a.open_session("org/ns/acks-b", reliable=True)
            r = await b.accept(5)
            ids = [await s.publish(b"%d" % i) for i in range(200)]
            await s.flush(timeout=10)
            assert not s._unacked
            assert not s._flushes
            assert await s.publish(b"last", wait=True) == ids[-1] + 1  # type: ignore[operator]
            got = [(await r.receive(timeout=5)).payload for _ in range(201)]
            assert got == [b"%d" % i for i in range(200)] + [b"last"]
        finally:
            await a.close()
            await b.close()


async def test_delivery_failure_raises_for_the_waiter_and_ends_flush(url: str) -> None:
    async with asyncio.timeout(30):
        a = await connect(url, name="org/ns/acks-c", secret=SECRET)
        b = await connect(url, name="org/ns/acks-d", secret=SECRET, reconnect=False)
        try:
            s = await a.open_session("org/ns/acks-d", reliable=True, interval=0.1, max_retries=2)
            await b.accept(5)
            assert b._stream is not None
            b._stream.abort()  # the peer vanishes without a word
            await asyncio.sleep(0.2)
            await s.publish(b"x")
            with pytest.raises(DeliveryFailed):
                await s.publish(b"y", wait=True, timeout=10)
            await s.flush(timeout=10)  # failures end a flush too (they do not raise there)
            assert not s._unacked
        finally:
            await a.close()
            await b.close()
