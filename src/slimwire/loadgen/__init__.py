"""A raw data-plane load generator for SLIM nodes (the engine of ``slimwire bench``).

Producers and consumers run in separate processes, one link each, against any SLIM node. The
method follows the reference capacity measurement (pre-built messages, one MAC per pool, many
messages per write, CLOCK_MONOTONIC stamps in sampled payloads) so that figures for our node and
for the reference can be compared directly.

    result = run_bench(BenchConfig("http://127.0.0.1:46357", messages=100_000, size=100))
    print(result.msgs_per_s, result.lost, result.latency.p99_ms)
"""

from __future__ import annotations

from slimwire.loadgen._config import BenchConfig
from slimwire.loadgen._run import Progress, run_bench
from slimwire.loadgen._stats import BenchResult, LatencySummary, format_text

__all__ = [
    "BenchConfig",
    "BenchResult",
    "LatencySummary",
    "Progress",
    "format_text",
    "run_bench",
]
