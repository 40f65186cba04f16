"""ChunkedSqlToSnowflakeOperator against real PostgreSQL, MariaDB, SQLite and the embedded warehouse."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pymysql
import pytest

from airflow_provider_sophia.exceptions import IngestError, InvalidIdentifierError
from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.operators.sql_to_snowflake import ChunkedSqlToSnowflakeOperator
from bench.ingest_bench import create_mixed_table
from tests.conftest import EmbeddedWarehouse, unique_name
from tests.integration.ingest_support import scalar

pytestmark = pytest.mark.integration

SUMMARY_KEYS = {"rows", "chunks", "files", "bytes", "seconds", "peak_rss_mb", "skipped"}


@pytest.fixture
def connections(
    snowflake_conn: str,
    postgres_dsn: str,
    mysql_params: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    pg = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    my = {
        "conn_type": "mysql",
        "host": mysql_params["host"],
        "port": mysql_params["port"],
        "login": "root",
        "schema": "test",
    }
    sqlite_path = tmp_path / "source.db"
    monkeypatch.setenv("AIRFLOW_CONN_SOURCE_PG", json.dumps(pg))
    monkeypatch.setenv("AIRFLOW_CONN_SOURCE_MY", json.dumps(my))
    monkeypatch.setenv("AIRFLOW_CONN_SOURCE_BAD_PG", json.dumps(pg | {"login": "no_such_user"}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SOURCE_SQ", json.dumps({"conn_type": "sqlite", "host": str(sqlite_path)})
    )
    yield sqlite_path
    SnowflakePoolHook.close_all_pools()


@pytest.fixture
def wh(warehouse: EmbeddedWarehouse) -> Iterator[Any]:
    with contextlib.closing(warehouse.connect()) as connection:
        yield connection


@pytest.fixture(scope="module")
def pg_table(postgres_dsn: str) -> Iterator[str]:
    table = unique_name("op_mixed").lower()
    create_mixed_table(postgres_dsn, table, 50_000)
    yield table
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def context(task_id: str, map_index: int = -1, interval: tuple[Any, Any] | None = None) -> dict[str, Any]:
    start, end = interval or (None, None)
    ti = SimpleNamespace(dag_id="ingest_dag", task_id=task_id, map_index=map_index)
    return {"ti": ti, "run_id": "manual__2024-01-01", "data_interval_start": start, "data_interval_end": end}


def test_init_does_no_io_and_templates_the_names() -> None:
    op = ChunkedSqlToSnowflakeOperator(task_id="t", source_conn_id="does_not_exist", target_table="x; drop")
    assert {"sql", "source_table", "target_table"} <= set(op.template_fields)


def test_postgres_append_returns_the_summary(connections: Path, pg_table: str, wh: Any) -> None:
    target = unique_name("op_pg")
    op = ChunkedSqlToSnowflakeOperator(
        task_id="pg",
        source_conn_id="source_pg",
        source_table=pg_table,
        target_table=target,
        chunk_size=10_000,
        file_size_mb=2,
    )
    result = op.execute(context("pg"))
    assert set(result) == SUMMARY_KEYS
    assert (result["rows"], result["chunks"], result["skipped"]) == (50_000, 5, False)
    assert result["files"] >= 2
    assert wh.cursor().execute(f'SELECT COUNT(*), SUM("ID") FROM "{target}"').fetchone() == (
        50_000,
        50_000 * 50_001 // 2,
    )
    assert json.dumps(result)  # JSON-able for XCom
    assert op.execute(context("pg"))["skipped"] is True  # a retry of the same run appends nothing


def test_mariadb_merge_over_the_data_interval(
    connections: Path, mysql_params: dict[str, Any], wh: Any
) -> None:
    table, target = unique_name("op_my").lower(), unique_name("op_my")
    with (
        contextlib.closing(pymysql.connect(**mysql_params, autocommit=True)) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(20), changed DATETIME)")
        cursor.execute(
            f"INSERT INTO {table} SELECT seq, CONCAT('v', seq), '2024-01-01' + INTERVAL seq MINUTE "
            "FROM seq_1_to_3000"
        )
    try:
        interval = (
            dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
            dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc),
        )
        op = ChunkedSqlToSnowflakeOperator(
            task_id="my",
            source_conn_id="source_my",
            sql=f"SELECT * FROM {table}",
            target_table=target,
            mode="merge",
            merge_keys=["id"],
            incremental_column="changed",
        )
        assert op.execute(context("my", interval=interval))["rows"] == 719
        assert op.execute(context("my", interval=interval))["rows"] == 719
        assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == 719
    finally:
        with contextlib.closing(pymysql.connect(**mysql_params)) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}")


def test_sqlite_replace(connections: Path, wh: Any) -> None:
    with contextlib.closing(sqlite3.connect(connections)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(500)])
        conn.commit()
    target = unique_name("op_sq")
    op = ChunkedSqlToSnowflakeOperator(
        task_id="sq", source_conn_id="source_sq", source_table="t", target_table=target, mode="replace"
    )
    op.execute(context("sq"))
    with contextlib.closing(sqlite3.connect(connections)) as conn:
        conn.execute("DELETE FROM t WHERE id >= 100")
        conn.commit()
    assert op.execute(context("sq"))["rows"] == 100
    assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == 100


def test_scale_out_mapped_parts_then_final_load(connections: Path, pg_table: str, wh: Any) -> None:
    target = unique_name("op_parts")
    common = {"source_conn_id": "source_pg", "target_table": target, "mode": "merge", "merge_keys": ["id"]}
    parts = [
        ChunkedSqlToSnowflakeOperator(
            task_id="stage",
            source_table=pg_table,
            partition_column="id",
            partitions=3,
            partition_index=index,
            **common,
        ).execute(context("stage", map_index=index))
        for index in range(3)
    ]
    assert len({part["load_id"] for part in parts}) == 1
    final = ChunkedSqlToSnowflakeOperator(task_id="load", staged_parts=parts, **common)
    result = final.execute(context("load"))
    assert result["rows"] == 50_000
    assert wh.cursor().execute(f'SELECT COUNT(*), COUNT(DISTINCT "ID") FROM "{target}"').fetchone() == (
        50_000,
        50_000,
    )


def test_bad_credentials_and_identifiers_fail_clearly(connections: Path, pg_table: str) -> None:
    op = ChunkedSqlToSnowflakeOperator(
        task_id="bad",
        source_conn_id="source_bad_pg",
        source_table=pg_table,
        target_table=unique_name("never"),
    )
    with pytest.raises(Exception, match="no_such_user"):
        op.execute(context("bad"))
    op = ChunkedSqlToSnowflakeOperator(
        task_id="bad", source_conn_id="source_pg", source_table=pg_table, target_table='x"; DROP TABLE y; --'
    )
    with pytest.raises(InvalidIdentifierError):
        op.execute(context("bad"))


def test_on_kill_cancels_and_leaves_no_target(connections: Path, pg_table: str, wh: Any) -> None:
    target = unique_name("op_kill")
    op = ChunkedSqlToSnowflakeOperator(
        task_id="kill",
        source_conn_id="source_pg",
        source_table=pg_table,
        target_table=target,
        chunk_size=500,
        file_size_mb=0.2,
        upload_parallelism=1,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(context("kill"))
        except BaseException as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while op._reader is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    op.on_kill()
    thread.join(60)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], IngestError), errors
    assert not wh.cursor().execute(f"SHOW TABLES LIKE '{target}'").fetchall()


def test_openlineage_datasets(connections: Path, pg_table: str) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    op = ChunkedSqlToSnowflakeOperator(
        task_id="ol", source_conn_id="source_pg", source_table=pg_table, target_table="orders"
    )
    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage.inputs[0].name == f"test.{pg_table}"
    assert lineage.outputs[0].name == "SOPHIA.PUBLIC.ORDERS"
