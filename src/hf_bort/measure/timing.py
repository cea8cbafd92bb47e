"""Wall-clock timing of a callable, and latency percentiles (the one implementation every hf_bort latency uses)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any


def time_calls(
    run: Callable[[], Any],
    warmup: int,
    iterations: int,
    max_seconds: float | None = None,
    min_iterations: int = 3,
) -> list[float]:
    """Seconds per call of `run`: `warmup` untimed calls, then `iterations` timed ones; with `max_seconds`, timing
    stops once that much time has passed and at least `min_iterations` calls were timed."""
    for _ in range(warmup):
        run()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < iterations:
        if max_seconds is not None and len(times) >= min_iterations and time.perf_counter() - started >= max_seconds:
            break
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(
    runners: Mapping[str, Callable[[], Any]], runs: int, rounds: int = 5, warmup: int = 5
) -> dict[str, list[float]]:
    """Seconds per call of each runner, timed in interleaved rounds (A `runs/rounds` times, then B, …) so that drift
    on a shared CPU hits every runner alike; each runner is warmed up `warmup` times first."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values` by linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(times: list[float], *, median: bool = False) -> dict[str, float]:
    """`p50_ms`, `p90_ms` and `runs` of per-call seconds (`median`: p50 as `statistics.median`)."""
    p50 = statistics.median(times) if median else percentile(times, 0.5)
    return {"p50_ms": 1e3 * p50, "p90_ms": 1e3 * percentile(times, 0.9), "runs": len(times)}
