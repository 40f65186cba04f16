"""Pure logic of ConnectionPool, with in-memory DB-API fakes (real databases: tests/integration)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sophia._pool_support import backoff_delay, default_is_disconnect
from airflow_provider_sophia.exceptions import PoolClosed, PoolTimeout
from airflow_provider_sophia.pool import ConnectionPool, PoolConfig, PoolStats

IDLE, INTRANS = 0, 2
_ids = itertools.count(1)


class OperationalError(Exception):
    """Named like the PEP 249 class drivers raise for a lost connection."""


class FakeConnection:
    """A DB-API-shaped connection that records what the pool did to it."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self.closed = False
        self.broken = False
        self.rollbacks = 0
        self.hang = threading.Event()  # validate blocks while set ... until released
        self.release_hang = threading.Event()
        self.cancelled = threading.Event()
        self.info = SimpleNamespace(transaction_status=IDLE)

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def rollback(self) -> None:
        if self.broken:
            raise OperationalError("connection lost")
        self.rollbacks += 1
        self.info.transaction_status = IDLE

    def cancel(self) -> None:
        self.cancelled.set()
        self.release_hang.set()

    def close(self) -> None:
        self.closed = True


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn

    def execute(self, sql: str) -> None:
        if self.conn.hang.is_set():
            self.conn.release_hang.wait(30)
            raise OperationalError("canceling statement due to user request")
        if self.conn.broken or self.conn.closed:
            raise OperationalError("server closed the connection unexpectedly")

    def fetchall(self) -> list[tuple[int]]:
        return [(1,)]

    def close(self) -> None:
        pass


class Factory:
    """``connect`` for a pool: hands out FakeConnections, optionally failing first."""

    def __init__(self, failures: int = 0) -> None:
        self.made: list[FakeConnection] = []
        self.failures = failures
        self.attempts: list[float] = []

    def __call__(self) -> FakeConnection:
        self.attempts.append(time.monotonic())
        if self.failures:
            self.failures -= 1
            raise OperationalError("could not connect to server: Connection refused")
        conn = FakeConnection()
        self.made.append(conn)
        return conn


def eventually(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait (polling: this is a test) until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"sophia-pool-{name}-")]


@pytest.fixture
def make_pool() -> Iterator[Callable[..., ConnectionPool[Any]]]:
    pools: list[ConnectionPool[Any]] = []

    def make(factory: Callable[[], Any] | None = None, **options: Any) -> ConnectionPool[Any]:
        name = options.pop("name", f"unit{next(_ids)}")
        extra = {k: options.pop(k) for k in ("validate", "reset", "on_stats") if k in options}
        pool = ConnectionPool(factory or Factory(), PoolConfig(**options), name=name, **extra)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


@pytest.mark.parametrize(
    "options",
    [
        {"min_size": 3, "max_size": 2},
        {"max_size": 0},
        {"min_size": -1},
        {"health_check_interval": 0},
        {"max_lifetime": -1.0},
        {"validation_timeout": 0},
        {"acquire_timeout": -0.1},
        {"lifetime_spread": 1.0},
        {"connect_backoff": 2.0, "connect_backoff_max": 1.0},
    ],
)
def test_config_rejects_invalid_values(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        PoolConfig(**options)


def test_opens_min_size_in_background_and_counts_exactly(
    make_pool: Callable[..., ConnectionPool[Any]],
) -> None:
    pool = make_pool(min_size=3, max_size=5)
    pool.wait(5)
    assert pool.stats() == PoolStats(size=3, idle=3, created_total=3)
    with pool.connection() as conn:
        assert isinstance(conn, FakeConnection)
        assert pool.stats().in_use == 1
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.acquired_total) == (0, 3, 1)


def test_idle_connections_are_reused_last_in_first_out(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=2, max_size=2)
    pool.wait(5)
    first, second = pool.acquire(), pool.acquire()
    newest = second.raw
    first.close()
    second.close()
    with pool.connection() as conn:
        assert conn is newest


def test_waiters_are_served_first_in_first_out(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    order: list[int] = []
    held = pool.acquire()

    def wait_turn(i: int) -> None:
        with pool.connection(timeout=10):
            order.append(i)

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=wait_turn, args=(i,)))
        threads[-1].start()
        eventually(lambda i=i: pool.stats().waiting == i + 1)
    held.close()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]
    assert pool.stats().acquired_total == 6


def test_timeout_names_the_pool_and_its_counts(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1, name="tiny")
    with pool.connection(), pytest.raises(PoolTimeout) as caught, pool.connection(timeout=0.05):
        pass
    message = str(caught.value)
    assert "'tiny'" in message
    assert "size 1/1" in message
    assert "1 in use" in message
    assert "0 other waiting" in message
    assert caught.value.__cause__ is None
    assert pool.stats().timeouts_total == 1
    assert isinstance(caught.value, TimeoutError)


def test_zero_timeout_fails_at_once_when_exhausted(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pool.connection(), pytest.raises(PoolTimeout):
        pool.acquire(timeout=0)


def test_grows_on_demand_up_to_max_size(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=0, max_size=3)
    held = [pool.acquire(timeout=5) for _ in range(3)]
    assert pool.stats().size == 3
    with pytest.raises(PoolTimeout):
        pool.acquire(timeout=0.05)
    for conn in held:
        conn.close()
    assert pool.stats() == PoolStats(size=3, idle=3, created_total=3, acquired_total=3, timeouts_total=1)


def test_connect_failures_back_off_and_chain_the_last_error(
    make_pool: Callable[..., ConnectionPool[Any]],
) -> None:
    factory = Factory(failures=10**6)
    pool = make_pool(factory, min_size=1, max_size=1, connect_backoff=0.05, connect_backoff_max=0.4)
    with pytest.raises(PoolTimeout) as caught:
        pool.acquire(timeout=1.0)
    assert isinstance(caught.value.__cause__, OperationalError)
    # 0.05 doubling to 0.4, jittered to 50-100 %: a handful of attempts per second, no busy loop
    assert 3 <= len(factory.attempts) <= 12
    gaps = [b - a for a, b in itertools.pairwise(factory.attempts)]
    assert max(gaps) <= 0.4 + 0.2
    assert gaps[-1] > gaps[0]


def test_connect_recovers_after_failures(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    factory = Factory(failures=3)
    pool = make_pool(factory, min_size=1, max_size=1, connect_backoff=0.01, connect_backoff_max=0.05)
    with pool.connection(timeout=5) as conn:
        assert conn is factory.made[0]
    assert len(factory.attempts) == 4
    with pytest.raises(PoolTimeout) as caught, pool.connection():
        pool.acquire(timeout=0.01)
    assert caught.value.__cause__ is None  # a success clears the last connect error


def test_backoff_delay_is_capped_exponential_with_jitter() -> None:
    for attempt in range(10):
        delay = backoff_delay(attempt, 0.1, 2.0)
        full = min(2.0, 0.1 * 2**attempt)
        assert full / 2 <= delay <= full
    assert backoff_delay(10**6, 0.1, 2.0) <= 2.0


def test_failed_transaction_is_rolled_back_on_return(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pool.connection() as conn:
        conn.info.transaction_status = INTRANS
    assert conn.rollbacks == 1
    with pool.connection() as again:
        assert again is conn
    assert conn.rollbacks == 1  # idle transaction status: no needless round trip


def test_disconnect_error_discards_the_connection(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=2)
    pool.wait(5)
    with pytest.raises(OperationalError), pool.connection() as conn:
        raise OperationalError("terminating connection due to administrator command")
    assert conn.closed
    stats = pool.stats()
    assert (stats.closed_total, stats.evicted_total, stats.in_use) == (1, 1, 0)
    eventually(lambda: pool.stats().size == 1)  # refilled to min_size
    with pool.connection() as fresh:
        assert fresh is not conn


def test_other_errors_return_the_connection(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pytest.raises(KeyError), pool.connection() as conn:
        raise KeyError("application bug")
    assert not conn.closed
    assert pool.stats().idle == 1


def test_connection_whose_reset_fails_is_discarded(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pool.connection() as conn:
        conn.info.transaction_status = INTRANS
        conn.broken = True
    assert conn.closed
    assert pool.stats().evicted_total == 1


def test_is_disconnect_heuristics() -> None:
    conn = FakeConnection()
    assert default_is_disconnect(OperationalError("x"), conn)
    assert not default_is_disconnect(ValueError("x"), conn)
    conn.closed = True
    assert default_is_disconnect(ValueError("x"), conn)
    assert default_is_disconnect(ValueError("x"), SimpleNamespace(is_closed=lambda: True))


def test_health_check_evicts_broken_idle_connections_and_refills(
    make_pool: Callable[..., ConnectionPool[Any]],
) -> None:
    factory = Factory()
    pool = make_pool(factory, min_size=2, max_size=2, health_check_interval=0.05)
    pool.wait(5)
    factory.made[0].broken = True
    eventually(lambda: pool.stats().evicted_total == 1)
    eventually(lambda: pool.stats().size == 2)
    stats = pool.stats()
    assert stats.health_check_failures_total == 1
    assert stats.health_checks_total >= 2
    assert factory.made[0].closed
    assert stats.created_total - stats.closed_total == stats.size


def test_check_runs_a_health_check_now(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    factory = Factory()
    pool = make_pool(factory, min_size=2, max_size=2)
    pool.wait(5)
    factory.made[1].broken = True
    pool.check()
    eventually(lambda: pool.stats().health_checks_total == 2)
    assert pool.stats().evicted_total == 1


def test_hung_validation_is_abandoned_and_never_blocks_acquirers(
    make_pool: Callable[..., ConnectionPool[Any]],
) -> None:
    factory = Factory()
    pool = make_pool(factory, min_size=2, max_size=2, health_check_interval=0.05, validation_timeout=0.5)
    pool.wait(5)
    stuck = factory.made[0]
    stuck.hang.set()
    eventually(lambda: pool.stats().idle == 1)  # one is under the health check
    started = time.monotonic()
    with pool.connection(timeout=5) as conn:  # not the stuck one, without waiting for it
        assert conn is not stuck
        assert time.monotonic() - started < 0.4
    assert pool.stats().in_use == 0
    eventually(lambda: stuck.closed)
    assert stuck.cancelled.is_set()
    assert pool.stats().health_check_failures_total == 1


def test_close_is_quick_and_idempotent_while_validation_hangs(
    make_pool: Callable[..., ConnectionPool[Any]],
) -> None:
    factory = Factory()
    pool = make_pool(factory, min_size=2, max_size=2, health_check_interval=60, validation_timeout=60)
    pool.wait(5)
    for conn in factory.made:
        conn.hang.set()
    pool.check()
    eventually(lambda: pool.stats().idle == 1)
    started = time.monotonic()
    pool.close()
    pool.close()
    assert time.monotonic() - started < 0.5
    assert pool.closed
    eventually(lambda: not pool_threads(pool.name), timeout=1.0)  # the worker did not sleep on
    assert all(conn.closed for conn in factory.made)
    with pytest.raises(PoolClosed):
        pool.acquire()


def test_close_wakes_waiters_with_pool_closed(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.acquire(timeout=30)
        except PoolClosed as error:
            errors.append(error)

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    eventually(lambda: pool.stats().waiting == 3)
    pool.close()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 3
    raw = held.raw
    held.close()  # checked out at close: closed on return
    assert raw.closed
    assert pool.stats().size == 0


def test_max_idle_shrinks_back_to_min_size(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=4, max_idle=0.2)
    held = [pool.acquire(timeout=5) for _ in range(4)]
    for conn in held:
        conn.close()
    assert pool.stats().size == 4
    eventually(lambda: pool.stats().size == 1)
    stats = pool.stats()
    assert (stats.evicted_total, stats.idle) == (3, 1)


def test_max_lifetime_replaces_connections(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    factory = Factory()
    pool = make_pool(factory, min_size=2, max_size=2, max_lifetime=0.3, lifetime_spread=0.2)
    pool.wait(5)
    first = list(factory.made)
    eventually(lambda: all(conn.closed for conn in first))
    pool.wait(5)
    with pool.connection() as conn:
        assert conn not in first
    assert pool.stats().size == 2


def test_expired_connection_is_never_handed_out(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    factory = Factory()
    pool = make_pool(factory, min_size=1, max_size=1, max_lifetime=0.2, lifetime_spread=0)
    with pool.connection() as conn:
        time.sleep(0.3)
    assert conn.closed  # expired while in use: closed on return
    with pool.connection(timeout=5) as fresh:
        assert fresh is not conn


def test_validate_on_checkout_skips_broken_connections(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    factory = Factory()
    pool = make_pool(factory, min_size=1, max_size=1, validate_on_checkout=True)
    pool.wait(5)
    factory.made[0].broken = True
    with pool.connection(timeout=5) as conn:
        assert conn is factory.made[1]
    stats = pool.stats()
    assert (stats.acquired_total, stats.health_checks_total, stats.health_check_failures_total) == (1, 2, 1)


def test_pooled_connection_proxy_returns_on_close(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    proxy = pool.acquire()
    proxy.autocommit_mode = False  # attributes are the connection's
    assert proxy.raw.autocommit_mode is False
    assert proxy.rollbacks == 0
    proxy.close()
    proxy.close()
    assert pool.stats().idle == 1
    with pytest.raises(ValueError, match="already returned"):
        proxy.cursor()


def test_garbage_collected_proxy_frees_its_slot(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pytest.warns(ResourceWarning, match="without close"):
        pool.acquire()  # the proxy is dropped at once
    assert pool.stats().in_use == 0
    with pool.connection(timeout=5):
        pass


def test_on_stats_receives_snapshots(make_pool: Callable[..., ConnectionPool[Any]]) -> None:
    seen: list[PoolStats] = []
    pool = make_pool(min_size=1, max_size=1, on_stats=seen.append)
    with pool.connection(timeout=5):
        assert seen[-1].in_use == 1
    assert seen[-1].in_use == 0
    assert seen[-1].acquired_total == 1


def test_open_pool_does_not_delay_interpreter_exit() -> None:
    script = textwrap.dedent(
        """
        import threading
        from airflow_provider_sophia.pool import ConnectionPool, PoolConfig

        class Conn:
            def cursor(self):
                return self
            def execute(self, sql):
                threading.Event().wait(60)  # a validation that never answers
            def close(self):
                print("closed", flush=True)

        pool = ConnectionPool(Conn, PoolConfig(min_size=2, health_check_interval=0.01), name="exit")
        pool.wait(5)
        threading.Event().wait(0.2)  # let the health check get stuck
        """
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert result.stdout.count("closed") == 1  # the idle one; the stuck one is abandoned
