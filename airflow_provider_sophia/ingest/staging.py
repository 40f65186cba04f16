"""Staged writer: Arrow batches -> rolling local parquet files -> PUT to a Snowflake stage.

Parquet encoding runs on a background thread (:class:`ParquetFiles`) while the source is read.
Each file is uploaded as soon as it reaches ``file_size_mb`` (up to ``parallelism`` uploads
at a time, each upload thread on its own connection from ``connect``, e.g. a pool's
``pooled_connection``) and deleted locally once uploaded, so local disk holds at most
``parallelism + 1`` files. Without ``connect`` one background thread uploads over the
given connection (concurrent statements on one session are not safe everywhere).
Loading the staged files into a table is one
``COPY INTO`` (:func:`copy_into_table`), never ``write_pandas`` nor row-by-row inserts.

A writer uploads into one stage folder; callers give each attempt its own folder so that
files of a killed attempt are never loaded (see :mod:`.pipeline`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_sophia.exceptions import IngestError
from airflow_provider_sophia.identifiers import quote_name, split_identifier

log = logging.getLogger(__name__)

#: name of the internal stage the loader keeps in each target schema.
STAGE_NAME = "_SOPHIA_STAGE"
MIB = 1024 * 1024
#: row groups of staged files: at most this many rows, or about this many bytes of Arrow data.
ROW_GROUP_ROWS = 64 * 1024
ROW_GROUP_BYTES = 16 * MIB
#: snappy is cheap and about halves the upload; dictionary encoding doubled the write time of
#: typical (mostly high-cardinality) extracts and made the files larger, and statistics cost
#: 15% more for files that COPY INTO reads whole (bench/ingest_bench.py).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "use_dictionary": False,
    "write_statistics": False,
}


@dataclass(frozen=True)
class StageLocation:
    """A folder of the loader's internal stage, e.g. ``@"DB"."SCH"."_SOPHIA_STAGE"/<load>/``.

    :param stage: the quoted stage name, qualified like the target table.
    :param path: folder inside the stage (generated, ``[0-9a-z_/-]`` only).
    """

    stage: str
    path: str

    @classmethod
    def for_table(cls, table: str, path: str) -> StageLocation:
        """Return the location in the stage of ``table``'s database and schema.

        :param table: the (possibly qualified) target table name.
        :param path: folder inside the stage.
        """
        _check_path(path)
        namespace = split_identifier(table)[:-1]
        return cls(".".join(quote_name(part) for part in [*namespace, STAGE_NAME]), path.strip("/"))

    @property
    def uri(self) -> str:
        """The ``@stage/path/`` reference used by PUT, COPY and REMOVE."""
        return f"@{self.stage}/{self.path}/"

    def child(self, name: str) -> StageLocation:
        """Return the sub-folder ``name`` of this location."""
        _check_path(name)
        return StageLocation(self.stage, f"{self.path}/{name.strip('/')}")


def _check_path(path: str) -> None:
    if not path or not all(char.isalnum() or char in "_-/" for char in path):
        raise ValueError(f"Stage path {path!r} may hold only letters, digits, '_', '-' and '/'.")


def ensure_stage(cursor: Any, location: StageLocation) -> None:
    """Create the internal stage when it does not exist yet (DDL: outside any transaction)."""
    cursor.execute(f"CREATE STAGE IF NOT EXISTS {location.stage}")


def remove_staged(cursor: Any, location: StageLocation) -> None:
    """Remove the files under ``location`` (best effort: the embedded warehouse has no REMOVE)."""
    try:
        cursor.execute(f"REMOVE {location.uri}")
    except Exception as error:  # noqa: BLE001 - any driver error here only means "nothing removed"
        log.info(
            "Could not remove staged files under %s (%s); they are never loaded again.",
            location.uri,
            error,
        )


def copy_into_table(cursor: Any, table: str, location: StageLocation, *, purge: bool = True) -> int:
    """Load every parquet file under ``location`` into ``table`` with ONE ``COPY INTO``.

    :param cursor: a Snowflake cursor.
    :param table: quoted name of the (staging) table; columns are matched by name.
    :param location: where the files are.
    :param purge: delete the files once loaded (keep them when a retry must load them again).
    :return: rows loaded.
    """
    cursor.execute(
        f"COPY INTO {table} FROM {location.uri} FILE_FORMAT = (TYPE = PARQUET) "
        f"MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = {'TRUE' if purge else 'FALSE'}"
    )
    results = cursor.fetchall() or []
    return sum(int(row[3]) for row in results if len(row) > 3 and str(row[3]).isdigit())


@dataclass
class StagedFiles:
    """What a writer uploaded.

    :param files: number of files.
    :param bytes: total size of the files.
    :param rows: total rows in them.
    """

    files: int = 0
    bytes: int = 0
    rows: int = 0


class ParquetFiles:
    """Rolling local parquet files, encoded on a background thread (pyarrow releases the GIL).

    Batches gather into row groups of up to :data:`ROW_GROUP_ROWS` rows (or
    :data:`ROW_GROUP_BYTES`, or ``file_size``); one group is encoded while the next gathers.
    A file closes once it reaches ``file_size`` bytes and goes to ``on_file(path, rows)``, called
    on the writer thread (blocking there holds back the writes).

    :param directory: folder of the files.
    :param schema: the Arrow schema of every batch.
    :param on_file: takes each finished file.
    :param file_size: size in bytes at which a file closes.
    :param name: file name stem, e.g. ``part-0003``.
    """

    def __init__(
        self,
        directory: str,
        schema: pa.Schema,
        on_file: Callable[[str, int], Any],
        *,
        file_size: int = 64 * MIB,
        name: str = "part-0000",
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.on_file = on_file
        self.file_size = file_size
        self.name = name
        self._group_bytes = min(ROW_GROUP_BYTES, file_size)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sophia-parquet")
        self._encoding: Future[None] | None = None
        self._writer: pq.ParquetWriter | None = None
        self._path = ""
        self._file_rows = 0
        self._sequence = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Add ``batch`` to the row group being gathered; hand the group over once it is full."""
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= self._group_bytes:
            self._hand_over(self._write_group, pa.Table.from_batches(self._pending, self.schema))
            self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def close(self) -> None:
        """Write the last group, close the last file and wait for both.

        :raises Exception: whatever writing a file or ``on_file`` raised.
        """
        if self._pending:
            self._hand_over(self._write_group, pa.Table.from_batches(self._pending, self.schema))
            self._pending = []
        self._hand_over(self._roll)
        self._hand_over(None)

    def abort(self) -> None:
        """Stop the writer thread and close the open file (idempotent)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None

    def _hand_over(self, task: Callable[..., None] | None, *args: Any) -> None:
        """Wait for the previous task (raising its error), then start ``task`` unless ``None``."""
        if self._encoding is not None:
            encoding, self._encoding = self._encoding, None
            encoding.result()
        if task is not None:
            self._encoding = self._executor.submit(task, *args)

    def _write_group(self, table: pa.Table) -> None:
        if self._writer is None:
            self._path = os.path.join(self.directory, f"{self.name}-{self._sequence:05d}.parquet")
            self._writer = pq.ParquetWriter(self._path, self.schema, **PARQUET_OPTIONS)
            self._sequence += 1
        self._writer.write_table(table, row_group_size=table.num_rows)
        self._file_rows += table.num_rows
        if os.path.getsize(self._path) >= self.file_size:
            self._roll()

    def _roll(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        rows, self._file_rows = self._file_rows, 0
        self.on_file(self._path, rows)


class StagedWriter:
    """Write record batches of one schema to rolling parquet files uploaded to a stage.

    :param connection: a Snowflake DB-API connection.
    :param connect: returns a context manager yielding a Snowflake connection, one per upload
        thread; ``None`` uploads over ``connection`` from a single thread.
    :param location: stage folder receiving the files.
    :param schema: the Arrow schema of every batch.
    :param file_size_mb: size at which a file is closed and uploaded.
    :param parallelism: uploads running at once (and files kept on disk at most, plus one).
    :param name: file name stem, e.g. ``part-0003``.
    :param directory: local folder for files in progress; a private temporary one by default.
    """

    def __init__(
        self,
        connection: Any,
        location: StageLocation,
        schema: pa.Schema,
        *,
        connect: Callable[[], AbstractContextManager[Any]] | None = None,
        file_size_mb: float = 64,
        parallelism: int = 4,
        name: str = "part-0000",
        directory: str | None = None,
    ) -> None:
        if file_size_mb <= 0 or parallelism < 1:
            raise ValueError(
                f"file_size_mb must be > 0 and parallelism >= 1, got {file_size_mb}, {parallelism}"
            )
        self.connection = connection
        self.location = location
        self.schema = schema
        self.file_size = int(file_size_mb * MIB)
        self.parallelism = parallelism if connect is not None else 1
        self.name = name
        self._connect = connect
        self._connections = contextlib.ExitStack()
        self._local = threading.local()
        self.staged = StagedFiles()
        self._directory = tempfile.mkdtemp(prefix="sophia-stage-", dir=directory)
        if "'" in self._directory:
            raise ValueError(f"Local staging directory {self._directory!r} must not contain a quote.")
        self._executor = ThreadPoolExecutor(self.parallelism, thread_name_prefix="sophia-put")
        self._uploads: deque[Future[int]] = deque()
        self._files = ParquetFiles(
            self._directory, schema, self._submit_upload, file_size=self.file_size, name=name
        )
        self._lock = threading.Lock()

    def write(self, batch: pa.RecordBatch) -> None:
        """Append ``batch`` to the current file; upload the file once it reaches the roll size."""
        self._files.write(batch)

    def write_all(self, batches: Iterable[pa.RecordBatch]) -> StagedFiles:
        """Write every batch, then :meth:`close`; return what was staged."""
        for batch in batches:
            self.write(batch)
        return self.close()

    def close(self) -> StagedFiles:
        """Upload the last file and wait for every upload; return what was staged.

        :raises IngestError: when an upload failed.
        """
        try:
            self._files.close()
            while self._uploads:
                self._wait_oldest()
        finally:
            self.abort()
        return self.staged

    def abort(self) -> None:
        """Stop: cancel pending uploads and delete local files (staged ones are purged or replaced later)."""
        self._files.abort()
        for upload in self._uploads:
            upload.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._connections.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> StagedWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.abort()

    def _submit_upload(self, path: str, rows: int) -> None:
        """Upload a finished file in the background, once fewer than ``parallelism`` run (writer thread)."""
        while len(self._uploads) >= self.parallelism:
            self._wait_oldest()
        self._uploads.append(self._executor.submit(self._upload, path, rows))

    def _wait_oldest(self) -> None:
        upload = self._uploads.popleft()
        try:
            upload.result()
        except IngestError:
            raise
        except Exception as error:
            raise IngestError(f"Uploading a staged file to {self.location.uri} failed: {error}") from error

    def _upload_connection(self) -> Any:
        if self._connect is None:
            return self.connection
        if getattr(self._local, "connection", None) is None:
            with self._lock:
                self._local.connection = self._connections.enter_context(self._connect())
        return self._local.connection

    def _upload(self, path: str, rows: int) -> int:
        size = os.path.getsize(path)
        cursor = self._upload_connection().cursor()
        try:
            cursor.execute(
                f"PUT 'file://{path}' {self.location.uri} AUTO_COMPRESS = FALSE OVERWRITE = TRUE PARALLEL = 1"
            )
            status = [str(row[6]) for row in cursor.fetchall() if len(row) > 6]
        finally:
            cursor.close()
            os.remove(path)
        if any(value not in ("UPLOADED", "SKIPPED") for value in status):
            raise IngestError(f"PUT of {os.path.basename(path)} to {self.location.uri} reported {status}.")
        with self._lock:
            self.staged.files += 1
            self.staged.bytes += size
            self.staged.rows += rows
        log.debug(
            "Staged %s (%d rows, %.1f MiB) to %s", os.path.basename(path), rows, size / MIB, self.location.uri
        )
        return size
