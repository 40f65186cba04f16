"""Scenario ``pool_shutdown``: how long closing a pool takes, naive sleeping worker vs ours.

Two situations, each measured ``trials`` times on both pools:

* ``idle``: the health-check worker is between checks (``health_check_interval`` apart);
  the pool is closed ``settle_s`` after it was ready, like a task that finishes quickly.
* ``hung``: a health-check validation is stuck (blocked for ``hang_s``, as a query stuck
  in the database would be) when the pool is closed; here the health checks run every
  ``hung_health_check_interval`` seconds so that one starts soon.

The naive pool's ``close()`` joins its worker, which only notices the close when its sleep
(or the stuck validation) ends. To keep the run short that join is cut at ``cap_s``; the
close latency it *implies* is computed exactly from when the sleep or the hang ends.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_sophia.profiling.progress import Progress, silent
from airflow_provider_sophia.profiling.results import ScenarioResult
from airflow_provider_sophia.profiling.scenarios.common import connection_factory, public_parameters
from airflow_provider_sophia.profiling.scenarios.naive_pool import NaivePool

DESCRIPTION = "Close latency of a pool whose health-check worker sleeps vs ours (idle and hung validation)."
DEFAULTS: dict[str, Any] = {
    "health_check_interval": 60.0,
    "trials": 5,
    "cap_s": 2.0,
    "settle_s": 0.1,
    "hang_s": 30.0,
    "hung_health_check_interval": 1.0,
    "min_size": 2,
    "dsn": None,
}
SMALL: dict[str, Any] = {"trials": 2, "cap_s": 0.3, "hang_s": 5.0, "hung_health_check_interval": 0.25}


class _Hang:
    """A validation that blocks (like a query stuck in the database) until released."""

    def __init__(self, hang_s: float) -> None:
        self.hang_s = hang_s
        self.started = threading.Event()
        self.started_at = 0.0
        self.release = threading.Event()

    def __call__(self, conn: Any) -> bool:
        if not self.started.is_set():
            self.started_at = time.perf_counter()
            self.started.set()
        self.release.wait(self.hang_s)
        return True


def _naive_trial(connect: Callable[[], Any], situation: str, p: dict[str, Any]) -> tuple[float, float, bool]:
    """Return (measured close latency, implied latency, worker left running) for the naive pool."""
    hang = _Hang(p["hang_s"])
    interval = p["hung_health_check_interval"] if situation == "hung" else p["health_check_interval"]
    pool = NaivePool(connect, validate=hang, min_size=p["min_size"], health_check_interval=interval)
    try:
        if situation == "hung":
            hang.started.wait(10.0)
        else:
            time.sleep(p["settle_s"])
        start = time.perf_counter()
        stopped = pool.close(join_timeout=p["cap_s"])
        measured = time.perf_counter() - start
        ends = hang.started_at + p["hang_s"] if situation == "hung" else pool.sleep_until
        return measured, max(measured, ends - start), not stopped
    finally:
        hang.release.set()


def _our_trial(connect: Callable[[], Any], situation: str, p: dict[str, Any]) -> float:
    """Return the close latency of our pool."""
    from airflow_provider_sophia.pool import ConnectionPool, PoolConfig

    hang = _Hang(p["hang_s"])
    hung = situation == "hung"
    config = PoolConfig(
        min_size=p["min_size"],
        max_size=max(p["min_size"], 2),
        health_check_interval=p["hung_health_check_interval"] if hung else p["health_check_interval"],
        validation_timeout=p["hang_s"] * 2,
    )
    pool = ConnectionPool(connect, config=config, validate=hang if hung else None, name="profiling")
    try:
        pool.wait(timeout=10.0)
        if hung:
            hang.started.wait(10.0)
        else:
            time.sleep(p["settle_s"])
        start = time.perf_counter()
        pool.close()
        return time.perf_counter() - start
    finally:
        hang.release.set()


def run(progress: Progress = silent, **params: Any) -> ScenarioResult:
    """Measure close latency of the naive pool and ours in the ``idle`` and ``hung`` situations.

    :param progress: called with the share of trials done.
    :param params: overrides of :data:`DEFAULTS`: ``health_check_interval`` (s), ``trials``,
        ``cap_s`` (the naive join is cut there), ``settle_s``, ``hang_s`` (how long the stuck
        validation blocks), ``hung_health_check_interval``, ``min_size``, ``dsn`` (``None``:
        in-memory SQLite).
    """
    p = DEFAULTS | params
    connect = connection_factory(p["dsn"])
    result = ScenarioResult("pool_shutdown", public_parameters(p))
    total = 2 * p["trials"] * 2
    done = 0
    series: dict[str, Any] = {}
    for situation in ("idle", "hung"):
        measured: list[float] = []
        implied: list[float] = []
        ours: list[float] = []
        left_running = 0
        for _ in range(p["trials"]):
            progress(done / total, f"pool_shutdown {situation}: naive pool")
            latency, bound, alive = _naive_trial(connect, situation, p)
            measured.append(latency)
            implied.append(bound)
            left_running += alive
            done += 1
            progress(done / total, f"pool_shutdown {situation}: our pool")
            ours.append(_our_trial(connect, situation, p))
            done += 1
        capped = left_running > 0
        result.add(
            f"{situation}_close_p50_s", statistics.median(measured), "s", "lower", "before", capped=capped
        )
        result.add(f"{situation}_close_implied_p50_s", statistics.median(implied), "s", "lower", "before")
        result.add(f"{situation}_threads_left_running", left_running, "threads", "lower", "before")
        result.add(f"{situation}_close_p50_s", statistics.median(ours), "s", "lower", min_delta=0.005)
        result.add(f"{situation}_close_max_s", max(ours), "s", "lower", min_delta=0.02)
        series[situation] = {"before_measured": measured, "before_implied": implied, "after": ours}
        speedup = statistics.median(implied) / max(statistics.median(ours), 1e-9)
        result.notes.append(
            f"{situation}: the naive close would take {statistics.median(implied):.3g} s (median; measured "
            f"{statistics.median(measured):.3g} s with its join cut at {p['cap_s']} s, worker left "
            f"running in {left_running}/{p['trials']} trials); ours {statistics.median(ours) * 1000:.3g} ms "
            f"(max {max(ours) * 1000:.3g} ms), {speedup:,.0f}x faster."
        )
    result.series = series
    progress(1.0, "pool_shutdown done")
    return result
