"""Process and machine figures from /proc, for the node benchmark.

A node's CPU cost per message is (utime + stime between GO and the last arrival) / messages
delivered, as in the reference capacity note. The load generator reports GO and the last
arrival as CLOCK_MONOTONIC nanoseconds, so a background sampler records (monotonic time, CPU
seconds, RSS) every few milliseconds and the figures are read off that series, interpolating
CPU linearly between the two samples around each instant.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; fields after the closing ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_delay_seconds(pid: int) -> float:
    """Time all threads of a process spent runnable but waiting for a CPU (schedstat), in s.

    This is what tells a node starved by other work (high) from a node with nothing to do
    (low), when its CPU use is under one core.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (to find the real node under ``timeout``)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def machine() -> dict[str, str]:
    """nproc and CPU model, for the record."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count() or 0), "cpu": model}


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat (idle and iowait count as not busy)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - fields[3] - fields[4], total


@dataclass(frozen=True, slots=True)
class Sample:
    t_ns: int
    cpu_s: float
    rss_kib: int
    busy: int
    total: int
    wait_s: float


class Sampler:
    """Samples one process every ``period`` seconds in a background thread until stopped."""

    def __init__(self, pid: int, period: float = 0.01) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{pid}", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _take(self) -> None:
        try:
            busy, total = machine_ticks()
            self.samples.append(
                Sample(
                    time.monotonic_ns(),
                    cpu_seconds(self.pid),
                    rss_kib(self.pid),
                    busy,
                    total,
                    run_delay_seconds(self.pid),
                )
            )
        except (OSError, ValueError, IndexError):
            self._stop.set()  # the process is gone

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.period)

    def cpu_at(self, t_ns: int) -> float:
        """CPU seconds at ``t_ns``, interpolated between the samples around it."""
        s = self.samples
        if not s:
            raise ValueError("no samples")
        times = [x.t_ns for x in s]
        i = bisect.bisect_left(times, t_ns)
        if i == 0:
            return s[0].cpu_s
        if i >= len(s):
            return s[-1].cpu_s
        a, b = s[i - 1], s[i]
        frac = (t_ns - a.t_ns) / max(b.t_ns - a.t_ns, 1)
        return a.cpu_s + frac * (b.cpu_s - a.cpu_s)

    def cpu_between(self, t0_ns: int, t1_ns: int) -> float:
        return self.cpu_at(t1_ns) - self.cpu_at(t0_ns)

    def wait_between(self, t0_ns: int, t1_ns: int) -> float:
        """Seconds the process waited for a CPU between two instants (nearest samples)."""
        inside = [x for x in self.samples if t0_ns <= x.t_ns <= t1_ns]
        if len(inside) < 2:
            return 0.0
        return inside[-1].wait_s - inside[0].wait_s

    def machine_busy_pct(self, t0_ns: int, t1_ns: int) -> float:
        """How busy the whole machine was between two instants (100 = every CPU)."""
        inside = [x for x in self.samples if t0_ns <= x.t_ns <= t1_ns]
        if len(inside) < 2:
            return 0.0
        a, b = inside[0], inside[-1]
        return 100.0 * (b.busy - a.busy) / max(b.total - a.total, 1)

    def rss_peak_kib(self, t0_ns: int = 0, t1_ns: int | None = None) -> int:
        window = [
            x.rss_kib
            for x in self.samples
            if x.t_ns >= t0_ns and (t1_ns is None or x.t_ns <= t1_ns)
        ]
        return max(window, default=0)

    def rss_series(self, t0_ns: int, step_s: float) -> list[tuple[float, int]]:
        """(seconds since ``t0_ns``, peak RSS KiB in that step) for the whole recording."""
        out: list[tuple[float, int]] = []
        step_ns = int(step_s * 1e9)
        if not self.samples:
            return out
        edge = t0_ns
        end = self.samples[-1].t_ns
        while edge <= end:
            peak = self.rss_peak_kib(edge, edge + step_ns)
            if peak:
                out.append(((edge - t0_ns) / 1e9, peak))
            edge += step_ns
        return out
