"""Timing for the in-process benchmarks: sample statistics, the machine, its quietness.

Shared by ``bench.decide`` and ``bench.tokens`` so that their figures mean the same
thing: latencies in µs with nearest-rank percentiles, the machine in the report's
header, and how much the timed rounds were disturbed (preemption, load, GC).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Quietness", "cpu_model", "machine", "round_sizes", "stats"]


def stats(samples: Sequence[int]) -> dict[str, float]:
    """Median, p90, p99 and max in µs of nanosecond ``samples`` (nearest-rank percentiles)."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] / 1000

    return {
        "n": len(ordered),
        "median_us": round(rank(0.5), 2),
        "p90_us": round(rank(0.9), 2),
        "p99_us": round(rank(0.99), 2),
        "max_us": round(ordered[-1] / 1000, 2),
    }


def round_sizes(total: int, rounds: int) -> list[int]:
    """``total`` timed calls split into ``rounds`` nearly equal rounds, larger ones first."""
    base, extra = divmod(total, rounds)
    return [base + (1 if index < extra else 0) for index in range(rounds)]


class Quietness:
    """Started just before the timed rounds; :meth:`report` says how quiet they were."""

    def __init__(self) -> None:
        self._load = os.getloadavg()[0]
        self._collections = [g["collections"] for g in gc.get_stats()]
        self._cpu, self._wall = time.thread_time_ns(), time.perf_counter_ns()

    def report(self) -> dict[str, Any]:
        """Thread CPU time / wall time since the start (1.0 = never preempted), the 1-minute
        load average before and now, and the GC collections per generation meanwhile."""
        cpu, wall = time.thread_time_ns() - self._cpu, time.perf_counter_ns() - self._wall
        return {
            "cpu_over_wall": round(cpu / wall, 3),
            "load_average_1m": [round(self._load, 2), round(os.getloadavg()[0], 2)],
            "gc_collections": [
                g["collections"] - c for g, c in zip(gc.get_stats(), self._collections, strict=True)
            ],
        }


def machine() -> dict[str, Any]:
    """The CPU, platform and interpreter the figures were measured on, and the timer's cost."""
    affinity: Callable[[int], set[int]] | None = getattr(os, "sched_getaffinity", None)
    clock = time.perf_counter_ns
    overhead = []
    for _ in range(10_000):
        began = clock()
        overhead.append(clock() - began)
    overhead.sort()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gc_enabled": gc.isenabled(),
        "timer_overhead_ns": overhead[len(overhead) // 2],
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
