"""ConnectionPool and SnowflakePoolHook against the embedded warehouse (fakesnow over HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from snowflake.connector.errors import HttpError

from airflow_provider_sophia.exceptions import PoolTimeout
from airflow_provider_sophia.hooks import snowflake_pool
from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook, rollback_open_transaction
from airflow_provider_sophia.pool import ConnectionPool, PoolConfig, PooledConnection
from tests.conftest import EmbeddedWarehouse, unique_name
from tests.integration.pool_support import hammer, report_from_fork

pytestmark = pytest.mark.integration


def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait (polling: this is a test) until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def kill_session(warehouse: EmbeddedWarehouse, conn: Any) -> None:
    """End a session server-side, as an expired or killed Snowflake session would be."""
    response = requests.post(
        f"http://127.0.0.1:{warehouse.port}/session?delete=true",
        headers={"Authorization": f'Snowflake Token="{conn.rest.token}"'},
        timeout=10,
    )
    response.raise_for_status()


@pytest.fixture(autouse=True)
def _no_pools_left() -> Iterator[None]:
    yield
    SnowflakePoolHook.close_all_pools()


@pytest.fixture
def pool_conn(warehouse: EmbeddedWarehouse, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a connection to the warehouse with the given pool extras; return its id."""

    def define(**extras: Any) -> str:
        conn_id = unique_name("pool_conn").lower()
        connection = warehouse.airflow_connection()
        connection["extra"] = {**connection["extra"], **extras}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        return conn_id

    return define


def test_concurrent_acquisitions_on_real_sessions(warehouse: EmbeddedWarehouse) -> None:
    threads, rounds = 32, 2_000
    config = PoolConfig(min_size=1, max_size=8)
    with ConnectionPool(
        warehouse.connect, config, name="wh-concurrency", reset=rollback_open_transaction
    ) as pool:

        def check(conn: Any) -> None:
            assert conn.cursor().execute("select 1").fetchone() == (1,)

        hammer(pool, threads=threads, rounds=rounds, check=check, check_every=1_000, timeout=60)
        stats = pool.stats()
        assert stats.acquired_total == threads * rounds
        assert (stats.in_use, stats.waiting, stats.timeouts_total) == (0, 0, 0)
        assert stats.idle == stats.size == stats.created_total <= 8


def test_dead_session_is_evicted_and_replaced(warehouse: EmbeddedWarehouse) -> None:
    config = PoolConfig(min_size=2, max_size=2, health_check_interval=0.2)
    with ConnectionPool(warehouse.connect, config, name="wh-evict", reset=rollback_open_transaction) as pool:
        pool.wait(30)
        with pool.connection() as conn:
            dead = conn
        kill_session(warehouse, dead)
        eventually(lambda: pool.stats().evicted_total == 1, timeout=30)
        pool.wait(30)
        with pool.connection() as first, pool.connection() as second:
            assert dead not in (first, second)
            assert first.cursor().execute("select 2").fetchone() == (2,)
        assert pool.stats().health_check_failures_total == 1


def test_hook_reuses_pooled_sessions(snowflake_conn: str) -> None:
    hook = SnowflakePoolHook(snowflake_conn_id=snowflake_conn, pool_min_size=1, pool_max_size=2)
    table = unique_name("pooled")
    hook.run(
        [
            f'create table "{table}" (id int, name varchar)',
            f"insert into \"{table}\" values (1, 'a'), (2, 'b')",
        ]
    )
    assert hook.get_first(f'select count(*) from "{table}"') == (2,)
    assert hook.get_records(f'select id from "{table}" order by id') == [(1,), (2,)]
    frame = hook.get_df(f'select id, name from "{table}" order by id')
    assert list(frame.iloc[:, 0]) == [1, 2]
    with hook.pooled_connection() as conn:
        assert conn.cursor().execute("select 3").fetchone() == (3,)
    assert hook.test_connection() == (True, "Connection successfully tested")
    stats = hook.get_pool().stats()
    assert stats.created_total == 1  # one login for every statement above
    assert (stats.in_use, stats.idle) == (0, 1)
    assert stats.acquired_total >= 6
    assert SnowflakePoolHook(
        snowflake_conn_id=snowflake_conn, pool_max_size=2, pool_min_size=1
    ).get_pool() is (hook.get_pool())


def test_open_transaction_is_rolled_back_before_reuse(snowflake_conn: str) -> None:
    hook = SnowflakePoolHook(snowflake_conn_id=snowflake_conn, pool_max_size=1)
    table = unique_name("rollback")
    hook.run(f'create table "{table}" (id int)')
    with hook.pooled_connection() as conn:
        hook.set_autocommit(conn, False)
        conn.cursor().execute(f'insert into "{table}" values (1)')
        # leaves without commit, as a task that failed half-way does
    with hook.pooled_connection() as conn:
        assert conn.cursor().execute(f'select count(*) from "{table}"').fetchone() == (0,)
    stats = hook.get_pool().stats()
    assert (stats.created_total, stats.in_use) == (1, 0)


def test_next_borrower_gets_autocommit_back_after_run(snowflake_conn: str) -> None:
    hook = SnowflakePoolHook(snowflake_conn_id=snowflake_conn, pool_max_size=1)
    table = unique_name("autocommit")
    hook.run(f'create table "{table}" (id int)')  # run() turns autocommit off on its connection
    with hook.pooled_connection() as conn:
        conn.cursor().execute(f'insert into "{table}" values (1)')  # no commit: autocommit
    with hook.pooled_connection() as conn:
        assert conn.cursor().execute(f'select count(*) from "{table}"').fetchone() == (1,)


def test_killed_session_raising_inside_the_block_is_discarded(
    snowflake_conn: str, warehouse: EmbeddedWarehouse
) -> None:
    hook = SnowflakePoolHook(snowflake_conn_id=snowflake_conn, pool_max_size=1)
    with pytest.raises(HttpError), hook.pooled_connection() as conn:  # noqa: PT012
        kill_session(warehouse, conn)
        conn.cursor().execute("select 1")
    assert hook.get_pool().stats().evicted_total == 1
    assert hook.get_first("select 7") == (7,)
    assert hook.get_pool().stats().created_total == 2


def test_rollback_only_when_autocommit_was_turned_off() -> None:
    calls: list[str] = []

    class Conn:
        def rollback(self) -> None:
            calls.append("rollback")

        def autocommit(self, mode: bool) -> None:
            calls.append(f"autocommit({mode})")

    conn = Conn()
    rollback_open_transaction(conn)
    conn.autocommit_mode = True  # type: ignore[attr-defined]
    rollback_open_transaction(conn)
    assert calls == []
    conn.autocommit_mode = False  # type: ignore[attr-defined]
    rollback_open_transaction(conn)
    assert calls == ["rollback", "autocommit(True)"]


def test_get_conn_returns_a_proxy_that_goes_back_to_the_pool(snowflake_conn: str) -> None:
    hook = SnowflakePoolHook(snowflake_conn_id=snowflake_conn)
    conn = hook.get_conn()
    assert isinstance(conn, PooledConnection)
    assert conn.cursor().execute("select 1").fetchone() == (1,)
    assert hook.get_pool().stats().in_use == 1
    conn.close()
    assert hook.get_pool().stats().in_use == 0
    assert not hook.get_pool().stats().closed_total


def test_settings_come_from_arguments_extras_config_and_defaults(
    pool_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SOPHIA__POOL_ACQUIRE_TIMEOUT", "7.5")
    conn_id = pool_conn(pool_min_size="0", pool_max_size=3, pool_max_idle=12)
    config = SnowflakePoolHook(snowflake_conn_id=conn_id, pool_max_size=2).pool_config()
    assert (config.min_size, config.max_size, config.max_idle) == (0, 2, 12.0)  # argument beats extra
    assert config.acquire_timeout == 7.5  # [sophia] option
    assert (config.health_check_interval, config.max_lifetime) == (60.0, 3600.0)  # defaults


def test_invalid_extra_names_the_connection_and_value(pool_conn: Callable[..., str]) -> None:
    conn_id = pool_conn(pool_max_size="eight")
    with pytest.raises(ValueError, match=rf"{conn_id}.*pool_max_size='eight'"):
        SnowflakePoolHook(snowflake_conn_id=conn_id).pool_config()


def test_private_key_that_does_not_load_fails_at_once(
    pool_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nbm90IGEga2V5\n-----END ENCRYPTED PRIVATE KEY-----\n"
    conn_id = pool_conn(private_key_content=key, pool_acquire_timeout=30)
    started = time.monotonic()
    with pytest.raises(ValueError):
        SnowflakePoolHook(snowflake_conn_id=conn_id).get_first("SELECT 1")
    assert time.monotonic() - started < 5.0  # not after 30 s of connect retries


def test_one_pool_per_connection_and_settings(pool_conn: Callable[..., str]) -> None:
    conn_id = pool_conn(pool_min_size=0)
    first = SnowflakePoolHook(snowflake_conn_id=conn_id).get_pool()
    assert SnowflakePoolHook(snowflake_conn_id=conn_id).get_pool() is first
    other = SnowflakePoolHook(snowflake_conn_id=conn_id, pool_max_size=2).get_pool()
    assert other is not first
    assert SnowflakePoolHook(snowflake_conn_id=conn_id, warehouse="OTHER").get_pool() is not first
    SnowflakePoolHook.close_all_pools()
    assert first.closed
    assert other.closed
    assert SnowflakePoolHook(snowflake_conn_id=conn_id).get_pool() is not first


def test_pool_metrics_go_to_airflow_stats(
    pool_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gauges: dict[str, float] = {}
    counters: dict[str, int] = {}
    monkeypatch.setattr(
        snowflake_pool.Stats, "gauge", lambda name, value, **_: gauges.__setitem__(name, value)
    )
    monkeypatch.setattr(
        snowflake_pool.Stats,
        "incr",
        lambda name, count=1, **_: counters.__setitem__(name, counters.get(name, 0) + count),
    )
    conn_id = pool_conn(pool_min_size=1, pool_max_size=1)
    hook = SnowflakePoolHook(snowflake_conn_id=conn_id)
    prefix = f"sophia.pool.{conn_id}"
    with hook.pooled_connection():
        assert gauges[f"{prefix}.in_use"] == 1
        with pytest.raises(PoolTimeout), hook.pooled_connection(timeout=0.05):
            pass
    assert (gauges[f"{prefix}.in_use"], gauges[f"{prefix}.idle"], gauges[f"{prefix}.waiting"]) == (0, 1, 0)
    assert counters[f"{prefix}.timeouts"] == 1
    assert counters[f"{prefix}.acquired"] == 1
    assert counters[f"{prefix}.created"] == 1


def test_forked_child_gets_its_own_sessions(snowflake_conn: str) -> None:
    hook = SnowflakePoolHook(snowflake_conn_id=snowflake_conn, pool_min_size=1, pool_max_size=2)
    hook.get_pool().wait(30)
    with hook.pooled_connection() as conn:
        parent_session = conn.rest.token

    def child() -> str:
        size_before = hook.get_pool().stats().size
        with hook.pooled_connection() as conn:
            child_session = conn.rest.token
        return f"{size_before} {child_session} {hook.get_first('select 5')[0]}"

    size_before, child_session, five = report_from_fork(child)
    assert (size_before, five) == ("0", "5")
    assert child_session != parent_session
    with hook.pooled_connection() as conn:
        assert conn.rest.token == parent_session
        assert conn.cursor().execute("select 6").fetchone() == (6,)
