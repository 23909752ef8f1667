"""Rates of normalization benchmarks: wall and CPU time, medians, ranges, ratios per round.

The project's machine is shared: a process pinned to one core still waits for it
while other processes run there, so a wall-clock rate says as much about the
neighbours as about the code.  Every normalization bench therefore times each
round twice: ``time.perf_counter`` (wall) and ``time.thread_time`` (the CPU time
of this thread: the events per CPU-second are the rate "on one core").  The
adapter's path and its baseline alternate round by round, and the ratio is taken
per round (the two runs of a round saw the same machine), then the median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

#: (wall seconds, CPU seconds) of one timed run
Timing = tuple[float, float]


def timed(fn: Callable[[], object]) -> Timing:
    """Run ``fn`` once; its wall and CPU (this thread's) seconds."""
    c0, t0 = time.thread_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.thread_time() - c0


def _rates(n: int, runs: list[Timing]) -> dict[str, Any]:
    wall = [n / w for w, _ in runs if w > 0]
    cpu = [n / c for _, c in runs if c > 0]
    return {
        "events_per_second": round(statistics.median(wall), 1),
        "events_per_second_range": [round(min(wall), 1), round(max(wall), 1)],
        "events_per_cpu_second": round(statistics.median(cpu), 1),
        "events_per_cpu_second_range": [round(min(cpu), 1), round(max(cpu), 1)],
        "samples_per_cpu_second": [round(x, 1) for x in cpu],
    }


def rates_against(n: int, hub: list[Timing], baselines: dict[str, list[Timing]]) -> dict[str, Any]:
    """The hub's rates, each baseline's, and per baseline ``ratio_to_<name>`` = the
    median over rounds of (baseline rate / hub rate), CPU-based (how many times
    faster the bare baseline is), with its range and the wall-clock median."""
    out: dict[str, Any] = _rates(n, hub)
    for name, runs in baselines.items():
        out[name] = _rates(n, runs)
        per_cpu = [h[1] / b[1] for h, b in zip(hub, runs, strict=True) if b[1] > 0]
        per_wall = [h[0] / b[0] for h, b in zip(hub, runs, strict=True) if b[0] > 0]
        out[f"ratio_to_{name}"] = round(statistics.median(per_cpu), 2)
        out[f"ratio_to_{name}_range"] = [round(min(per_cpu), 2), round(max(per_cpu), 2)]
        out[f"ratio_to_{name}_wall"] = round(statistics.median(per_wall), 2)
    return out
