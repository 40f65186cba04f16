"""Shared fixtures: real services (skip or fail), the embedded warehouse, Airflow connections.

A test that needs a service skips with the reason when the service is unreachable, except
when ``SOPHIA_REQUIRE_SERVICES=1`` (CI): then it fails.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# Airflow reads its home at import time: give the suite its own, never the user's.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".sophia" / "test-airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))

POSTGRES_DSN = os.environ.get("SOPHIA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_PARAMS: dict[str, Any] = {
    "host": os.environ.get("SOPHIA_TEST_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("SOPHIA_TEST_MYSQL_PORT", "3306")),
    "user": "root",
    "password": "",
    "database": "test",
}
REDIS_URL = os.environ.get("SOPHIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    """Return whether an unreachable service must fail the test (CI) instead of skipping it."""
    return os.environ.get("SOPHIA_REQUIRE_SERVICES") == "1"


def unavailable(service: str, error: BaseException) -> None:
    """Skip (or, when services are required, fail) because ``service`` is unreachable."""
    reason = f"{service} is unreachable: {type(error).__name__}: {error}"
    if services_required():
        pytest.fail(f"{reason} (SOPHIA_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _tcp_check(service: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        unavailable(service, error)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the PostgreSQL service (``test`` database)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg.Error as error:
        unavailable("PostgreSQL at 127.0.0.1:5432", error)
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def mysql_params() -> dict[str, Any]:
    """``pymysql.connect`` keyword arguments of the MariaDB service (``test`` database)."""
    pymysql = pytest.importorskip("pymysql")
    try:
        pymysql.connect(connect_timeout=3, **MYSQL_PARAMS).close()
    except pymysql.Error as error:
        unavailable("MariaDB at 127.0.0.1:3306", error)
    return dict(MYSQL_PARAMS)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis service (database 15, flushed by the tests that use it)."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        unavailable("Redis at 127.0.0.1:6379", error)
    return REDIS_URL


@dataclass
class EmbeddedWarehouse:
    """A running fakesnow server: where it is and how to reach it."""

    port: int
    state_dir: Path

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        from airflow_provider_sophia.local.warehouse import connect_kwargs

        return connect_kwargs(self.port) | overrides

    def connect(self, **overrides: Any) -> Any:
        """Open a real ``snowflake.connector`` connection to the warehouse."""
        import snowflake.connector

        return snowflake.connector.connect(**self.connect_kwargs(**overrides))

    def airflow_connection(self) -> dict[str, Any]:
        from airflow_provider_sophia.local.warehouse import airflow_connection

        return airflow_connection(self.port)


@pytest.fixture(scope="session")
def warehouse() -> Iterator[EmbeddedWarehouse]:
    """The embedded warehouse in server mode, one per test session, data in a temp dir."""
    from airflow_provider_sophia.local import warehouse as wh

    with tempfile.TemporaryDirectory(prefix="sophia-wh-") as tmp:
        service = wh.service(Path(tmp))
        state, _ = service.start()
        try:
            yield EmbeddedWarehouse(state.port, Path(tmp))
        finally:
            service.stop()


@pytest.fixture
def snowflake_conn(warehouse: EmbeddedWarehouse, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point ``snowflake_default`` at the embedded warehouse via ``AIRFLOW_CONN_*``; return the id."""
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps(warehouse.airflow_connection()))
    return "snowflake_default"


@pytest.fixture
def fakesnow_patched() -> Iterator[None]:
    """Fast in-process warehouse: ``snowflake.connector.connect`` patched to fakesnow (in memory)."""
    fakesnow = pytest.importorskip("fakesnow")
    with fakesnow.patch():
        yield


def unique_name(prefix: str) -> str:
    """Return a table name unique to this test run (tests share one warehouse)."""
    return f"{prefix}_{os.getpid()}_{os.urandom(3).hex()}".upper()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the suite's own Airflow metadata DB (SQLite under AIRFLOW_HOME) once; return the home."""
    import subprocess
    import sys

    home = Path(os.environ["AIRFLOW_HOME"])
    stamp = home / ".migrated"
    if not stamp.exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        stamp.touch()
    return home
