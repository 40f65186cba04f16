"""Bounded soak: the pool under 64 threads with random backend kills; Gong over 10,000 pages.

Two soaks, each a fixed amount of work bounded in time, in one process:

* **pool**: a :class:`ConnectionPool` of ``max_size`` 8 real psycopg connections to the
  PostgreSQL service, 64 threads sharing a fixed total of operations (1,000,000 by default:
  acquire, ``SELECT 1`` every ``--query-every`` operations, release) while a killer thread
  terminates a random backend of the pool every ~50 ms (``pg_terminate_backend`` through
  an admin connection, backends found by ``application_name``). A disconnect surfaced to a
  caller counts as an error (by type); the pool must keep working: after the soak every
  slot is checked out at once and queried, and the server holds exactly the pool's
  connections.
* **gong**: the Gong client pages ``/v2/calls`` of the in-process simulator (its rate limit
  off, small pages) pass after pass until 10,000 pages, with 5 % 503s and 1 % dropped
  connections and 1 % truncated bodies injected; client limiter off, tiny backoff. Every
  pass must yield every record exactly once, in order; a request that exhausts its retries
  counts as an error and the pass resumes from the iterator's cursor.

Both report errors, p50/p99/max latency (:class:`LatencyHistogram`) and the resident set
size after warm-up (the first 10 % of the work) against the RSS at the end, which must stay
within 5 %. Results go to ``bench/results/soak.json``.

Run: ``python -m bench.soak [--dsn DSN]`` (about a minute and a half); ``--quick`` runs a 10x
smaller soak and writes JSON only when ``--output`` is given.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests
from requests.adapters import HTTPAdapter

from airflow_provider_sophia.exceptions import GongError
from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.gong.simulator import Fault, GongSimulator, Settings
from airflow_provider_sophia.pool import ConnectionPool, PoolConfig
from airflow_provider_sophia.profiling.histogram import LatencyHistogram
from airflow_provider_sophia.profiling.memory import current_rss
from bench.environment import environment

RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
DEFAULT_DSN = os.environ.get("SOPHIA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
FROM = "2024-01-01T00:00:00+00:00"
POOL_SIZE = 8
THREADS = 64
WARMUP = 0.10  # fraction of the work done before the reference RSS is taken
RSS_BOUND = 0.05  # RSS at the end may exceed RSS after warm-up by at most this fraction
MB = 1024 * 1024


def _ms(summary: dict[str, Any]) -> dict[str, Any]:
    """Return a histogram summary with its seconds turned into milliseconds."""
    return {key: (value if key == "count" else round(value * 1000, 3)) for key, value in summary.items()}


class RssWatch:
    """Sample RSS every ``interval`` seconds; take the reference once ``progress()`` passes warm-up."""

    def __init__(self, progress: Any, warmup_at: int, interval: float = 0.25) -> None:
        self._progress = progress
        self._warmup_at = warmup_at
        self._interval = interval
        self._stop = threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (seconds, work done, rss bytes)
        self.after_warmup: int | None = None
        self.peak = 0
        self.last = 0  # the latest sample, taken while the work was still running
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            done, rss = self._progress(), current_rss()
            self.peak = max(self.peak, rss)
            self.last = rss
            if len(self.samples) < 2_000:  # bounded: the watch must not be what grows
                self.samples.append((round(time.monotonic() - self._started, 2), done, rss))
            if self.after_warmup is None and done >= self._warmup_at:
                self.after_warmup = rss

    def verdict(self, end: int) -> dict[str, Any]:
        """Return the RSS figures and whether the end stayed within the bound.

        The end is the larger of ``end`` (measured once the work is done, after a
        ``gc.collect()``) and the last sample taken while it ran: finished worker threads
        free their stacks, which must not hide growth.
        """
        after_work = end
        end = max(end, self.last)
        reference = self.after_warmup or end
        growth = (end - reference) / reference
        series = self.samples[:: max(1, len(self.samples) // 40)]
        return {
            "rss_after_warmup_mb": round(reference / MB, 2),
            "rss_end_mb": round(end / MB, 2),
            "rss_after_work_mb": round(after_work / MB, 2),
            "rss_peak_mb": round(max(self.peak, end) / MB, 2),
            "rss_growth_pct": round(growth * 100, 2),
            "rss_within_bound": growth <= RSS_BOUND,
            "rss_samples": [[t, done, round(rss / MB, 2)] for t, done, rss in series],
        }


# --- pool soak -------------------------------------------------------------------------


def pool_soak(
    dsn: str, total_ops: int, query_every: int, kill_every: float, time_limit: float
) -> dict[str, Any]:
    """Run the pool soak and return its figures."""
    app = f"sophia-soak-{os.getpid()}"
    pool: ConnectionPool[Any] = ConnectionPool(
        lambda: psycopg.connect(dsn, application_name=app, connect_timeout=5),
        PoolConfig(min_size=POOL_SIZE, max_size=POOL_SIZE, acquire_timeout=10.0, health_check_interval=1.0),
        name=app,
    )
    pool.wait(30)
    acquire = LatencyHistogram()
    operation = LatencyHistogram()
    counter = itertools.count()
    done = [0] * THREADS  # per-thread completed operations (no shared lock on the hot path)
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    errors_lock = threading.Lock()
    stop_killer = threading.Event()
    kills = [0, 0]  # terminated, attempts that found no backend
    deadline = time.monotonic() + time_limit
    start = threading.Barrier(THREADS + 1)

    def worker(slot: int) -> None:
        # recorded straight into the histograms: per-thread buffers of float objects (64
        # threads x 1,000) fragment the allocator and show up as a slow RSS creep
        start.wait()
        while (index := next(counter)) < total_ops and time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                with pool.connection() as conn:
                    acquire.record(time.perf_counter() - began)
                    if index % query_every == 0:
                        conn.execute("SELECT 1").fetchone()
            except Exception as error:  # noqa: BLE001 - every failure is a counted result
                name = type(error).__name__
                with errors_lock:
                    errors[name] += 1
                    examples.setdefault(name, str(error).strip().splitlines()[0][:160])
            operation.record(time.perf_counter() - began)
            done[slot] += 1

    def killer() -> None:
        sql = (
            "SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity "
            "WHERE application_name = %s ORDER BY random() LIMIT 1) AS victim"
        )
        with psycopg.connect(dsn, autocommit=True, application_name=f"{app}-killer") as admin:
            while not stop_killer.wait(kill_every):
                row = admin.execute(sql, (app,)).fetchone()
                kills[0 if row and row[0] else 1] += 1

    threads = [threading.Thread(target=worker, args=(slot,), name=f"soak-{slot}") for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    kill_thread = threading.Thread(target=killer, name="soak-killer", daemon=True)
    with RssWatch(lambda: sum(done), int(total_ops * WARMUP)) as watch:
        start.wait()
        began = time.monotonic()
        kill_thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - began
        stop_killer.set()
        kill_thread.join()
        gc.collect()
        rss_end = current_rss()

    # the pool must still work: every slot out at once, each queried, nothing leaked
    pool.check()  # the health check evicts what the last kills left idle
    time.sleep(1.0)
    pool.wait(30)
    recovered = True
    checkouts = []
    try:
        for _ in range(POOL_SIZE):
            checkout = pool.connection(timeout=10)
            conn = checkout.__enter__()
            checkouts.append(checkout)
            conn.execute("SELECT 1").fetchone()
    except Exception as error:  # noqa: BLE001 - a failure to recover is the result
        recovered = False
        examples["after_soak"] = f"{type(error).__name__}: {error}"
        if checkouts:
            checkouts.pop().__exit__(type(error), error, None)
    for checkout in checkouts:
        checkout.__exit__(None, None, None)
    pool.wait(30)
    stats = pool.stats()
    with psycopg.connect(dsn, autocommit=True) as admin:
        server = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone()
        server_connections = int(server[0]) if server else -1
    pool.close()
    completed = sum(done)
    result = {
        "ops": completed,
        "ops_target": total_ops,
        "completed_all_ops": completed == total_ops,
        "wall_seconds": round(wall, 2),
        "ops_per_second": round(completed / wall, 1),
        "queries": -(-completed // query_every),
        "errors": sum(errors.values()),
        "error_rate_pct": round(100 * sum(errors.values()) / max(completed, 1), 4),
        "errors_by_type": dict(errors),
        "error_examples": examples,
        "backends_killed": kills[0],
        "kill_attempts_without_victim": kills[1],
        "acquire_ms": _ms(acquire.summary()),
        "operation_ms": _ms(operation.summary()),
        "pool_after": {
            "size": stats.size,
            "in_use": stats.in_use,
            "waiting": stats.waiting,
            "created_total": stats.created_total,
            "evicted_total": stats.evicted_total,
            "timeouts_total": stats.timeouts_total,
            "health_check_failures_total": stats.health_check_failures_total,
            "acquired_total": stats.acquired_total,
            "server_connections": server_connections,
        },
        "evictions": stats.evicted_total,
        "pool_recovered": recovered
        and stats.size == POOL_SIZE
        and stats.in_use == 0
        and server_connections == stats.size,
    }
    return result | watch.verdict(rss_end)


# --- Gong soak -------------------------------------------------------------------------


class TimedSession(requests.Session):
    """A session that records the wall time of every HTTP attempt, failed ones included."""

    def __init__(self, histogram: LatencyHistogram) -> None:
        super().__init__()
        self.histogram = histogram
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=16, max_retries=0)
        self.mount("http://", adapter)
        self.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-sophia"})

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        began = time.perf_counter()
        try:
            return super().request(*args, **kwargs)
        finally:
            self.histogram.record(time.perf_counter() - began)


def gong_soak(
    target_pages: int, calls: int, page_size: int, error_rate: float, time_limit: float
) -> dict[str, Any]:
    """Run the Gong soak and return its figures."""
    request_latency = LatencyHistogram()
    page_latency = LatencyHistogram()
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    pages = [0]
    passes = exact_passes = 0
    # the request log is bounded (log_size); a small one fills during warm-up, so the
    # simulator's own bookkeeping is not mistaken for growth of the client
    with GongSimulator(
        seed=11, calls=calls, days=90, page_size=page_size, settings=Settings(rate_limit=None), log_size=500
    ) as sim:
        sim.add_fault(Fault("status", status=503, rate=error_rate))
        sim.add_fault(Fault("drop", rate=0.01))
        sim.add_fault(Fault("truncate", rate=0.01))
        expected = [call["id"] for call in sim.data.select("calls", datetime.fromisoformat(FROM))]
        session = TimedSession(request_latency)
        client = GongClient(
            sim.url,
            sim.access_key,
            sim.access_key_secret,
            rate_limit_per_second=None,
            base_delay=0.001,
            max_delay=0.01,
            timeout=10.0,
            breaker_reset_timeout=0.05,
            session=session,
        )
        deadline = time.monotonic() + time_limit
        with client, RssWatch(lambda: pages[0], int(target_pages * WARMUP)) as watch:
            began = time.monotonic()
            while pages[0] < target_pages and time.monotonic() < deadline:
                ids: list[str] = []
                pager = client.iter_pages("calls", FROM)
                while not pager.done and time.monotonic() < deadline:
                    fetched = time.perf_counter()
                    try:
                        page = next(pager)
                    except StopIteration:
                        break
                    except GongError as error:  # retries exhausted, breaker open: resume at the cursor
                        name = type(error).__name__
                        errors[name] += 1
                        examples.setdefault(name, str(error)[:160])
                        time.sleep(0.06)  # past the breaker's reset timeout
                        pager = client.iter_pages("calls", FROM, **pager.resume_point())
                        continue
                    page_latency.record(time.perf_counter() - fetched)
                    ids += [call["id"] for call in page.records]
                    pages[0] += 1
                    if page.cursor is None:
                        break
                passes += 1
                exact_passes += ids == expected
            wall = time.monotonic() - began
            gc.collect()
            rss_end = current_rss()
        stats = client.stats()
    result = {
        "pages": pages[0],
        "pages_target": target_pages,
        "completed_all_pages": pages[0] >= target_pages,
        "records": stats.records,
        "passes": passes,
        "pages_per_pass": -(-len(expected) // page_size),
        "passes_every_record_exactly_once": exact_passes,
        "every_record_exactly_once": exact_passes == passes,
        "wall_seconds": round(wall, 2),
        "pages_per_second": round(pages[0] / wall, 1),
        "requests": stats.requests,
        "retries": stats.retries,
        "server_errors_5xx": stats.server_errors,
        "network_errors": stats.network_errors,
        "circuit_rejections": stats.circuit_rejections,
        "errors": sum(errors.values()),
        "errors_by_type": dict(errors),
        "error_examples": examples,
        "request_ms": _ms(request_latency.summary()),
        "page_ms_with_retries": _ms(page_latency.summary()),
    }
    return result | watch.verdict(rss_end)


# --- report ----------------------------------------------------------------------------


def table(pool: dict[str, Any], gong: dict[str, Any]) -> str:
    """Return the one table of both soaks."""
    pool_errors = ", ".join(f"{k} {v}" for k, v in pool["errors_by_type"].items()) or "-"
    gong_errors = ", ".join(f"{k} {v}" for k, v in gong["errors_by_type"].items()) or "-"
    rows = [
        (
            "work done",
            f"{pool['ops']:,} ops / {pool['ops_target']:,}",
            f"{gong['pages']:,} pages / {gong['pages_target']:,}",
        ),
        ("wall time", f"{pool['wall_seconds']:.1f} s", f"{gong['wall_seconds']:.1f} s"),
        ("throughput", f"{pool['ops_per_second']:,.0f} ops/s", f"{gong['pages_per_second']:,.0f} pages/s"),
        (
            "faults injected",
            f"{pool['backends_killed']:,} backends killed",
            f"{gong['server_errors_5xx']:,} 5xx, {gong['network_errors']:,} drop/trunc",
        ),
        ("errors to caller", f"{pool['errors']:,} ({pool['error_rate_pct']:.3f} %)", f"{gong['errors']:,}"),
        ("  by type", pool_errors, gong_errors),
        ("retries / evictions", f"{pool['evictions']:,} evictions", f"{gong['retries']:,} retries"),
        (
            "queries / records",
            f"{pool['queries']:,} SELECT 1",
            f"{gong['records']:,} ({gong['passes_every_record_exactly_once']}/{gong['passes']} passes exact)",
        ),
        ("latency measured", "acquire", "HTTP request"),
        ("  p50 ms", f"{pool['acquire_ms']['p50']:.3f}", f"{gong['request_ms']['p50']:.3f}"),
        ("  p99 ms", f"{pool['acquire_ms']['p99']:.3f}", f"{gong['request_ms']['p99']:.3f}"),
        ("  max ms", f"{pool['acquire_ms']['max']:.1f}", f"{gong['request_ms']['max']:.1f}"),
        (
            "op / page p99 ms",
            f"{pool['operation_ms']['p99']:.3f}",
            f"{gong['page_ms_with_retries']['p99']:.3f}",
        ),
        ("RSS after warm-up MB", f"{pool['rss_after_warmup_mb']:.1f}", f"{gong['rss_after_warmup_mb']:.1f}"),
        ("RSS at end MB", f"{pool['rss_end_mb']:.1f}", f"{gong['rss_end_mb']:.1f}"),
        ("RSS growth", f"{pool['rss_growth_pct']:+.2f} %", f"{gong['rss_growth_pct']:+.2f} %"),
        (
            "RSS within 5 %",
            "yes" if pool["rss_within_bound"] else "NO",
            "yes" if gong["rss_within_bound"] else "NO",
        ),
        (
            "recovered / exact",
            "yes" if pool["pool_recovered"] else "NO",
            "yes" if gong["every_record_exactly_once"] else "NO",
        ),
    ]
    width = max(len(row[1]) for row in rows) + 2
    header = f"{'':<22}{'pool (64 thr, 8 conns)':<{width}}gong (simulator, faults)"
    lines = [header, "-" * (len(header) + 16)]
    lines += [f"{label:<22}{left:<{width}}{right}" for label, left, right in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both soaks, print the table, write the JSON and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--quick", action="store_true", help="a 10x smaller soak (JSON only with --output)")
    parser.add_argument("--ops", type=int, default=1_000_000, help="pool operations in total")
    parser.add_argument("--query-every", type=int, default=4, help="SELECT 1 on every Nth operation")
    parser.add_argument("--kill-every", type=float, default=0.05, help="seconds between backend kills")
    parser.add_argument("--pages", type=int, default=10_000, help="Gong pages in total")
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--error-rate", type=float, default=0.05, help="injected 503 rate")
    parser.add_argument("--time-limit", type=float, default=150.0, help="seconds per soak, at most")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.ops //= 10
        args.pages //= 10
    output = args.output or (None if args.quick else RESULTS)
    # retries and evictions are expected by the thousand here: keep their warnings quiet
    logging.getLogger("airflow_provider_sophia").setLevel(logging.ERROR)

    started = time.monotonic()
    load_before = os.getloadavg()
    print(
        f"pool soak: {args.ops:,} ops, {THREADS} threads, {POOL_SIZE} connections, a kill every "
        f"{args.kill_every * 1000:.0f} ms ({args.dsn.split('@')[-1]})",
        flush=True,
    )
    pool = pool_soak(args.dsn, args.ops, args.query_every, args.kill_every, args.time_limit)
    print(
        f"gong soak: {args.pages:,} pages of {args.page_size}, {args.error_rate:.0%} 503 + 1 % drops "
        "+ 1 % truncations",
        flush=True,
    )
    gong = gong_soak(args.pages, args.calls, args.page_size, args.error_rate, args.time_limit)
    runtime = time.monotonic() - started
    print()
    print(table(pool, gong))
    ok = all(
        (
            pool["completed_all_ops"],
            pool["pool_recovered"],
            pool["rss_within_bound"],
            gong["completed_all_pages"],
            gong["every_record_exactly_once"],
            gong["rss_within_bound"],
        )
    )
    print(f"\nruntime {runtime:.1f} s; {'all checks held' if ok else 'A CHECK FAILED'}")
    report = {
        "benchmark": "soak",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "runtime_seconds": round(runtime, 1),
        "all_checks_held": ok,
        "environment": environment(load_before, psycopg=psycopg.__version__, psutil=psutil.__version__),
        "parameters": {
            "pool": {
                "ops": args.ops,
                "threads": THREADS,
                "max_size": POOL_SIZE,
                "query_every": args.query_every,
                "kill_every_s": args.kill_every,
                "validate_on_checkout": False,
                "health_check_interval_s": 1.0,
            },
            "gong": {
                "pages": args.pages,
                "calls": args.calls,
                "page_size": args.page_size,
                "faults": {"status_503": args.error_rate, "drop": 0.01, "truncate": 0.01},
                "simulator_rate_limit": None,
                "client_rate_limit": None,
                "base_delay_s": 0.001,
            },
            "time_limit_s": args.time_limit,
            "warmup_fraction": WARMUP,
            "rss_bound": RSS_BOUND,
        },
        "results": {"pool": pool, "gong": gong},
    }
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"written to {output}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["all_checks_held"] else 1)
