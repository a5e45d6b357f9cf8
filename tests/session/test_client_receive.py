"""Session.receive(): waiting, timeouts, cancellation and concurrent readers (no network).

Each receiver waits on its own future and a timeout is a plain loop timer; these tests pin
what that must keep: a timed-out or cancelled receiver leaves nothing behind, one receiver's
cancellation never loses another's message, and a close wakes everyone.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from slimwire.client import Session
from slimwire.errors import SessionClosed, SlimwireTimeout
from slimwire.names import Name
from slimwire.session import ReceivedMessage, SessionConfig

pytestmark = pytest.mark.timeout(30)

PEER = Name("org", "ns", "peer", 3)


def _session() -> Session:
    # receive() never touches the app; _push() only asks whether it traces
    app: Any = SimpleNamespace(_tracer=None)
    return Session(app, 1, PEER, SessionConfig.p2p(), False)


def _msg(n: int) -> ReceivedMessage:
    return ReceivedMessage(1, n, PEER, PEER, str(n).encode(), "msg", {})


async def test_timeout_leaves_no_waiter() -> None:
    s = _session()
    with pytest.raises(SlimwireTimeout):
        await s.receive(timeout=0.01)
    assert s._waiters == []
    s._push(_msg(1))
    assert (await s.receive(timeout=1)).payload == b"1"


async def test_cancelled_receive_leaves_no_waiter_and_loses_nothing() -> None:
    s = _session()
    for _ in range(50):
        task = asyncio.create_task(s.receive(timeout=5))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert s._waiters == []
    s._push(_msg(7))
    assert (await s.receive(timeout=1)).payload == b"7"


async def test_concurrent_receivers_each_get_one_message() -> None:
    s = _session()
    readers = [asyncio.create_task(s.receive(timeout=5)) for _ in range(3)]
    cancelled = asyncio.create_task(s.receive())
    await asyncio.sleep(0)
    cancelled.cancel()
    for n in range(3):
        s._push(_msg(n))
    got = sorted([(await r).payload for r in readers])
    assert got == [b"0", b"1", b"2"]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert s._waiters == []


async def test_a_receiver_without_timeout_waits_until_a_message() -> None:
    s = _session()
    reader = asyncio.create_task(s.receive())
    await asyncio.sleep(0.05)
    assert not reader.done()
    s._push(_msg(9))
    assert (await asyncio.wait_for(reader, 5)).payload == b"9"


async def test_close_wakes_every_receiver() -> None:
    s = _session()
    readers = [asyncio.create_task(s.receive(timeout=5)) for _ in range(2)]
    readers.append(asyncio.create_task(s.receive()))
    await asyncio.sleep(0)
    s._on_closed("closed by the peer")
    for r in readers:
        with pytest.raises(SessionClosed):
            await asyncio.wait_for(r, 5)
    assert s._waiters == []


def test_fast_constructors_build_the_same_frozen_values() -> None:
    import dataclasses

    from slimwire.client import Message
    from slimwire.session._events import received_message

    fast = received_message(1, 2, PEER, PEER, b"p", "t", {"k": "v"})
    assert fast == ReceivedMessage(1, 2, PEER, PEER, b"p", "t", {"k": "v"})
    assert fast.sender_id == ""
    s = _session()
    msg = Message._from(s, fast)
    assert msg == Message(s, PEER, b"p", "t", {"k": "v"}, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.payload = b"other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.payload = b"other"  # type: ignore[misc]
