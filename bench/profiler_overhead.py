"""Profiler overhead: the same task with and without ``Profiler``, in one process.

The task is pure-Python CPU work (the worst case for a sampler thread that needs the GIL)
that records one latency per ~1 ms work unit into a profiler histogram and bumps a
counter, as instrumented code would. Two measurements:

* **direct**: each trial runs the task without and with the profiler back to back
  (alternating which goes first, so drift hits both alike); the overhead is the median of
  the per-trial relative differences of wall time and of process CPU time. An A/A control
  (without vs without) shows how much of that is noise from other processes;
* **components**: the profiler's own costs measured in isolation -- start+stop of a
  profiled block, one histogram record + counter, the sampler thread's CPU per second --
  and the overhead they imply for the task (immune to machine noise).

Target: under 2 % of the task's wall time at the default sample interval (0.1 s).
Results go to ``bench/results/profiler_overhead.json``.

Run: ``python -m bench.profiler_overhead [--trials 15] [--units 1500]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_provider_sophia.profiling import Profiler

RESULTS = Path(__file__).resolve().parent / "results" / "profiler_overhead.json"
TARGET_PERCENT = 2.0
DEFAULT_INTERVAL = 0.1


def task(units: int, profiler: Profiler | None) -> None:
    """Do ``units`` units of hashing work; record each unit's latency when profiled."""
    histogram = profiler.histogram("unit") if profiler else None
    data = b"x" * 4096
    for _ in range(units):
        start = time.perf_counter()
        for _ in range(200):
            data = hashlib.sha256(data).digest() * 128
        if profiler is not None and histogram is not None:
            histogram.record(time.perf_counter() - start)
            profiler.count("units")


def timed(units: int, sample_interval: float | None, profiled: bool) -> tuple[float, float]:
    """Return (wall, process CPU) seconds of one task run, with or without a profiler around it."""
    wall, cpu = time.perf_counter(), time.process_time()
    if profiled:
        profiler = Profiler("bench", sample_interval=sample_interval)
        with profiler:
            task(units, profiler)
    else:
        task(units, None)
    return time.perf_counter() - wall, time.process_time() - cpu


def _paired(first: list[float], second: list[float]) -> float:
    """Return the median of the per-trial relative differences ``second / first - 1``, in percent."""
    return round(statistics.median((b - a) / a * 100 for a, b in zip(first, second, strict=True)), 3)


def direct(units: int, trials: int, sample_interval: float | None, control: bool = False) -> dict[str, Any]:
    """Return the measured overhead over interleaved, paired trials (``control``: A/A, no profiler)."""
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for trial in range(trials):
        for second in (False, True) if trial % 2 else (True, False):
            runs[second].append(timed(units, sample_interval, profiled=second and not control))
    wall = {side: [run[0] for run in runs[side]] for side in runs}
    cpu = {side: [run[1] for run in runs[side]] for side in runs}
    return {
        "sample_interval_s": None if control else sample_interval,
        "comparison": "without vs without (noise control)" if control else "without vs with profiler",
        "trials": trials,
        "median_wall_first_s": round(statistics.median(wall[False]), 4),
        "median_wall_second_s": round(statistics.median(wall[True]), 4),
        "overhead_percent_wall": _paired(wall[False], wall[True]),
        "overhead_percent_cpu": _paired(cpu[False], cpu[True]),
    }


def components(units: int, task_wall_s: float) -> dict[str, Any]:
    """Measure the profiler's own costs in isolation and the overhead they imply for the task."""
    blocks = 200
    start = time.perf_counter()
    for _ in range(blocks):
        with Profiler(sample_interval=DEFAULT_INTERVAL):
            pass
    start_stop_s = (time.perf_counter() - start) / blocks

    records = 100_000
    profiler = Profiler(sample_interval=None)
    with profiler:
        histogram = profiler.histogram("x")
        start = time.perf_counter()
        for _ in range(records):
            histogram.record(0.001)
            profiler.count("x")
        record_s = (time.perf_counter() - start) / records

    idle = 2.0
    cpu = time.process_time()
    with Profiler(sample_interval=0.01):
        time.sleep(idle)
    sampler_cpu_per_s_at_10ms = (time.process_time() - cpu) / idle
    sampler_cpu_per_s = sampler_cpu_per_s_at_10ms * 0.01 / DEFAULT_INTERVAL

    implied_s = start_stop_s + units * record_s + task_wall_s * sampler_cpu_per_s
    return {
        "start_stop_ms": round(start_stop_s * 1e3, 4),
        "record_and_count_us": round(record_s * 1e6, 3),
        "sampler_cpu_ms_per_s_at_default_interval": round(sampler_cpu_per_s * 1e3, 4),
        "task_wall_s": round(task_wall_s, 4),
        "implied_overhead_percent": round(implied_s / task_wall_s * 100, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print and write its results; return them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--units", type=int, default=1500, help="work units (~1 ms each) per task run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    timed(args.units // 10, DEFAULT_INTERVAL, profiled=True)  # warm up
    measured = [
        direct(args.units, args.trials, DEFAULT_INTERVAL),
        direct(args.units, args.trials, 0.01),
        direct(args.units, args.trials, None, control=True),
    ]
    parts = components(args.units, measured[0]["median_wall_first_s"])
    report = {
        "benchmark": "profiler_overhead",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "setup": {"units": args.units, "task": "sha256 chaining; 1 histogram record + 1 counter per unit"},
        "target_percent": TARGET_PERCENT,
        "meets_target": parts["implied_overhead_percent"] < TARGET_PERCENT
        and measured[0]["overhead_percent_wall"] < TARGET_PERCENT + abs(measured[2]["overhead_percent_wall"]),
        "direct": measured,
        "components": parts,
    }
    for row in measured:
        print(
            f"{row['comparison']}, sample_interval={row['sample_interval_s']}: "
            f"{row['median_wall_first_s']:.3f} s vs {row['median_wall_second_s']:.3f} s -> "
            f"{row['overhead_percent_wall']:+.2f} % wall, {row['overhead_percent_cpu']:+.2f} % CPU "
            "(medians of paired trials)"
        )
    print(
        f"components: start+stop {parts['start_stop_ms']:.3f} ms, "
        f"record+count {parts['record_and_count_us']:.2f} µs, "
        f"sampler {parts['sampler_cpu_ms_per_s_at_default_interval']:.3f} ms CPU per s -> "
        f"{parts['implied_overhead_percent']:.2f} % of a {parts['task_wall_s']:.2f} s task"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    verdict = "met" if report["meets_target"] else "MISSED"
    print(f"target < {TARGET_PERCENT} % at the default interval: {verdict}")
    return report


if __name__ == "__main__":
    main()
