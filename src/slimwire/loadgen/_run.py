"""The driver: start the processes, say GO to all of them together, collect their reports.

Consumers start first and must have their SubscriptionAck before any producer starts, so no
message can arrive before its route exists. Producers then connect and build their pools, and
only when every process is ready does the driver take the GO time and release them all. The
driver never relies on its children cooperating to end: each child has its own deadlines, and
anything still alive after the run is terminated by its own ``Process`` handle (its PID).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from slimwire.errors import SlimwireTimeout, TransportError
from slimwire.loadgen._config import BenchConfig, plan
from slimwire.loadgen._stats import BenchResult, ConsumerReport, ProducerReport, summarize
from slimwire.loadgen._worker import consumer_main, producer_main

__all__ = ["Progress", "run_bench"]

log = logging.getLogger(__name__)

_JOIN_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for a progress display: messages written and received so far."""

    elapsed_s: float
    sent: int
    to_send: int
    received: int
    expected: int


@dataclass(slots=True)
class _Child:
    role: str
    index: int
    process: BaseProcess
    conn: Connection
    ready: bool = False
    info: tuple[Any, ...] = ()
    report: Any = None
    error: str = ""

    @property
    def settled(self) -> bool:
        return self.report is not None or bool(self.error)


def _poll(children: list[_Child], timeout: float) -> None:
    """Take every message the children have sent, waiting at most ``timeout`` for the first."""
    live = {c.conn: c for c in children if not c.settled}
    if not live:
        return
    for conn in wait(list(live), timeout=timeout):
        child = live[conn]  # type: ignore[index]  # wait() returns what it was given
        try:
            item = child.conn.recv()
        except (EOFError, OSError):
            child.error = child.error or f"{child.role} {child.index} exited without a report"
            continue
        kind = item[0]
        if kind == "ready":
            child.ready = True
            child.info = item
        elif kind == "report":
            child.report = item[1]
        elif kind == "error":
            child.error = item[1]


def _wait_ready(children: list[_Child], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not all(c.ready for c in children):
        failed = [c.error for c in children if c.error]
        if failed:
            raise TransportError("; ".join(failed))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = [c.index for c in children if not c.ready]
            raise SlimwireTimeout(f"{what} {missing} not ready after {timeout:.0f} s")
        _poll(children, min(remaining, 0.2))


def _stop(children: list[_Child]) -> None:
    """Tell every child to stop, wait for it, and terminate any that does not exit."""
    for c in children:
        with contextlib.suppress(BrokenPipeError, OSError):
            c.conn.send(("stop",))
    deadline = time.monotonic() + _JOIN_TIMEOUT
    for c in children:
        c.process.join(max(0.0, deadline - time.monotonic()))
    for c in children:
        if c.process.is_alive():
            log.warning(
                "%s %d (pid %s) did not stop; terminating it", c.role, c.index, c.process.pid
            )
            c.process.terminate()
            c.process.join(1.0)
            if c.process.is_alive():
                c.process.kill()
                c.process.join(1.0)
        c.conn.close()


def run_bench(
    cfg: BenchConfig,
    on_progress: Callable[[Progress], None] | None = None,
    progress_period: float = 0.25,
) -> BenchResult:
    """Run one benchmark and return its figures. Blocks; every process it starts has ended
    when it returns."""
    ctx = mp.get_context("spawn")
    consumer_specs, producer_specs = plan(cfg)
    counters = ctx.Array("q", len(consumer_specs) + len(producer_specs), lock=False)
    consumers: list[_Child] = []
    producers: list[_Child] = []
    try:
        for spec in consumer_specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=consumer_main,
                args=(spec, child, counters, spec.index),
                name=f"slimwire-bench-consumer-{spec.index}",
                daemon=True,
            )
            proc.start()
            child.close()
            consumers.append(_Child("consumer", spec.index, proc, parent))
        _wait_ready(consumers, cfg.setup_timeout, "consumers")
        base = len(consumer_specs)
        for pspec in producer_specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=producer_main,
                args=(pspec, child, counters, base + pspec.index),
                name=f"slimwire-bench-producer-{pspec.index}",
                daemon=True,
            )
            proc.start()
            child.close()
            producers.append(_Child("producer", pspec.index, proc, parent))
        _wait_ready(producers, cfg.setup_timeout, "producers")
        message_len = int(producers[0].info[2])

        go_ns = time.monotonic_ns()
        for c in [*consumers, *producers]:
            c.conn.send(("go", go_ns))
        to_send = sum(p.messages for p in producer_specs)
        expected = sum(c.expected for c in consumer_specs)
        # Consumers end by themselves (count, idle or deadline); this is only a backstop.
        hard_deadline = time.monotonic() + cfg.timeout + cfg.idle + 15.0
        next_tick = time.monotonic()
        while not all(c.settled for c in consumers):
            if time.monotonic() > hard_deadline:
                break
            _poll([*consumers, *producers], progress_period)
            if on_progress is not None and time.monotonic() >= next_tick:
                next_tick += progress_period
                on_progress(
                    Progress(
                        elapsed_s=(time.monotonic_ns() - go_ns) / 1e9,
                        sent=sum(counters[base:]),
                        to_send=to_send,
                        received=sum(counters[:base]),
                        expected=expected,
                    )
                )
        # Producers reported when their last write returned; collect any stragglers.
        settle = time.monotonic() + _JOIN_TIMEOUT
        while not all(p.settled for p in producers) and time.monotonic() < settle:
            _poll(producers, 0.2)
    finally:
        _stop([*producers, *consumers])

    errors = [c.error for c in [*consumers, *producers] if c.error]
    producer_reports = [
        p.report
        if isinstance(p.report, ProducerReport)
        # A producer that failed or vanished: count what the shared counter says it wrote.
        else ProducerReport(p.index, int(counters[base + p.index]), go_ns, go_ns)
        for p in producers
    ]
    consumer_reports = [
        c.report
        if isinstance(c.report, ConsumerReport)
        else ConsumerReport(
            c.index, consumer_specs[c.index].expected, int(counters[c.index]), 0, 0, 0, ()
        )
        for c in consumers
    ]
    return summarize(
        endpoint=cfg.endpoint,
        fanout=cfg.fanout,
        payload_bytes=cfg.size,
        message_bytes=message_len,
        go_ns=go_ns,
        producers=producer_reports,
        consumers=consumer_reports,
        errors=errors,
    )
