"""Measuring a process: CPU time of all its threads, wall and CPU marks since a
start, peak RSS, another process's CPU from /proc, and latency percentiles.

Owns how every figure the report prints is taken, for the runner's child and (in
the same way, written apart in `peer_genai.py`) the peer. Must not start processes.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def cpu() -> float:
    """This process's CPU seconds so far, user and system, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mark(started: float, cpu_start: float) -> dict[str, float]:
    """Seconds since the child's main() began: wall, and process CPU (all threads)."""
    return {"wall": time.monotonic() - started, "cpu": cpu() - cpu_start}


def peak_rss_kb() -> int:
    """This process's peak resident set so far (imports included), in KiB.

    Linux's VmHWM, not `ru_maxrss`: that one survives fork and exec, so a child
    of a large process (pytest after the browser tests, 400 MB) reports its
    parent's size as its own peak."""
    return vm_hwm_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def vm_hwm_kb() -> int | None:
    """The peak resident set of this process's own memory (/proc), None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_cpu(pid: int) -> float | None:
    """Another process's CPU seconds so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """mean, p50, p95 and max of sorted `values`."""
    if not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "p50": values[len(values) // 2],
        "p95": values[min(len(values) - 1, int(len(values) * 0.95))],
        "max": values[-1],
    }


def loop_lag(lags: Sequence[float]) -> dict[str, float] | None:
    """p50, p99 and max of event-loop lags in seconds, as ms, and how many ticks."""
    if not lags:
        return None
    ordered = sorted(lags)

    def at(share: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * share))]

    return {
        "p50": at(0.5),
        "p99": at(0.99),
        "max": 1000 * ordered[-1],
        "ticks": len(ordered),
    }
