"""SQLite file -> embedded warehouse: declared types, ISO text dates, values-inferred expressions."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sophia.ingest import SourceQuery, SqliteReader, run_load
from tests.conftest import EmbeddedWarehouse, unique_name
from tests.integration.ingest_support import checksums, make_loader, scalar, target_rows

pytestmark = pytest.mark.integration

ROWS = 10_000
NAMES = ["ID", "AMOUNT", "SCORE", "FLAG", "NAME", "PAYLOAD", "DAY", "CREATED_AT", "DOC"]


def source_row(i: int) -> tuple[Any, ...]:
    return (
        i,
        None if i % 11 == 0 else f"{i % 1000}.{i % 100:02d}",
        None if i % 13 == 0 else i / 7,
        None if i % 17 == 0 else i % 2,
        None if i % 19 == 0 else f"naïve ☃ {i}",
        None if i % 23 == 0 else i.to_bytes(4, "big"),
        None if i % 29 == 0 else (dt.date(2020, 1, 1) + dt.timedelta(days=i % 900)).isoformat(),
        None if i % 31 == 0 else (dt.datetime(2020, 1, 1) + dt.timedelta(seconds=i * 61)).isoformat(sep=" "),
        None if i % 37 == 0 else json.dumps({"n": i, "tags": ["a", i % 3]}),
    )


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "source.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), score REAL, flag BOOLEAN, "
            "name TEXT, payload BLOB, day DATE, created_at TIMESTAMP, doc JSON)"
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", map(source_row, range(1, ROWS + 1))
        )
        conn.commit()
    return path


@pytest.fixture
def wh(warehouse: EmbeddedWarehouse) -> Iterator[Any]:
    with contextlib.closing(warehouse.connect()) as connection:
        yield connection


def load(path: Path, warehouse: EmbeddedWarehouse, wh: Any, query: SourceQuery, **plan: Any):
    with contextlib.closing(sqlite3.connect(path)) as source:
        return run_load(
            make_loader(warehouse, wh, unique_name("sq"), **plan),
            SqliteReader(source, chunk_size=3000),
            query,
        )


def test_declared_types_round_trip(sqlite_db: Path, warehouse: EmbeddedWarehouse, wh: Any) -> None:
    target = unique_name("sq_mixed")
    summary = load(sqlite_db, warehouse, wh, SourceQuery(table="orders"), target=target)
    assert (summary.rows, summary.chunks) == (ROWS, 4)
    expected = []
    for row in map(source_row, range(1, ROWS + 1)):
        values = list(row)
        values[1] = None if values[1] is None else decimal.Decimal(values[1])
        values[3] = None if values[3] is None else bool(values[3])
        values[6] = None if values[6] is None else dt.date.fromisoformat(values[6])
        values[7] = None if values[7] is None else dt.datetime.fromisoformat(values[7])
        expected.append(values)
    actual = target_rows(wh, target, NAMES, ("CREATED_AT",))
    assert checksums(actual, NAMES, ("DOC",)) == checksums(expected, NAMES, ("DOC",))
    assert scalar(wh, f'SELECT "DOC":n FROM "{target}" WHERE "ID" = 5') == "5"


def test_expressions_are_typed_from_values_and_windows_bind_iso_text(
    sqlite_db: Path, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("sq_expr")
    window = (
        dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2020, 1, 2, tzinfo=dt.timezone.utc),
    )
    query = SourceQuery(
        sql="SELECT id, created_at, amount * 2 AS doubled, name || '!' AS shout FROM orders",
        incremental_column="created_at",
        window=window,
    )
    with contextlib.closing(sqlite3.connect(sqlite_db)) as conn:
        [(expected,)] = conn.execute(
            "SELECT COUNT(*) FROM orders "
            "WHERE created_at >= '2020-01-01 00:00:00' AND created_at < '2020-01-02 00:00:00'"
        ).fetchall()
    for _ in range(2):  # a rerun of the window yields the same target
        summary = load(
            sqlite_db, warehouse, wh, query, target=target, incremental_column="created_at", window=window
        )
        assert summary.rows == expected > 1000
    assert scalar(wh, f'SELECT COUNT(*) FROM "{target}"') == expected
    types = dict(
        wh.cursor()
        .execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (target,)
        )
        .fetchall()
    )
    assert types["DOUBLED"] in ("FLOAT", "NUMBER")
    assert types["SHOUT"] == "TEXT"
