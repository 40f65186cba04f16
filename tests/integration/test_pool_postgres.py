"""ConnectionPool against the real PostgreSQL service, with real psycopg connections."""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_sophia.exceptions import PoolClosed, PoolTimeout
from airflow_provider_sophia.pool import ConnectionPool, PoolConfig
from tests.conftest import unique_name
from tests.integration.pool_support import hammer, report_from_fork

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.integration

MakePool = Callable[..., ConnectionPool[Any]]


def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait (polling: this is a test) until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator[Any]:
    """An autocommit connection outside any pool, to watch and kill backends."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


def backends(admin: Any, app: str) -> set[int]:
    """Return the backend pids of the connections opened with ``application_name=app``."""
    rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchall()
    return {pid for (pid,) in rows}


def pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"sophia-pool-{name}-")]


@pytest.fixture
def make_pool(postgres_dsn: str) -> Iterator[MakePool]:
    """Build pools of real psycopg connections tagged with the pool's name as application_name."""
    pools: list[ConnectionPool[Any]] = []

    def make(
        connect: Callable[[], Any] | None = None, validate: Any = None, **options: Any
    ) -> ConnectionPool[Any]:
        name = unique_name("pool").lower()

        def open_connection() -> Any:
            return psycopg.connect(postgres_dsn, application_name=name, connect_timeout=5)

        pool = ConnectionPool(connect or open_connection, PoolConfig(**options), validate, name=name)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def test_concurrent_acquisitions_are_exclusive_and_counted_exactly(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(min_size=1, max_size=8)
    threads, rounds = 32, 2_000

    def check(conn: Any) -> None:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    owners = hammer(pool, threads=threads, rounds=rounds, check=check, check_every=500, timeout=30)
    stats = pool.stats()
    assert stats.acquired_total == threads * rounds
    assert (stats.in_use, stats.waiting, stats.timeouts_total) == (0, 0, 0)
    assert stats.idle == stats.size <= 8
    assert stats.created_total - stats.closed_total == stats.size
    assert len(owners) == stats.created_total
    assert len(backends(admin, pool.name)) == stats.size


def test_killed_connection_is_evicted_by_the_health_check(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(min_size=2, max_size=2, health_check_interval=0.2)
    pool.wait(10)
    victim = min(backends(admin, pool.name))
    admin.execute("SELECT pg_terminate_backend(%s)", (victim,))
    eventually(lambda: pool.stats().evicted_total == 1)
    pool.wait(10)
    stats = pool.stats()
    assert stats.health_check_failures_total == 1
    assert stats.size == 2
    assert victim not in backends(admin, pool.name)
    with pool.connection() as first, pool.connection() as second:
        assert {first.info.backend_pid, second.info.backend_pid} == backends(admin, pool.name)


def test_killed_connection_is_never_handed_out_with_validation_on_checkout(
    make_pool: MakePool, admin: Any
) -> None:
    pool = make_pool(min_size=1, max_size=1, validate_on_checkout=True)
    pool.wait(10)
    (victim,) = backends(admin, pool.name)
    admin.execute("SELECT pg_terminate_backend(%s)", (victim,))
    eventually(lambda: victim not in backends(admin, pool.name))
    with pool.connection(timeout=10) as conn:
        assert conn.info.backend_pid != victim
        assert conn.execute("SELECT 1").fetchone() == (1,)
    stats = pool.stats()
    assert (stats.health_check_failures_total, stats.evicted_total, stats.acquired_total) == (1, 1, 1)


def test_exhausted_pool_times_out_within_50_ms(make_pool: MakePool) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pool.connection():
        started = time.monotonic()
        with pytest.raises(PoolTimeout, match=r"size 1/1, 1 in use"), pool.connection(timeout=0.3):
            pass
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed <= 0.35


def test_close_returns_fast_while_validation_is_stuck_in_pg_sleep(make_pool: MakePool, admin: Any) -> None:
    def stuck_validation(conn: Any) -> None:
        conn.execute("SELECT pg_sleep(30)")

    pool = make_pool(
        validate=stuck_validation, min_size=2, max_size=2, health_check_interval=0.1, validation_timeout=60
    )
    pool.wait(10)
    eventually(
        lambda: (
            admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s",
                (pool.name, "%pg_sleep%"),
            ).fetchone()[0]
            == 1
        )
    )
    started = time.monotonic()
    pool.close()
    elapsed = time.monotonic() - started
    assert elapsed < 0.5, f"close took {elapsed:.3f}s"
    # the hung statement is cancelled and its connection closed: nothing is left behind
    eventually(lambda: not backends(admin, pool.name))
    eventually(lambda: not pool_threads(pool.name))
    with pytest.raises(PoolClosed):
        pool.acquire()


def test_close_with_connections_checked_out(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(min_size=1, max_size=3)
    held = [pool.acquire(timeout=10) for _ in range(3)]
    raws = [conn.raw for conn in held]
    pool.close()
    assert len(backends(admin, pool.name)) == 3  # still in the callers' hands
    assert held[0].execute("SELECT 1").fetchone() == (1,)
    for conn in held:
        conn.close()
    assert all(raw.closed for raw in raws)
    eventually(lambda: not backends(admin, pool.name))
    assert pool.stats().size == 0


def test_forked_child_starts_empty_and_never_touches_parent_connections(
    make_pool: MakePool, admin: Any
) -> None:
    pool = make_pool(min_size=2, max_size=3)
    pool.wait(10)
    parent_backends = backends(admin, pool.name)
    held = pool.acquire()  # checked out across the fork, too

    def child() -> str:
        before = pool.stats()
        held.close()  # the parent's connection: must not be reset, returned or closed
        with pool.connection(timeout=10) as conn:
            child_backend = conn.info.backend_pid
        report = f"{before.size} {before.idle} {before.in_use} {child_backend} {pool.stats().size}"
        pool.close()
        gc.collect()  # finalizers of inherited connections must not touch them either
        return report

    size, idle, in_use, child_backend, child_size = map(int, report_from_fork(child))
    assert (size, idle, in_use) == (0, 0, 0)
    assert 1 <= child_size <= 2  # its own connections: the one it used, and min_size filling in
    assert child_backend not in parent_backends
    # every parent connection still works, the one checked out across the fork included
    assert held.execute("SELECT 1").fetchone() == (1,)
    held.close()
    with pool.connection() as first, pool.connection() as second:
        assert {first.info.backend_pid, second.info.backend_pid} == parent_backends
        assert first.execute("SELECT 1").fetchone() == second.execute("SELECT 1").fetchone() == (1,)
    assert pool.stats().evicted_total == 0


def test_connect_failures_back_off_then_recover(postgres_dsn: str, make_pool: MakePool) -> None:
    attempts: list[float] = []
    reachable = threading.Event()

    def connect() -> Any:
        attempts.append(time.monotonic())
        dsn = postgres_dsn if reachable.is_set() else "postgresql://postgres@127.0.0.1:1/test"
        return psycopg.connect(dsn, connect_timeout=2)

    pool = make_pool(connect, min_size=1, max_size=1, connect_backoff=0.05, connect_backoff_max=0.4)
    with pytest.raises(PoolTimeout) as caught:
        pool.acquire(timeout=1.0)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    assert 3 <= len(attempts) <= 12  # backing off, not spinning
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps[-1] > gaps[0]
    reachable.set()
    with pool.connection(timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_max_idle_closes_surplus_connections(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(min_size=1, max_size=4, max_idle=0.3)
    held = [pool.acquire(timeout=10) for _ in range(4)]
    for conn in held:
        conn.close()
    assert len(backends(admin, pool.name)) == 4
    eventually(lambda: pool.stats().size == 1)
    eventually(lambda: len(backends(admin, pool.name)) == 1)
    assert pool.stats().evicted_total == 3


def test_max_lifetime_replaces_every_connection(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(min_size=2, max_size=2, max_lifetime=0.5, lifetime_spread=0.1)
    pool.wait(10)
    first = backends(admin, pool.name)
    eventually(lambda: len(backends(admin, pool.name)) == 2 and not first & backends(admin, pool.name))
    with pool.connection() as conn:
        assert conn.info.backend_pid not in first
    assert pool.stats().evicted_total >= 2
