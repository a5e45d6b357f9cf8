"""Producer and consumer processes: thin asyncio drivers around the sans-IO pieces.

Each process opens exactly one link (one TCP connection, one gRPC stream), talks to the driver
over a ``multiprocessing`` pipe (``ready`` → ``go`` → ``report`` → ``stop``), and stops by itself:
producers at their deadline, consumers after ``expected`` messages, after ``idle`` seconds
without traffic, or at their deadline. Nothing on the hot path awaits per message: a producer
hands up to :data:`WRITE_CHUNK` bytes of pre-built messages to its link per loop turn and then
awaits ``drain`` (which is where HTTP/2 flow control pushes back); a consumer on the raw link
lets received bytes flow into a counter with no task wake-up at all until it is done, and on the
transport link handles whatever batch ``recv`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from slimwire._constants import DEFAULT_TTL
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import ConnectionClosed, SlimwireTimeout, SubscriptionError
from slimwire.loadgen._config import ConsumerSpec, ProducerSpec
from slimwire.loadgen._link import BenchLink, open_link
from slimwire.loadgen._rawh2 import MAX_WINDOW, GrpcCounter
from slimwire.loadgen._rawlink import RawLink, open_raw_link
from slimwire.loadgen._stats import ConsumerReport, ProducerReport
from slimwire.loadgen._wire import (
    LatencyTally,
    PublishPool,
    build_pool,
    build_subscribe,
    identity_token,
)
from slimwire.names import proto_key

__all__ = ["WRITE_CHUNK", "consumer_main", "producer_main"]

log = logging.getLogger(__name__)

WRITE_CHUNK = 256 * 1024
"""Bytes handed to the transport per event-loop turn (as in the reference capacity method)."""
_SUBSCRIBE_TIMEOUT = 10.0
_WATCHDOG_PERIOD = 0.1

_SLOW_WINDOW = 1024 * 1024
"""HTTP/2 window of a rate-limited consumer, so that the node feels its slowness."""

T = TypeVar("T")
AnyLink = BenchLink | RawLink


async def _open(endpoint: str, kind: str, *, slow: bool = False) -> AnyLink:
    if kind == "raw":
        return await open_raw_link(endpoint, window=_SLOW_WINDOW if slow else MAX_WINDOW)
    return await open_link(endpoint)


def _run(main: Coroutine[Any, Any, T], use_uvloop: bool) -> T:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if use_uvloop:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - uvloop is an optional extra
            factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def _from_driver(conn: Connection, timeout: float) -> tuple[Any, ...]:
    """The driver's next message, without blocking the loop; ``("eof",)`` if it went away."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[Any, ...]] = loop.create_future()

    def readable() -> None:
        if fut.done():
            return
        try:
            fut.set_result(conn.recv())
        except (EOFError, OSError):
            fut.set_result(("eof",))

    fd = conn.fileno()
    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(timeout):
            return await fut
    except TimeoutError:
        return ("timeout",)
    finally:
        loop.remove_reader(fd)


def _send(conn: Connection, *item: Any) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        conn.send(item)


# ----------------------------------------------------------------------------- consumer


def consumer_main(spec: ConsumerSpec, conn: Connection, progress: Any, slot: int) -> None:
    """Process entry point of one consumer."""
    try:
        report = _run(_consume(spec, conn, progress, slot), spec.use_uvloop)
    except Exception as exc:  # report any failure to the driver instead of dying silently
        log.debug("consumer %d failed", spec.index, exc_info=True)
        _send(conn, "error", f"consumer {spec.index}: {type(exc).__name__}: {exc}")
        return
    _send(conn, "report", report)


async def _subscribe(link: AnyLink, spec: ConsumerSpec) -> None:
    sub_id = random.getrandbits(63) | 1
    identity = identity_token(f"bench-{spec.name.service}")
    link.send(build_subscribe(spec.name, sub_id, identity, link.signer))
    await link.drain()
    try:
        async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
            await _await_ack(link, sub_id)
    except TimeoutError:
        raise SlimwireTimeout(f"no SubscriptionAck within {_SUBSCRIBE_TIMEOUT:.0f} s") from None


async def _await_ack(link: AnyLink, sub_id: int) -> None:
    while True:
        batch = await link.recv()
        if not batch:
            raise ConnectionClosed("the node closed the link before acking the subscription")
        for raw in batch:
            msg = pb.Message.FromString(raw)
            if msg.WhichOneof("message_type") != "subscription_ack":
                continue
            ack = msg.subscription_ack
            if ack.subscription_id != sub_id:
                continue
            if not ack.success:
                raise SubscriptionError(ack.error or "subscription refused")
            return


def validate_delivery(raw: bytes, spec_name_key: tuple[int, int, int, int], link: AnyLink) -> bool:
    """Check one delivered message in full: a Publish for us, ttl decremented once by the node,
    ``incoming_conn`` set, and (when the link has a key) a header MAC that verifies."""
    try:
        msg = pb.Message.FromString(raw)
    except Exception:
        return False
    if msg.WhichOneof("message_type") != "publish":
        return False
    header = msg.publish.header
    key = proto_key(header.destination)
    prefix_ok = key[:3] == spec_name_key[:3]
    id_ok = key[3] in (spec_name_key[3], (1 << 128) - 1)
    if not (prefix_ok and id_ok and header.ttl == DEFAULT_TTL - 1):
        return False
    if not header.HasField("incoming_conn"):
        return False
    return link.verify(header)


async def _consume(
    spec: ConsumerSpec, conn: Connection, progress: Any, slot: int
) -> ConsumerReport:
    link = await _open(spec.endpoint, spec.link, slow=spec.rate > 0)
    try:
        await _subscribe(link, spec)
        _send(conn, "ready", spec.index)
        cmd = await _from_driver(conn, spec.deadline)
        if cmd[0] != "go":
            raise RuntimeError(f"no GO from the driver ({cmd[0]})")
        go_ns: int = cmd[1]
        if isinstance(link, RawLink):
            return await _count(link, spec, go_ns, progress, slot)
        return await _receive(link, spec, go_ns, progress, slot)
    finally:
        await link.aclose()


async def _count(
    link: RawLink, spec: ConsumerSpec, go_ns: int, progress: Any, slot: int
) -> ConsumerReport:
    """The raw link's consumer: received bytes flow straight into a counter."""
    counter = GrpcCounter(not_before_ns=go_ns)
    main = asyncio.current_task()
    assert main is not None
    stopped: list[bool] = []
    idle_ns = int(spec.idle * 1e9)
    deadline_ns = go_ns + int(spec.deadline * 1e9)
    dog = asyncio.create_task(
        _watch_task(main, lambda: link.last_ns or go_ns, idle_ns, deadline_ns, stopped)
    )
    error = ""
    cpu0 = time.process_time()
    try:
        await link.count(counter, spec.expected, progress=progress, slot=slot, rate=spec.rate)
    except asyncio.CancelledError:
        if not stopped:
            raise
        main.uncancel()
    except Exception as exc:
        error = f"consumer {spec.index}: {type(exc).__name__}: {exc}"
    finally:
        dog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dog
    cpu = time.process_time() - cpu0
    progress[slot] = counter.count
    first = counter.first
    return ConsumerReport(
        index=spec.index,
        expected=spec.expected,
        received=counter.count,
        bytes=counter.bytes,
        first_ns=link._first_ns,
        last_ns=link.last_ns,
        latencies_ns=tuple(counter.samples),
        bad_stamps=counter.bad_stamps,
        cpu_s=cpu,
        validated=first is not None and validate_delivery(first, spec.name.key, link),
        error=error,
    )


async def _watch_task(
    main: asyncio.Task[Any],
    last: Callable[[], int],
    idle_ns: int,
    deadline_ns: int,
    stopped: list[bool],
) -> None:
    """Cancel ``main`` once nothing arrived for ``idle_ns``, or at ``deadline_ns``."""
    while True:
        await asyncio.sleep(_WATCHDOG_PERIOD)
        now = time.monotonic_ns()
        if now - last() > idle_ns or now > deadline_ns:
            stopped.append(True)
            main.cancel()
            return


async def _receive(
    link: BenchLink, spec: ConsumerSpec, go_ns: int, progress: Any, slot: int
) -> ConsumerReport:
    tally = LatencyTally(not_before_ns=go_ns)
    cpu0 = time.process_time()
    cpu_end = cpu0
    expected = spec.expected
    first_ns = last_ns = 0
    validated = False
    name_key = spec.name.key
    deadline_ns = go_ns + int(spec.deadline * 1e9)
    idle_ns = int(spec.idle * 1e9)
    clock = time.monotonic_ns
    rate = spec.rate
    error = ""
    main = asyncio.current_task()
    assert main is not None
    last = [go_ns]
    stopped: list[bool] = []
    dog = asyncio.create_task(_watch_task(main, lambda: last[0], idle_ns, deadline_ns, stopped))
    try:
        while tally.count < expected:
            batch = await link.recv()
            if not batch:
                error = f"consumer {spec.index}: link closed by the node"
                break
            now = clock()
            last[0] = now
            if not first_ns:
                first_ns = now
                validated = validate_delivery(batch[0], name_key, link)
            tally.feed(batch, now)
            last_ns = now
            cpu_end = time.process_time()
            progress[slot] = tally.count
            if rate:
                # Read no faster than `rate`: sleep until the count is back on schedule. The
                # transport stops granting HTTP/2 window while we sleep, so the node must
                # hold or push back, which is what a slow-consumer test looks at.
                ahead = tally.count / rate - (now - first_ns) / 1e9
                if ahead > 0:
                    await asyncio.sleep(ahead)
    except asyncio.CancelledError:
        if not stopped:
            raise
        main.uncancel()
    except Exception as exc:
        error = f"consumer {spec.index}: {type(exc).__name__}: {exc}"
    finally:
        dog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dog
    progress[slot] = tally.count
    return ConsumerReport(
        index=spec.index,
        expected=expected,
        received=tally.count,
        bytes=tally.bytes,
        first_ns=first_ns,
        last_ns=last_ns,
        latencies_ns=tuple(tally.samples),
        bad_stamps=tally.bad_stamps,
        cpu_s=cpu_end - cpu0,
        validated=validated,
        error=error,
    )


# ----------------------------------------------------------------------------- producer


def producer_main(spec: ProducerSpec, conn: Connection, progress: Any, slot: int) -> None:
    """Process entry point of one producer."""
    try:
        _run(_produce(spec, conn, progress, slot), spec.use_uvloop)
    except Exception as exc:
        log.debug("producer %d failed", spec.index, exc_info=True)
        _send(conn, "error", f"producer {spec.index}: {type(exc).__name__}: {exc}")


async def _produce(spec: ProducerSpec, conn: Connection, progress: Any, slot: int) -> None:
    link = await _open(spec.endpoint, spec.link)
    try:
        pool = build_pool(
            spec.source,
            spec.destination,
            identity=identity_token(f"bench-{spec.source.service}"),
            payload_size=spec.size,
            multicast=spec.multicast,
            signer=link.signer,
            count=min(spec.pool, max(spec.messages, 1)),
            sample_every=spec.sample_every,
        )
        _send(conn, "ready", spec.index, pool.message_len)
        cmd = await _from_driver(conn, spec.stop_deadline)
        if cmd[0] != "go":
            raise RuntimeError(f"no GO from the driver ({cmd[0]})")
        go_ns: int = cmd[1]
        report = await _write_all(link, pool, spec, go_ns=go_ns, progress=progress, slot=slot)
        _send(conn, "report", report)
        # Keep the link open until the consumers are done: closing it could make the node drop
        # what it still holds for us. The driver says stop; the deadline covers a lost driver.
        remaining = spec.stop_deadline - (time.monotonic_ns() - go_ns) / 1e9
        await _from_driver(conn, max(remaining, 0.1))
    finally:
        await link.aclose()


async def _write_all(
    link: AnyLink, pool: PublishPool, spec: ProducerSpec, *, go_ns: int, progress: Any, slot: int
) -> ProducerReport:
    total = spec.messages
    per_write = max(1, WRITE_CHUNK // pool.frame_len)
    clock = time.monotonic_ns
    deadline_ns = go_ns + int(spec.deadline * 1e9)
    sent = pos = 0
    start = clock()
    cpu0 = time.process_time()
    error = ""
    loop = asyncio.get_running_loop()
    raw = link if isinstance(link, RawLink) else None
    try:
        # The deadline also bounds a drain that a stalled node never lets finish.
        async with asyncio.timeout_at(loop.time() + max(0.0, (deadline_ns - start) / 1e9)):
            while sent < total:
                n = min(per_write, total - sent, pool.count - pos)
                now = clock()
                pool.stamp(pos, pos + n, now)
                if raw is not None:
                    raw.write_pool(pool, pos, pos + n)
                else:
                    link.send_many(pool.messages[pos : pos + n])
                sent += n
                pos = (pos + n) % pool.count
                progress[slot] = sent
                link.quickack()
                await link.drain()
    except TimeoutError:
        error = f"producer {spec.index}: deadline reached after {sent} messages"
    except Exception as exc:
        error = f"producer {spec.index}: {type(exc).__name__}: {exc}"
    end = clock()
    progress[slot] = sent
    return ProducerReport(
        index=spec.index,
        sent=sent,
        start_ns=start,
        end_ns=end,
        cpu_s=time.process_time() - cpu0,
        error=error,
    )
