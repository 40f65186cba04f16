"""ConnectionPool vs psycopg_pool, SQLAlchemy QueuePool and a naive sleeping-worker pool.

Every pool holds the same kind of real psycopg 3 connections to the PostgreSQL service.
Measured in one run:

* uncontended acquire+release (µs per pair, one thread, pool of 8 already open);
* throughput of 32 threads sharing ``max_size`` 8 connections, no queries (pairs/s);
* close latency with ``health_check_interval=60`` while a validation hangs in
  ``pg_sleep(8)``, plus the pool threads and server connections still alive 0.5 s later.

The naive pool is the original "before": a ``LifoQueue`` whose worker validates inline,
then sleeps in ``time.sleep``, and whose close joins it for 5 s. psycopg_pool and QueuePool
have no periodic validation: theirs hangs on checkout (psycopg_pool's ``check`` callback; a
QueuePool checkout event, where ``pool_pre_ping`` would run); QueuePool's close is
``dispose()``. Results go to ``bench/results/pool_bench.json``.

Run: ``python -m bench.pool_bench [--dsn DSN]`` (about a minute; timings depend on load).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import psycopg
import psycopg_pool
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from airflow_provider_sophia.pool import ConnectionPool, PoolConfig
from bench.environment import environment

RESULTS = Path(__file__).resolve().parent / "results" / "pool_bench.json"
DEFAULT_DSN = os.environ.get("SOPHIA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SIZE = 8
THREADS = 32
PER_THREAD = 2_000
UNCONTENDED_OPS = 20_000
HANG_SQL = "SELECT pg_sleep(8)"
_apps = itertools.count()


class Subject(Protocol):
    """What the benchmark needs from a pool."""

    def connection(self) -> contextlib.AbstractContextManager[Any]: ...

    def hang_validation(self) -> None: ...

    def close(self) -> None: ...


def hung_validation(conn: Any) -> None:
    """A validation that sits in the database (the server answers after 8 s)."""
    conn.execute(HANG_SQL)


def background(target: Callable[[], object], name: str) -> threading.Thread:
    """Start a daemon thread whose failure (its hung statement gets terminated) is expected."""

    def run() -> None:
        with contextlib.suppress(Exception):
            target()

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    return thread


class Ours:
    def __init__(self, dsn: str, app: str, hang: bool) -> None:
        config = PoolConfig(min_size=SIZE, max_size=SIZE, health_check_interval=60.0, validation_timeout=60.0)
        self.pool = ConnectionPool(
            lambda: psycopg.connect(dsn, application_name=app),
            config,
            hung_validation if hang else None,
            name=app,
        )
        self.pool.wait(30)
        self.connection = self.pool.connection

    def hang_validation(self) -> None:
        self.pool.check()

    def close(self) -> None:
        self.pool.close()


class Psycopg:
    def __init__(self, dsn: str, app: str, hang: bool) -> None:
        self.pool = psycopg_pool.ConnectionPool(
            dsn,
            kwargs={"application_name": app},
            min_size=SIZE,
            max_size=SIZE,
            check=hung_validation if hang else None,
            open=True,
        )
        self.pool.wait(30)
        self.connection = self.pool.connection

    def hang_validation(self) -> None:
        # psycopg_pool has no periodic check worker; its validation is the checkout ``check``
        background(self.pool.getconn, f"bench-psycopg-{id(self)}")

    def close(self) -> None:
        self.pool.close()


class SqlAlchemy:
    def __init__(self, dsn: str, app: str, hang: bool) -> None:
        self.pool = QueuePool(
            lambda: psycopg.connect(dsn, application_name=app), pool_size=SIZE, max_overflow=0
        )
        held = [self.pool.connect() for _ in range(SIZE)]
        for conn in held:
            conn.close()
        if hang:
            event.listen(self.pool, "checkout", lambda dbapi_conn, *_: hung_validation(dbapi_conn))

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        conn = self.pool.connect()
        try:
            yield conn
        finally:
            conn.close()

    def hang_validation(self) -> None:
        background(self.pool.connect, f"bench-queuepool-{id(self)}")

    def close(self) -> None:
        self.pool.dispose()


class Naive:
    """The original pool: a LifoQueue and a worker that validates inline, then sleeps."""

    def __init__(self, dsn: str, app: str, hang: bool, interval: float = 60.0) -> None:
        self.idle: queue.LifoQueue[Any] = queue.LifoQueue()
        for _ in range(SIZE):
            self.idle.put(psycopg.connect(dsn, application_name=app))
        self.interval = interval
        self.validate = hung_validation if hang else (lambda conn: conn.execute("SELECT 1"))
        self.running = True
        self.worker: threading.Thread | None = None

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        conn = self.idle.get(timeout=30)
        try:
            yield conn
        finally:
            self.idle.put(conn)

    def hang_validation(self) -> None:
        self.worker = background(self._health_check, f"bench-naive-{id(self)}")

    def _health_check(self) -> None:
        while self.running:
            conn = self.idle.get()
            self.validate(conn)
            self.idle.put(conn)
            time.sleep(self.interval)

    def close(self) -> None:
        self.running = False
        if self.worker is not None:
            self.worker.join(5.0)
        while not self.idle.empty():
            self.idle.get_nowait().close()


POOLS: dict[str, Callable[[str, str, bool], Subject]] = {
    "ours": Ours,
    "psycopg_pool": Psycopg,
    "sqlalchemy_queuepool": SqlAlchemy,
    "naive_sleeping_worker": Naive,
}


def uncontended_us(subject: Subject) -> float:
    """Return the median µs of one acquire+release over five batches."""
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(UNCONTENDED_OPS):
            with subject.connection():
                pass
        batches.append((time.perf_counter() - started) / UNCONTENDED_OPS * 1e6)
    return statistics.median(batches)


def _hammer(subject: Subject, start: threading.Barrier) -> None:
    start.wait()
    for _ in range(PER_THREAD):
        with subject.connection():
            pass


def contended_per_s(subject: Subject) -> float:
    """Return the median acquire+release pairs per second of 32 threads over three runs."""
    rates = []
    for _ in range(3):
        start = threading.Barrier(THREADS + 1)
        threads = [threading.Thread(target=_hammer, args=(subject, start)) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        start.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        rates.append(THREADS * PER_THREAD / (time.perf_counter() - started))
    return statistics.median(rates)


def backends(admin: Any, app: str, query_like: str = "%") -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s"
    return int(admin.execute(sql, (app, query_like)).fetchone()[0])


def close_trial(factory: Callable[[str, str, bool], Subject], dsn: str, admin: Any) -> dict[str, float]:
    """Close a pool while its validation hangs; return latency and what is left behind."""
    app = f"sophia-bench-{os.getpid()}-{next(_apps)}"
    before = set(threading.enumerate())
    subject = factory(dsn, app, True)
    subject.hang_validation()
    deadline = time.monotonic() + 10
    while backends(admin, app, "%pg_sleep%") == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{app}: the validation never started")
        time.sleep(0.01)
    time.sleep(0.05)
    started = time.perf_counter()
    subject.close()
    close_s = time.perf_counter() - started
    time.sleep(0.5)
    left_threads = len([t for t in set(threading.enumerate()) - before if t.is_alive()])
    left_connections = backends(admin, app)
    # clean up for the next trial: end the hung statements
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app,)
    )
    return {"close_s": close_s, "threads_left": left_threads, "connections_left": left_connections}


def measure(dsn: str, close_trials: int, naive_close_trials: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with psycopg.connect(dsn, autocommit=True) as admin:
        for name, factory in POOLS.items():
            print(f"  {name}: acquire+release ...", flush=True)
            app = f"sophia-bench-{os.getpid()}-{next(_apps)}"
            subject = factory(dsn, app, False)
            try:
                row = {"uncontended_us": uncontended_us(subject), "contended_per_s": contended_per_s(subject)}
            finally:
                subject.close()
            print(f"  {name}: close with a hung validation ...", flush=True)
            trials = [
                close_trial(factory, dsn, admin)
                for _ in range(naive_close_trials if factory is Naive else close_trials)
            ]
            closes = [trial["close_s"] for trial in trials]
            row |= {
                "close_median_ms": statistics.median(closes) * 1000,
                "close_max_ms": max(closes) * 1000,
                "close_trials": len(trials),
                "threads_left_max": max(trial["threads_left"] for trial in trials),
                "connections_left_max": max(trial["connections_left"] for trial in trials),
            }
            results[name] = row
    return results


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Return, per competitor, how many times better ours is on each metric (> 1: ours wins)."""
    ours = results["ours"]
    return {
        name: {
            "uncontended": row["uncontended_us"] / ours["uncontended_us"],
            "contended": ours["contended_per_s"] / row["contended_per_s"],
            "close_median": row["close_median_ms"] / ours["close_median_ms"],
        }
        for name, row in results.items()
        if name != "ours"
    }


def table(results: dict[str, dict[str, Any]], vs: dict[str, dict[str, float]]) -> str:
    header = (
        f"{'pool':<24}{'acquire+release µs':>20}{'32 thr pairs/s':>16}{'close p50 ms':>14}"
        f"{'close max ms':>14}{'threads left':>14}{'conns left':>12}"
    )
    lines = [header, "-" * len(header)]
    for name, row in results.items():
        lines.append(
            f"{name:<24}{row['uncontended_us']:>20.2f}{row['contended_per_s']:>16,.0f}"
            f"{row['close_median_ms']:>14.2f}{row['close_max_ms']:>14.2f}"
            f"{row['threads_left_max']:>14}{row['connections_left_max']:>12}"
        )
    lines += ["", "ours vs (x times better; > 1 means ours wins):"]
    for name, row in vs.items():
        lines.append(
            f"  {name:<24} uncontended {row['uncontended']:.2f}x   contended {row['contended']:.2f}x   "
            f"close {row['close_median']:,.1f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every comparison once, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--close-trials", type=int, default=15)
    parser.add_argument("--naive-close-trials", type=int, default=3, help="each takes about 5 s")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    print(f"Pools of {SIZE} real psycopg connections to {args.dsn.split('@')[-1]}", flush=True)
    results = measure(args.dsn, args.close_trials, args.naive_close_trials)
    vs = ratios(results)
    print()
    print(table(results, vs))
    payload = {
        "benchmark": "pool_bench",
        "created_at": datetime.now(timezone.utc).isoformat(),
        "environment": environment(
            load_before,
            psycopg=psycopg.__version__,
            psycopg_pool=psycopg_pool.__version__,
            sqlalchemy=sqlalchemy.__version__,
        ),
        "parameters": {
            "size": SIZE,
            "threads": THREADS,
            "per_thread": PER_THREAD,
            "uncontended_ops": UNCONTENDED_OPS,
            "hung_validation": HANG_SQL,
            "health_check_interval_s": 60.0,
        },
        "results": results,
        "ours_vs": vs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
