from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_sophia.exceptions import IngestError
from airflow_provider_sophia.ingest.staging import (
    ROW_GROUP_ROWS,
    ParquetFiles,
    StagedWriter,
    StageLocation,
    copy_into_table,
)

PUT = re.compile(r"PUT 'file://(?P<path>[^']+)' (?P<uri>\S+) ")


class FakeWarehouse:
    """Records PUT statements; each upload checks how many local files exist at that moment."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.uploaded: list[tuple[str, int]] = []
        self.max_local_files = 0
        self.max_concurrent = 0
        self._running = 0
        self._lock = threading.Lock()
        self.connections = 0

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    @contextlib.contextmanager
    def connect(self) -> Iterator[FakeWarehouse]:
        with self._lock:
            self.connections += 1
        yield self


class FakeCursor:
    def __init__(self, warehouse: FakeWarehouse) -> None:
        self.warehouse = warehouse
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Any = None) -> FakeCursor:
        match = PUT.match(sql)
        assert match, sql
        path = match["path"]
        warehouse = self.warehouse
        with warehouse._lock:
            warehouse._running += 1
            warehouse.max_concurrent = max(warehouse.max_concurrent, warehouse._running)
            local = len([name for name in os.listdir(os.path.dirname(path)) if name.endswith(".parquet")])
            warehouse.max_local_files = max(warehouse.max_local_files, local)
        time.sleep(0.02)
        with warehouse._lock:
            warehouse._running -= 1
            warehouse.uploaded.append((match["uri"], pq.read_metadata(path).num_rows))
        status = "ERROR" if warehouse.fail else "UPLOADED"
        self.rows = [(os.path.basename(path), "", 0, 0, "PARQUET", "PARQUET", status, "")]
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def close(self) -> None:
        pass


def batches(count: int, rows: int = 2000) -> Iterator[pa.RecordBatch]:
    for index in range(count):
        yield pa.RecordBatch.from_pydict(
            {"ID": list(range(index * rows, (index + 1) * rows)), "TEXT": [os.urandom(40).hex()] * rows}
        )


def test_files_roll_at_size_upload_in_parallel_and_disk_stays_bounded(tmp_path: Any) -> None:
    warehouse = FakeWarehouse()
    location = StageLocation.for_table("db.sch.t", "abc/part-0000")
    schema = next(batches(1)).schema
    writer = StagedWriter(
        warehouse,
        location,
        schema,
        connect=warehouse.connect,
        file_size_mb=0.05,
        parallelism=3,
        directory=str(tmp_path),
    )
    staged = writer.write_all(batches(40))
    assert staged.rows == 80_000 == sum(rows for _, rows in warehouse.uploaded)
    assert staged.files == len(warehouse.uploaded) > 5
    assert {uri for uri, _ in warehouse.uploaded} == {'@"DB"."SCH"."_SOPHIA_STAGE"/abc/part-0000/'}
    assert warehouse.max_concurrent > 1
    assert warehouse.max_local_files <= 3 + 1
    assert 1 < warehouse.connections <= 3
    assert list(tmp_path.iterdir()) == []  # every local file deleted


def test_without_a_connection_factory_uploads_one_at_a_time(tmp_path: Any) -> None:
    warehouse = FakeWarehouse()
    location = StageLocation.for_table("t", "k/part-0000")
    writer = StagedWriter(
        warehouse,
        location,
        next(batches(1)).schema,
        file_size_mb=0.05,
        parallelism=4,
        directory=str(tmp_path),
    )
    writer.write_all(batches(10))
    assert warehouse.max_concurrent == 1


def test_failed_upload_raises_and_cleans_up(tmp_path: Any) -> None:
    warehouse = FakeWarehouse(fail=True)
    writer = StagedWriter(
        warehouse, StageLocation.for_table("t", "k"), next(batches(1)).schema, directory=str(tmp_path)
    )
    with pytest.raises(IngestError, match="reported"):
        writer.write_all(batches(2))
    assert list(tmp_path.iterdir()) == []


def test_parquet_files_gather_batches_into_row_groups_and_roll(tmp_path: Any) -> None:
    finished: list[tuple[pq.FileMetaData, int]] = []
    schema = next(batches(1)).schema
    files = ParquetFiles(
        str(tmp_path), schema, lambda path, rows: finished.append((pq.read_metadata(path), rows))
    )
    for batch in batches(40):
        files.write(batch)
    files.close()
    [(metadata, rows)] = finished
    groups = [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)]
    assert rows == metadata.num_rows == sum(groups) == 80_000
    assert groups[0] >= ROW_GROUP_ROWS > groups[0] - 2000  # whole batches, not one group per batch
    assert not metadata.row_group(0).column(0).is_stats_set
    assert metadata.row_group(0).column(1).compression == "SNAPPY"

    small = ParquetFiles(
        str(tmp_path),
        schema,
        lambda path, rows: finished.append((pq.read_metadata(path), rows)),
        file_size=50_000,
    )
    for batch in batches(10):
        small.write(batch)
    small.close()
    assert sum(rows for _, rows in finished[1:]) == 20_000
    assert len(finished) - 1 > 1  # rolled at file_size


def test_parquet_files_raise_what_the_writer_thread_raised(tmp_path: Any) -> None:
    def refuse(path: str, rows: int) -> None:
        raise OSError("disk full")

    files = ParquetFiles(str(tmp_path), next(batches(1)).schema, refuse, file_size=50_000)

    def write_all() -> None:
        for batch in batches(10):
            files.write(batch)  # raises at the next hand-over...
        files.close()  # ...or at the latest here

    with pytest.raises(OSError, match="disk full"):
        write_all()
    files.abort()


def test_stage_paths_are_validated() -> None:
    with pytest.raises(ValueError, match="may hold only"):
        StageLocation.for_table("t", "a' ; drop")
    with pytest.raises(ValueError, match="may hold only"):
        StageLocation.for_table("t", "ok").child("../x y")


def test_copy_into_counts_loaded_rows() -> None:
    class Cursor:
        sql = ""

        def execute(self, sql: str) -> None:
            self.sql = sql

        def fetchall(self) -> list[tuple[Any, ...]]:
            return [("f1", "LOADED", 10, 10), ("f2", "LOADED", 5, 5)]

    cursor = Cursor()
    assert copy_into_table(cursor, '"STG"', StageLocation.for_table("t", "k")) == 15
    assert cursor.sql == (
        'COPY INTO "STG" FROM @"_SOPHIA_STAGE"/k/ FILE_FORMAT = (TYPE = PARQUET) '
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE"
    )
