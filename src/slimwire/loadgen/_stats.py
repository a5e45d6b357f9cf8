"""Figures of a benchmark run: per-process reports in, one immutable result out.

The rate is computed the way the reference capacity note does it, so figures are comparable:
messages delivered divided by (time of the last arrival - GO). All times are CLOCK_MONOTONIC
nanoseconds, which every process on the machine shares, so a consumer's arrival time and the
driver's GO time can be subtracted directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

__all__ = [
    "BenchResult",
    "ConsumerReport",
    "LatencySummary",
    "ProducerReport",
    "format_text",
    "percentile",
    "summarize",
]


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending sequence; 0 if it is empty.

    Nearest rank returns a value that was actually measured, which is what a latency report
    should show (no interpolation between two samples).
    """
    if not sorted_values:
        return 0
    if not 0 <= q <= 100:
        raise ValueError(f"percentile out of range: {q}")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """One-way latency (producer write → consumer read) in milliseconds."""

    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_ns(cls, values: Iterable[int]) -> LatencySummary:
        ordered = sorted(values)

        def ms(q: float) -> float:
            return round(percentile(ordered, q) / 1e6, 4)

        return cls(len(ordered), ms(50), ms(90), ms(99), ms(100))


@dataclass(frozen=True, slots=True)
class ProducerReport:
    """What one producer process did between GO and its last write."""

    index: int
    sent: int
    start_ns: int
    end_ns: int
    cpu_s: float = 0.0
    """The process's CPU time (user + system) from GO to its last write."""
    error: str = ""


@dataclass(frozen=True, slots=True)
class ConsumerReport:
    """What one consumer process received; ``latencies_ns`` are its raw samples."""

    index: int
    expected: int
    received: int
    bytes: int
    first_ns: int
    last_ns: int
    latencies_ns: tuple[int, ...]
    bad_stamps: int = 0
    cpu_s: float = 0.0
    """The process's CPU time from GO to its last arrival."""
    validated: bool = False
    """The first delivered message parsed as the Publish we sent, with ttl decremented by one."""
    error: str = ""


@dataclass(frozen=True, slots=True)
class BenchResult:
    """The figures of one ``slimwire bench`` run (what ``--json`` prints)."""

    endpoint: str
    producers: int
    consumers: int
    fanout: bool
    payload_bytes: int
    message_bytes: int
    published: int
    expected: int
    delivered: int
    lost: int
    go_ns: int
    last_arrival_ns: int
    elapsed_s: float
    msgs_per_s: float
    mb_per_s: float
    publish_msgs_per_s: float
    latency: LatencySummary
    bad_stamps: int
    validated: bool
    producer_cpu_pct: float
    """Mean CPU use of one producer process over its sending time (100 = one core)."""
    consumer_cpu_pct: float
    """Mean CPU use of one consumer process from GO to the last arrival."""
    errors: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def summarize(
    *,
    endpoint: str,
    fanout: bool,
    payload_bytes: int,
    message_bytes: int,
    go_ns: int,
    producers: Sequence[ProducerReport],
    consumers: Sequence[ConsumerReport],
    errors: Sequence[str] = (),
) -> BenchResult:
    """Combine the processes' reports into the run's figures."""
    published = sum(p.sent for p in producers)
    delivered = sum(c.received for c in consumers)
    expected = published * len(consumers) if fanout else published
    arrivals = [c.last_ns for c in consumers if c.received]
    last = max(arrivals, default=go_ns)
    elapsed = max(last - go_ns, 1) / 1e9
    rx_bytes = sum(c.bytes for c in consumers)
    pub_end = max((p.end_ns for p in producers), default=go_ns)
    pub_elapsed = max(pub_end - go_ns, 1) / 1e9
    latencies = [v for c in consumers for v in c.latencies_ns]
    all_errors = [*errors, *(p.error for p in producers if p.error)]
    all_errors += [c.error for c in consumers if c.error]
    return BenchResult(
        endpoint=endpoint,
        producers=len(producers),
        consumers=len(consumers),
        fanout=fanout,
        payload_bytes=payload_bytes,
        message_bytes=message_bytes,
        published=published,
        expected=expected,
        delivered=delivered,
        lost=expected - delivered,
        go_ns=go_ns,
        last_arrival_ns=last,
        elapsed_s=round(elapsed, 6),
        msgs_per_s=round(delivered / elapsed, 1) if delivered else 0.0,
        mb_per_s=round(rx_bytes / elapsed / 1e6, 3) if delivered else 0.0,
        publish_msgs_per_s=round(published / pub_elapsed, 1) if published else 0.0,
        latency=LatencySummary.from_ns(latencies),
        bad_stamps=sum(c.bad_stamps for c in consumers),
        validated=bool(consumers) and all(c.validated for c in consumers if c.received),
        producer_cpu_pct=_cpu_pct([(p.cpu_s, p.end_ns - go_ns) for p in producers]),
        consumer_cpu_pct=_cpu_pct([(c.cpu_s, c.last_ns - go_ns) for c in consumers if c.received]),
        errors=tuple(all_errors),
    )


def _cpu_pct(usage: Sequence[tuple[float, int]]) -> float:
    """Mean CPU % per process over each one's own active time."""
    pcts = [cpu / (ns / 1e9) * 100 for cpu, ns in usage if ns > 0]
    return round(sum(pcts) / len(pcts), 1) if pcts else 0.0


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def format_text(r: BenchResult) -> str:
    """The human-readable report (nats-bench style)."""
    mode = "fan-out" if r.fanout else "unicast"
    lines = [
        f"slimwire bench {r.endpoint}: {r.producers} producer(s) -> {r.consumers} consumer(s), "
        f"{mode}, {r.payload_bytes} B payload ({r.message_bytes} B messages)",
        f"  published  {r.published:>12,} msgs  {_rate(r.publish_msgs_per_s):>10} msg/s",
        f"  delivered  {r.delivered:>12,} msgs  {_rate(r.msgs_per_s):>10} msg/s  "
        f"{r.mb_per_s:,.1f} MB/s  in {r.elapsed_s:.3f} s",
        f"  loss       {r.lost:>12,} of {r.expected:,} expected"
        + (f" ({100 * r.lost / r.expected:.3f} %)" if r.expected else ""),
    ]
    lat = r.latency
    if lat.samples:
        lines.append(
            f"  latency    p50 {lat.p50_ms:.3f} ms  p90 {lat.p90_ms:.3f} ms  "
            f"p99 {lat.p99_ms:.3f} ms  max {lat.max_ms:.3f} ms  ({lat.samples:,} samples)"
        )
    else:
        lines.append("  latency    no samples (payload too small or nothing delivered)")
    lines.append(
        f"  load-gen   producer CPU {r.producer_cpu_pct:.0f} %, consumer CPU "
        f"{r.consumer_cpu_pct:.0f} % (mean per process; 100 % = one core)"
    )
    if r.bad_stamps:
        lines.append(f"  warning    {r.bad_stamps} corrupted latency stamps")
    lines.extend(f"  error      {e}" for e in r.errors)
    return "\n".join(lines)
