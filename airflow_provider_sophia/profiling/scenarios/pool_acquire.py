"""Scenario ``pool_acquire``: acquire latency under ``threads`` threads, naive pool vs ours.

Every thread acquires a connection ``acquisitions`` times, runs ``SELECT 1`` on it, holds
it ``hold_s`` seconds (the query's work) and gives it back, on a pool of ``max_size``
connections. The naive pool raises "exhausted" when all are in use, so its callers poll
with a ``retry_sleep_s`` sleep (what the original's callers had to do); ours queues the
waiters in FIFO order. Latency is from asking for a connection to holding it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from airflow_provider_sophia.profiling.histogram import LatencyHistogram
from airflow_provider_sophia.profiling.progress import Progress, silent
from airflow_provider_sophia.profiling.results import ScenarioResult, format_value
from airflow_provider_sophia.profiling.scenarios.common import (
    add_latency_metrics,
    connection_factory,
    public_parameters,
)
from airflow_provider_sophia.profiling.scenarios.naive_pool import NaivePool, NaivePoolExhausted

DESCRIPTION = "Acquire latency distribution and throughput under N threads: naive polling pool vs ours."
DEFAULTS: dict[str, Any] = {
    "threads": 32,
    "max_size": 8,
    "acquisitions": 500,
    "hold_s": 0.0005,
    "retry_sleep_s": 0.001,
    "dsn": None,
}
SMALL: dict[str, Any] = {"threads": 8, "max_size": 2, "acquisitions": 50}

#: ``acquire()`` returns a context manager holding a connection and counts its retries.
Acquire = Callable[[list[int]], AbstractContextManager[Any]]


class _NaiveLease(AbstractContextManager[Any]):
    """Get a connection from the naive pool, polling while it is exhausted."""

    def __init__(self, pool: NaivePool, retries: list[int], retry_sleep_s: float) -> None:
        self.pool, self.retries, self.retry_sleep_s = pool, retries, retry_sleep_s
        self.conn: Any = None

    def __enter__(self) -> Any:
        while True:
            try:
                self.conn = self.pool.get()
                return self.conn
            except NaivePoolExhausted:
                self.retries[0] += 1
                time.sleep(self.retry_sleep_s)

    def __exit__(self, *exc_info: object) -> None:
        self.pool.put(self.conn)


def _hammer(
    acquire: Acquire, p: dict[str, Any], report: Callable[[float], None]
) -> tuple[LatencyHistogram, float, int]:
    """Run the threads; return the latency histogram, acquisitions per second and retries.

    :param acquire: leases a connection; counts polling retries into its argument.
    :param p: the scenario's parameters.
    :param report: called with the share of threads finished.
    """
    histogram = LatencyHistogram()
    retries = [0]
    barrier = threading.Barrier(p["threads"] + 1)
    done = [0]
    errors: list[BaseException] = []

    def worker() -> None:
        latencies: list[float] = []
        my_retries = [0]
        barrier.wait()
        try:
            for _ in range(p["acquisitions"]):
                start = time.perf_counter()
                with acquire(my_retries) as conn:
                    latencies.append(time.perf_counter() - start)
                    _select_one(conn)
                    if p["hold_s"]:
                        time.sleep(p["hold_s"])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
        histogram.record_many(latencies)
        retries[0] += my_retries[0]
        done[0] += 1

    threads = [threading.Thread(target=worker, name=f"acquire-{i}") for i in range(p["threads"])]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)
            report(done[0] / p["threads"])
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return histogram, histogram.count / elapsed, retries[0]


def _select_one(conn: Any) -> None:
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    cursor.fetchall()
    cursor.close()


def run(progress: Progress = silent, **params: Any) -> ScenarioResult:
    """Measure acquire latency and throughput of the naive pool and ours, same threads and work.

    :param progress: called with the share of the work done.
    :param params: overrides of :data:`DEFAULTS`: ``threads``, ``max_size``, ``acquisitions``
        (per thread), ``hold_s``, ``retry_sleep_s`` (the naive callers' polling sleep),
        ``dsn`` (``None``: in-memory SQLite).
    """
    from airflow_provider_sophia.pool import ConnectionPool, PoolConfig

    p = DEFAULTS | params
    connect = connection_factory(p["dsn"])
    result = ScenarioResult("pool_acquire", public_parameters(p))
    series: dict[str, Any] = {}

    naive = NaivePool(connect, min_size=p["max_size"], max_size=p["max_size"])
    try:
        histogram, rate, retries = _hammer(
            lambda counter: _NaiveLease(naive, counter, p["retry_sleep_s"]),
            p,
            lambda share: progress(share / 2, "pool_acquire: naive pool"),
        )
    finally:
        naive.close(join_timeout=0)
    series["before"] = add_latency_metrics(result, "acquire", histogram, "before")
    result.add("throughput", rate, "acquisitions/s", "higher", "before")
    result.add("exhausted_retries", retries, "retries", "lower", "before")

    config = PoolConfig(min_size=p["max_size"], max_size=p["max_size"], acquire_timeout=60.0)
    with ConnectionPool(connect, config=config, name="profiling") as pool:
        pool.wait(timeout=30.0)
        histogram, rate, _ = _hammer(
            lambda counter: pool.connection(),
            p,
            lambda share: progress(0.5 + share / 2, "pool_acquire: our pool"),
        )
        stats = pool.stats()
    series["after"] = add_latency_metrics(result, "acquire", histogram, "after")
    result.add("throughput", rate, "acquisitions/s", "higher")
    result.add("timeouts", stats.timeouts_total, "timeouts", "lower")
    result.series = series
    stats_text = {
        side: f"p50 {format_value(result.value(f'{side}.acquire_p50_s'), 's')}, "
        f"p99 {format_value(result.value(f'{side}.acquire_p99_s'), 's')}, "
        f"max {format_value(result.value(f'{side}.acquire_max_s'), 's')}, "
        f"{result.value(f'{side}.throughput'):,.0f} acquisitions/s"
        for side in ("before", "after")
    }
    result.notes.append(
        f"{p['threads']} threads on {p['max_size']} connections: naive {stats_text['before']} "
        f"({retries:,} exhausted-pool retries); ours {stats_text['after']}."
    )
    result.notes.append(
        "The naive pool lets whichever thread asks at the right moment barge in: most acquisitions are "
        "instant while unlucky threads poll and starve (see max). Ours queues waiters first-in first-out, "
        "so every acquisition waits its fair turn (about threads / max_size holding times) and none starves."
    )
    progress(1.0, "pool_acquire done")
    return result
