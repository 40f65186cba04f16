"""PostgreSQL -> embedded warehouse through the ingestion core (ADBC and psycopg readers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from airflow_provider_sophia.exceptions import IngestError
from airflow_provider_sophia.ingest import (
    AdbcPostgresReader,
    PostgresCursorReader,
    SourceQuery,
    load_parts,
    run_load,
    stage_part,
)
from airflow_provider_sophia.ingest.readers import connect_adbc_postgres
from bench.ingest_bench import create_mixed_table
from tests.conftest import REPO, EmbeddedWarehouse, unique_name
from tests.integration.ingest_support import (
    checksums,
    make_loader,
    scalar,
    staging_leftovers,
    target_rows,
)

pytestmark = pytest.mark.integration

ROWS = 200_000
NAMES = [
    "ID",
    "SMALL_I",
    "INT_I",
    "AMOUNT",
    "RATIO",
    "SCORE",
    "F4",
    "FLAG",
    "NAME",
    "LONG_TEXT",
    "PAYLOAD",
    "DAY",
    "CREATED_AT",
    "UPDATED_AT",
    "DOC",
    "META",
    "UID",
]
JSON = ("DOC", "META")
TIMESTAMPS = ("CREATED_AT", "UPDATED_AT")


@pytest.fixture(scope="module")
def mixed_table(postgres_dsn: str) -> Iterator[str]:
    table = unique_name("mixed").lower()
    create_mixed_table(postgres_dsn, table, ROWS)
    yield table
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


@pytest.fixture
def wh(warehouse: EmbeddedWarehouse) -> Iterator[Any]:
    with contextlib.closing(warehouse.connect()) as connection:
        yield connection


def source_checksums(dsn: str, sql: str) -> dict:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(sql).fetchall()
    return checksums(rows, NAMES, JSON)


_OPENED: list[Any] = []


@pytest.fixture(autouse=True)
def _close_source_connections() -> Iterator[None]:
    yield
    while _OPENED:
        with contextlib.suppress(Exception):
            _OPENED.pop().close()


def adbc_reader(dsn: str, **kwargs: Any) -> AdbcPostgresReader:
    _OPENED.append(connect_adbc_postgres(dsn))
    return AdbcPostgresReader(_OPENED[-1], **kwargs)


def test_200k_mixed_rows_round_trip_through_adbc(
    postgres_dsn: str, mixed_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("pg_mixed")
    loader = make_loader(warehouse, wh, f"adbc-{target}", target=target)
    summary = run_load(loader, adbc_reader(postgres_dsn, chunk_size=5000), SourceQuery(table=mixed_table))
    assert (summary.rows, summary.chunks) == (ROWS, ROWS // 5000)
    assert summary.files >= 2
    assert summary.bytes > 0
    assert summary.peak_rss_mb > 0
    assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == ROWS
    expected = source_checksums(postgres_dsn, f'SELECT * FROM "{mixed_table}" ORDER BY id')
    assert checksums(target_rows(wh, target, NAMES, TIMESTAMPS), NAMES, JSON) == expected
    assert scalar(wh, f'SELECT "DOC":tags[1] FROM "{target}" WHERE "ID" = 2') == "2"
    assert staging_leftovers(wh) == []
    stage = wh.cursor().execute('LIST @"_SOPHIA_STAGE"').fetchall()
    assert not [row for row in stage if loader.location.path in row[0]]  # purged after COPY


NUMERICS = """
SELECT k, n::numeric(36,10) AS "Big ""n"" col", s::numeric(5,2) AS small, f AS free FROM (VALUES
    (1, 12345678901234567890123456.1234567891, -999.99, 1::numeric / 3),
    (2, NULL, NULL, NULL),
    (3, -0.0000000001, 0.5, 2.5),
    (4, 1, 1, 1)
) AS v(k, n, s, f)
"""


def test_adbc_numerics_keep_precision_scale_and_exact_values(postgres_dsn: str) -> None:
    reader = adbc_reader(postgres_dsn, chunk_size=2)
    specs = reader.open(SourceQuery(sql=NUMERICS, key_column="k", key_range=(1, 4)))
    batches = list(reader.chunks())
    reader.close()
    assert [spec.snowflake_type for spec in specs[1:]] == ["NUMBER(36,10)", "NUMBER(5,2)", "NUMBER(38,9)"]
    assert [field.type for field in reader.schema][1:] == [
        pa.decimal128(36, 10),
        pa.decimal128(5, 2),
        pa.decimal128(38, 9),
    ]
    assert [batch.num_rows for batch in batches] == [2, 1]
    assert [list(row.values()) for batch in batches for row in batch.to_pylist()] == [
        [1, Decimal("12345678901234567890123456.1234567891"), Decimal("-999.99"), Decimal("0.333333333")],
        [2, None, None, None],
        [3, Decimal("-1E-10"), Decimal("0.50"), Decimal("2.500000000")],
    ]


def test_psycopg_named_cursor_round_trip(
    postgres_dsn: str, mixed_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("pg_cursor")
    sql = f'SELECT * FROM "{mixed_table}" WHERE id <= 20000'
    with psycopg.connect(postgres_dsn) as source:
        reader = PostgresCursorReader(source, chunk_size=3000, batch_size=500)
        summary = run_load(
            make_loader(warehouse, wh, f"cur-{target}", target=target), reader, SourceQuery(sql=sql)
        )
    assert summary.rows == 20000
    assert summary.chunks == 7
    expected = source_checksums(postgres_dsn, sql + " ORDER BY id")
    actual = checksums(target_rows(wh, target, NAMES, TIMESTAMPS), NAMES, JSON)
    # psycopg reports no scale for numerics: they land as NUMBER(38,9), same values
    assert actual == expected


@pytest.fixture
def small_table(postgres_dsn: str) -> Iterator[str]:
    table = unique_name("small").lower()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, name text, updated_at timestamptz)')
        conn.execute(
            f"INSERT INTO \"{table}\" SELECT g, 'v1-' || g, "
            "timestamptz '2024-01-01 00:00+00' + g * interval '1 hour' "
            "FROM generate_series(1, 100) g"
        )
    yield table
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def run_small(dsn: str, warehouse: EmbeddedWarehouse, wh: Any, load_id: str, query: SourceQuery, **plan: Any):
    return run_load(make_loader(warehouse, wh, load_id, **plan), adbc_reader(dsn, chunk_size=30), query)


def test_merge_updates_changed_rows_and_latest_row_per_key_wins(
    postgres_dsn: str, small_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("merge")
    plan = {"target": target, "mode": "merge", "merge_keys": ["id"], "incremental_column": "updated_at"}
    run_small(postgres_dsn, warehouse, wh, "m1", SourceQuery(table=small_table), **plan)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            f"UPDATE \"{small_table}\" SET name = 'v2-' || id, updated_at = updated_at + interval '1 day' "
            "WHERE id <= 10"
        )
        conn.execute(f"INSERT INTO \"{small_table}\" VALUES (101, 'new', now())")
    # the same key twice in one load: the row with the latest updated_at wins, whatever the order
    sql = (
        f"SELECT id, 'stale' AS name, updated_at - interval '9 days' AS updated_at FROM \"{small_table}\" "
        f'WHERE id <= 5 UNION ALL SELECT * FROM "{small_table}"'
    )
    run_small(postgres_dsn, warehouse, wh, "m2", SourceQuery(sql=sql), **plan)
    rows = wh.cursor().execute(f'SELECT "ID", "NAME" FROM "{target}" ORDER BY "ID"').fetchall()
    assert len(rows) == 101
    assert rows[0] == (1, "v2-1")
    assert rows[10] == (11, "v1-11")
    assert rows[-1] == (101, "new")
    # a rerun of the same merge changes nothing
    run_small(postgres_dsn, warehouse, wh, "m2", SourceQuery(sql=sql), **plan)
    assert wh.cursor().execute(f'SELECT "ID", "NAME" FROM "{target}" ORDER BY "ID"').fetchall() == rows
    # an older extraction committing last (a backfill, an overlapping run) moves nothing back
    older = f"SELECT id, 'older' AS name, updated_at - interval '1 hour' AS updated_at FROM \"{small_table}\""
    run_small(postgres_dsn, warehouse, wh, "m3", SourceQuery(sql=older), **plan)
    assert wh.cursor().execute(f'SELECT "ID", "NAME" FROM "{target}" ORDER BY "ID"').fetchall() == rows


def test_replace_swaps_the_whole_table(
    postgres_dsn: str, small_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("replace")
    run_small(
        postgres_dsn, warehouse, wh, "r1", SourceQuery(table=small_table), target=target, mode="replace"
    )
    run_small(
        postgres_dsn,
        warehouse,
        wh,
        "r2",
        SourceQuery(sql=f'SELECT * FROM "{small_table}" WHERE id > 90'),
        target=target,
        mode="replace",
    )
    assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == 10
    assert scalar(wh, f'SELECT MIN("ID") FROM "{target}"') == 91


def test_reruns_are_idempotent(
    postgres_dsn: str, small_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    import datetime as dt

    window = (
        dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 1, 2, 10, tzinfo=dt.timezone.utc),
    )
    windowed = unique_name("window")
    query = SourceQuery(table=small_table, incremental_column="updated_at", window=window)
    for _ in range(2):  # a rerun of the same window yields the same target
        summary = run_small(
            postgres_dsn,
            warehouse,
            wh,
            "w",
            query,
            target=windowed,
            incremental_column="updated_at",
            window=window,
        )
        assert summary.rows == 24
    assert scalar(wh, f'SELECT COUNT(*) FROM "{windowed}"') == 24
    plain = unique_name("plain")
    first = run_small(postgres_dsn, warehouse, wh, "same-run", SourceQuery(table=small_table), target=plain)
    again = run_small(postgres_dsn, warehouse, wh, "same-run", SourceQuery(table=small_table), target=plain)
    assert (first.skipped, again.skipped, again.rows) == (False, True, 100)
    assert scalar(wh, f'SELECT COUNT(*) FROM "{plain}"') == 100


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (SourceQuery(table="no_such_table"), "no_such_table"),
        (SourceQuery(sql="SELECT no_such_column FROM pg_class"), "no_such_column"),
    ],
)
def test_unknown_table_or_column_is_a_clear_error(
    postgres_dsn: str, warehouse: EmbeddedWarehouse, wh: Any, query: SourceQuery, message: str
) -> None:
    target = unique_name("unknown")
    with pytest.raises(IngestError, match=f"source query failed.*{message}"):
        run_small(postgres_dsn, warehouse, wh, "u", query, target=target)
    assert not wh.cursor().execute(f"SHOW TABLES LIKE '{target}'").fetchall()


def test_bad_credentials_fail_clearly(postgres_dsn: str) -> None:
    bad = postgres_dsn.replace("postgres@", "no_such_user@")
    with pytest.raises(Exception, match="no_such_user"):
        connect_adbc_postgres(bad)


def test_connection_terminated_mid_stream_leaves_target_untouched(
    postgres_dsn: str, mixed_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("terminated")
    run_small(
        postgres_dsn,
        warehouse,
        wh,
        "t0",
        SourceQuery(sql=f'SELECT * FROM "{mixed_table}" WHERE id <= 10'),
        target=target,
    )
    app = unique_name("victim").lower()
    reader = adbc_reader(f"{postgres_dsn}?application_name={app}", chunk_size=1000)

    def terminate() -> None:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app,)
            )

    chunks = reader.chunks

    def chunks_then_terminate() -> Iterator[Any]:
        for index, batch in enumerate(chunks()):
            if index == 2:
                terminate()
            yield batch

    reader.chunks = chunks_then_terminate  # type: ignore[method-assign]
    with pytest.raises(
        IngestError, match=r"(?s)Reading the source failed after \d+ rows.*target was not changed"
    ):
        run_load(make_loader(warehouse, wh, "t1", target=target), reader, SourceQuery(table=mixed_table))
    assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == 10
    assert staging_leftovers(wh) == []


KILLED_LOAD = """
import contextlib, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from airflow_provider_sophia.ingest import Loader, LoadPlan, SourceQuery, run_load
from airflow_provider_sophia.ingest.readers import AdbcPostgresReader, connect_adbc_postgres
from tests.conftest import EmbeddedWarehouse
from pathlib import Path
warehouse = EmbeddedWarehouse(int(sys.argv[1]), Path("."))
loader = Loader(warehouse.connect(), LoadPlan(target=sys.argv[2]), sys.argv[3], file_size_mb=0.3,
                parallelism=1, progress_every=3)
reader = AdbcPostgresReader(connect_adbc_postgres(sys.argv[4]), chunk_size=2000)
run_load(loader, reader, SourceQuery(table=sys.argv[5]))
print("FINISHED", flush=True)
"""


def test_sigkill_half_way_then_retry_loads_exactly_once(
    postgres_dsn: str, mixed_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target, load_id = unique_name("killed"), unique_name("killed-run")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [
        sys.executable,
        "-c",
        textwrap.dedent(KILLED_LOAD),
        str(warehouse.port),
        target,
        load_id,
        postgres_dsn,
        mixed_table,
    ]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO
    )
    assert process.stdout is not None
    progress = 0
    for line in process.stdout:
        if line.startswith("Part 0:") and int(line.split()[2]) >= ROWS // 4:
            progress = int(line.split()[2])
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert 0 < progress < ROWS
    assert process.returncode == -signal.SIGKILL
    if wh.cursor().execute(f"SHOW TABLES LIKE '{target}'").fetchall():
        assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == 0  # created, never loaded
    retry = make_loader(warehouse, wh, load_id, target=target)
    summary = run_load(retry, adbc_reader(postgres_dsn, chunk_size=5000), SourceQuery(table=mixed_table))
    assert summary.rows == ROWS
    assert wh.cursor().execute(f'SELECT COUNT(*), COUNT(DISTINCT "ID") FROM "{target}"').fetchone() == (
        ROWS,
        ROWS,
    )
    again = run_load(retry, adbc_reader(postgres_dsn), SourceQuery(table=mixed_table))
    assert again.skipped
    assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == ROWS
    assert staging_leftovers(wh) == []


def test_scale_out_parts_then_one_load(
    postgres_dsn: str, mixed_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("parts")
    plan = {"target": target, "mode": "merge", "merge_keys": ["id"]}
    query = SourceQuery(table=mixed_table)
    parts = []
    for part in range(3):  # on different workers in Airflow; here one after the other
        worker = make_loader(warehouse, wh, "scale-out", **plan)
        parts.append(
            stage_part(worker, adbc_reader(postgres_dsn, chunk_size=20000), query, "id", part, 3).to_dict()
        )
    assert sum(part["rows"] for part in parts) == ROWS
    assert all(part["rows"] for part in parts)
    summary = load_parts(make_loader(warehouse, wh, "scale-out", **plan), parts)
    assert summary.rows == ROWS
    assert summary.files == sum(part["files"] for part in parts)
    assert wh.cursor().execute(
        f'SELECT COUNT(*), COUNT(DISTINCT "ID"), SUM("ID") FROM "{target}"'
    ).fetchone() == (
        ROWS,
        ROWS,
        ROWS * (ROWS + 1) // 2,
    )


def test_cancel_stops_the_load(
    postgres_dsn: str, mixed_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("cancel")
    reader = adbc_reader(postgres_dsn, chunk_size=1000)
    loader = make_loader(warehouse, wh, "cancel", target=target)
    chunks = reader.chunks

    def cancel_after_first() -> Iterator[Any]:
        for batch in chunks():
            threading.Thread(target=loader.cancel).start()
            threading.Thread(target=reader.cancel).start()
            yield batch

    reader.chunks = cancel_after_first  # type: ignore[method-assign]
    with pytest.raises(IngestError, match="cancelled"):
        run_load(loader, reader, SourceQuery(table=mixed_table))
    assert not wh.cursor().execute(f"SHOW TABLES LIKE '{target}'").fetchall()
