"""MariaDB -> embedded warehouse through the unbuffered-cursor reader."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from airflow_provider_sophia.exceptions import IngestError
from airflow_provider_sophia.ingest import MySqlReader, SourceQuery, run_load
from tests.conftest import EmbeddedWarehouse, unique_name
from tests.integration.ingest_support import checksums, make_loader, scalar, target_rows

pytestmark = pytest.mark.integration

ROWS = 20_000
NAMES = [
    "ID",
    "SMALL_I",
    "BIG_U",
    "AMOUNT",
    "SCORE",
    "FLAG",
    "NAME",
    "LONG_TEXT",
    "PAYLOAD",
    "DAY",
    "CREATED_AT",
    "UPDATED_AT",
    "DOC",
    "UID",
    "T",
]
TIMESTAMPS = ("CREATED_AT", "UPDATED_AT")
CREATE = """
CREATE TABLE {table} (
    id BIGINT PRIMARY KEY, small_i SMALLINT, big_u BIGINT UNSIGNED, amount DECIMAL(12,2), score DOUBLE,
    flag BOOLEAN, name VARCHAR(100) CHARACTER SET utf8mb4, long_text TEXT CHARACTER SET utf8mb4,
    payload VARBINARY(32), day DATE, created_at DATETIME(6), updated_at TIMESTAMP(6) NULL, doc JSON,
    uid CHAR(36), t TIME(6)
)
"""
FILL = """
INSERT INTO {table}
SELECT seq,
       IF(seq % 11 = 0, NULL, seq % 32000),
       IF(seq % 13 = 0, NULL, 18446744073709551615 - seq),
       IF(seq % 17 = 0, NULL, (seq % 100000) * 1.37),
       IF(seq % 23 = 0, NULL, seq / 3.0e0),
       IF(seq % 31 = 0, NULL, seq % 2 = 0),
       IF(seq % 37 = 0, NULL, CONCAT('naïve ☃ 名前 ', seq)),
       IF(seq % 100 = 0, REPEAT('long text ', 300), NULL),
       IF(seq % 41 = 0, NULL, UNHEX(MD5(seq))),
       IF(seq % 43 = 0, NULL, DATE '2020-01-01' + INTERVAL (seq % 2000) DAY),
       IF(seq % 47 = 0, NULL, TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq * 1123457 MICROSECOND),
       IF(seq % 53 = 0, NULL, TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq * 61 SECOND),
       IF(seq % 59 = 0, NULL, JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', seq % 5))),
       IF(seq % 67 = 0, NULL, UUID()),
       IF(seq % 71 = 0, NULL, SEC_TO_TIME(seq % 86400))
FROM seq_1_to_{rows}
"""


@pytest.fixture(scope="module")
def mysql_table(mysql_params: dict[str, Any]) -> Iterator[str]:
    table = unique_name("my_mixed").lower()
    with (
        contextlib.closing(pymysql.connect(**mysql_params, autocommit=True)) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SET SESSION time_zone = '+00:00'")
        cursor.execute(CREATE.format(table=table))
        cursor.execute(FILL.format(table=table, rows=ROWS))
    yield table
    with contextlib.closing(pymysql.connect(**mysql_params)) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def wh(warehouse: EmbeddedWarehouse) -> Iterator[Any]:
    with contextlib.closing(warehouse.connect()) as connection:
        yield connection


def load(
    mysql_params: dict[str, Any], warehouse: EmbeddedWarehouse, wh: Any, query: SourceQuery, **plan: Any
):
    with contextlib.closing(pymysql.connect(**mysql_params)) as source:
        reader = MySqlReader(source, chunk_size=4000, batch_size=1000)
        return run_load(make_loader(warehouse, wh, unique_name("my"), **plan), reader, query)


def test_mixed_rows_round_trip(
    mysql_params: dict[str, Any], mysql_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("my_mixed")
    summary = load(mysql_params, warehouse, wh, SourceQuery(table=mysql_table), target=target)
    assert (summary.rows, summary.chunks) == (ROWS, 5)
    with contextlib.closing(pymysql.connect(**mysql_params)) as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION time_zone = '+00:00'")
        cursor.execute(f"SELECT * FROM {mysql_table} ORDER BY id")
        source = [list(row) for row in cursor.fetchall()]
    for row in source:  # what the fidelity rules promise: TIMESTAMP is UTC, TIME a time of day
        row[5] = None if row[5] is None else bool(row[5])
        row[11] = None if row[11] is None else row[11].replace(tzinfo=dt.timezone.utc)
        row[14] = None if row[14] is None else (dt.datetime.min + row[14]).time()
    actual = target_rows(wh, target, NAMES, TIMESTAMPS)
    assert checksums(actual, NAMES) == checksums(source, NAMES)
    types = dict(
        wh.cursor()
        .execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (target,)
        )
        .fetchall()
    )
    assert types["BIG_U"] == "NUMBER"
    assert types["FLAG"] == "BOOLEAN"
    assert types["PAYLOAD"] == "BINARY"
    assert types["UPDATED_AT"] == "TIMESTAMP_TZ"
    assert types["CREATED_AT"] == "TIMESTAMP_NTZ"


def test_merge_and_windowed_rerun(
    mysql_params: dict[str, Any], mysql_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    target = unique_name("my_merge")
    window = (
        dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2020, 1, 2, tzinfo=dt.timezone.utc),
    )
    query = SourceQuery(table=mysql_table, incremental_column="updated_at", window=window)
    plan = {"target": target, "mode": "merge", "merge_keys": ["id"], "incremental_column": "updated_at"}
    first = load(mysql_params, warehouse, wh, query, **plan)
    second = load(mysql_params, warehouse, wh, query, **plan)
    assert first.rows == second.rows == scalar(wh, f'SELECT COUNT(*) FROM "{target}"') > 1000


def test_unknown_column_is_a_clear_error(
    mysql_params: dict[str, Any], mysql_table: str, warehouse: EmbeddedWarehouse, wh: Any
) -> None:
    with pytest.raises(IngestError, match=r"source query failed.*nope"):
        load(
            mysql_params,
            warehouse,
            wh,
            SourceQuery(sql=f"SELECT nope FROM {mysql_table}"),
            target=unique_name("x"),
        )
