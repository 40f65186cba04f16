"""Tie a chunk reader (or any Arrow batch stream) to the staged writer and a load plan.

One load, identified by a ``load_id`` that is the same on every retry:

1. stage: batches -> rolling parquet files -> PUT to ``@_SOPHIA_STAGE/<key>/<part>/<attempt>/``
   (a fresh attempt folder each time, so files of a killed attempt are never loaded);
2. load: ``CREATE OR REPLACE TRANSIENT TABLE _SOPHIA_STG_<KEY>``, ONE ``COPY INTO`` it per
   staged part (one in a single-task load; purging the files), then the plan in one
   transaction, then the staging table is dropped and the load's stage folder removed.

A run killed at any point and retried with the same ``load_id`` ends exactly once: before
the commit the target is untouched and the retry re-creates the staging objects under the
same names; after the commit the plan is idempotent (merge, replace, windowed append) or
the ledger says the load is done (plain append) and the retry only cleans up.

Scale-out: :func:`stage_part` per key range (on any worker), then :func:`load_parts` once.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from airflow_provider_sophia.exceptions import IngestError, SophiaError
from airflow_provider_sophia.ingest.plans import (
    ROW_COLUMN,
    LoadPlan,
    apply_plan,
    load_key,
    loaded_rows,
)
from airflow_provider_sophia.ingest.readers import ChunkReader, SourceQuery, split_key_range
from airflow_provider_sophia.ingest.staging import (
    MIB,
    StagedFiles,
    StagedWriter,
    StageLocation,
    copy_into_table,
    ensure_stage,
    remove_staged,
)
from airflow_provider_sophia.ingest.types import ColumnSpec, arrow_schema, conform_batch

log = logging.getLogger(__name__)

#: rows numbered per part: part ``n`` numbers its rows from ``n * PART_ROW_SPAN``.
PART_ROW_SPAN = 10**12


def peak_rss_mb() -> float:
    """Return this process's peak resident memory in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass
class LoadSummary:
    """The result of a load (what the operator returns).

    :param skipped: the ledger showed this load id already committed; nothing was re-applied.
    """

    rows: int = 0
    chunks: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass
class StagedPart:
    """One staged part of a load (XCom between scale-out steps).

    :param part: part number.
    :param columns: the specs of the staged columns, as dicts.
    :param load_id: the load the part belongs to.
    :param path: the stage folder holding the part's files.
    """

    part: int
    columns: list[dict[str, Any]]
    load_id: str = ""
    path: str = ""
    rows: int = 0
    chunks: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)

    @property
    def specs(self) -> list[ColumnSpec]:
        """The staged column specs."""
        return [ColumnSpec.from_dict(column) for column in self.columns]


class Loader:
    """Stage batches and apply a plan over one Snowflake connection.

    :param connection: a Snowflake DB-API connection (autocommit on).
    :param plan: what to do with the staged rows.
    :param load_id: stable id of this load, the same on every retry (e.g. dag/task/run).
    :param file_size_mb: size at which staged files roll.
    :param parallelism: uploads running at once (with ``connect``; else 1).
    :param connect: returns a context manager yielding another Snowflake connection (e.g. a
        pool's ``pooled_connection``), one per upload thread.
    :param progress_every: log progress every this many chunks.
    """

    def __init__(
        self,
        connection: Any,
        plan: LoadPlan,
        load_id: str,
        *,
        file_size_mb: float = 64,
        parallelism: int = 4,
        connect: Callable[[], AbstractContextManager[Any]] | None = None,
        progress_every: int = 20,
    ) -> None:
        self.connection = connection
        self.plan = plan
        self.load_id = load_id
        self.file_size_mb = file_size_mb
        self.parallelism = parallelism
        self.connect = connect
        self.progress_every = max(progress_every, 1)
        self.location = StageLocation.for_table(plan.target, load_key(load_id))
        self._cancelled = threading.Event()

    def already_loaded(self) -> int | None:
        """Return the rows of this load when the ledger says it committed (plain append only)."""
        if not self.plan.uses_ledger:
            return None
        with contextlib.closing(self.connection.cursor()) as cursor:
            return loaded_rows(cursor, self.plan, self.load_id)

    def stage(
        self, batches: Iterable[pa.RecordBatch], specs: Sequence[ColumnSpec], part: int = 0
    ) -> StagedPart:
        """Write ``batches`` (any Arrow stream matching ``specs``) to the stage as part ``part``.

        :raises IngestError: when the load is cancelled or an upload fails.
        """
        started = time.monotonic()
        schema = arrow_schema(specs).append(pa.field(ROW_COLUMN, pa.int64()))
        folder = self.location.child(f"part-{part:04d}")
        location = folder.child(uuid.uuid4().hex[:12])
        with contextlib.closing(self.connection.cursor()) as cursor:
            ensure_stage(cursor, location)
            remove_staged(cursor, folder)  # earlier attempts of this part
        staged = StagedPart(part, [spec.to_dict() for spec in specs], self.load_id, location.path)
        conformed = arrow_schema(specs)
        with StagedWriter(
            self.connection,
            location,
            schema,
            connect=self.connect,
            file_size_mb=self.file_size_mb,
            parallelism=self.parallelism,
            name=f"part-{part:04d}",
        ) as writer:
            for batch in batches:
                if self._cancelled.is_set():
                    raise IngestError("The load was cancelled while staging; the target was not changed.")
                first = part * PART_ROW_SPAN + staged.rows
                writer.write(_numbered(conform_batch(batch, specs, conformed), first, schema))
                staged.rows += batch.num_rows
                staged.chunks += 1
                if staged.chunks % self.progress_every == 0:
                    _log_progress(staged, writer.staged, started)
            files = writer.close()
        staged.files, staged.bytes = files.files, files.bytes
        staged.seconds = round(time.monotonic() - started, 3)
        _log_progress(staged, files, started)
        return staged

    def load(self, parts: Sequence[StagedPart], *, keep_until_commit: bool = False) -> LoadSummary:
        """COPY every staged part into the staging table once and apply the plan in one transaction.

        :param parts: the staged parts.
        :param keep_until_commit: keep the staged files until the plan committed, so that a retry
            of this step alone can load them again (scale-out); otherwise COPY purges them.
        :raises IngestError: when the parts disagree on columns, or a statement fails (the target
            is then unchanged).
        """
        started = time.monotonic()
        specs = _common_specs(parts)
        if foreign := sorted({part.load_id for part in parts} - {self.load_id}):
            raise IngestError(f"Staged parts belong to load(s) {foreign}, not to {self.load_id!r}.")
        summary = LoadSummary(
            rows=sum(part.rows for part in parts),
            chunks=sum(part.chunks for part in parts),
            files=sum(part.files for part in parts),
            bytes=sum(part.bytes for part in parts),
        )
        staging = self.plan.staging_table(self.load_id)
        with contextlib.closing(self.connection.cursor()) as cursor:
            try:
                if (done := self.already_loaded()) is not None:
                    log.info(
                        "Load %s already committed %d rows to %s; skipping.",
                        self.load_id,
                        done,
                        self.plan.target,
                    )
                    summary.skipped = True
                else:
                    self._prepare_target(cursor, specs)
                    cursor.execute(self.plan.create_staging_sql(specs, self.load_id))
                    copied = sum(
                        copy_into_table(
                            cursor,
                            staging,
                            StageLocation(self.location.stage, part.path),
                            purge=not keep_until_commit,
                        )
                        for part in parts
                        if part.files
                    )
                    if copied != summary.rows:
                        raise IngestError(
                            f"COPY INTO loaded {copied} rows from {self.location.uri} but "
                            f"{summary.rows} were "
                            "staged; the target was not changed. Retry the load."
                        )
                    apply_plan(cursor, self.plan, specs, self.load_id, summary.rows)
                remove_staged(cursor, self.location)
            finally:
                cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        summary.seconds = round(sum(part.seconds for part in parts) + time.monotonic() - started, 3)
        summary.peak_rss_mb = peak_rss_mb()
        return summary

    def cancel(self) -> None:
        """Make the running :meth:`stage` stop before its next chunk."""
        self._cancelled.set()

    def _prepare_target(self, cursor: Any, specs: Sequence[ColumnSpec]) -> None:
        if self.plan.create_table:
            cursor.execute(self.plan.create_target_sql(specs))
        try:
            cursor.execute(f"SELECT * FROM {self.plan.quoted_target} LIMIT 0")  # noqa: S608
        except Exception as error:
            raise IngestError(
                f"Target table {self.plan.target!r} cannot be read ({error}); "
                "create it or set create_table=True."
            ) from error
        existing = {str(column[0]) for column in cursor.description}
        if missing := [spec.target for spec in specs if spec.target not in existing]:
            raise IngestError(
                f"Target table {self.plan.target!r} has no column(s) {missing}; add them or drop the table "
                "and let the load create it."
            )


def _numbered(batch: pa.RecordBatch, first: int, schema: pa.Schema) -> pa.RecordBatch:
    numbers = pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64))
    return pa.RecordBatch.from_arrays([*batch.columns, numbers], schema=schema)


def _common_specs(parts: Sequence[StagedPart]) -> list[ColumnSpec]:
    if not parts:
        raise IngestError("No staged parts to load.")
    specs = parts[0].specs
    for part in parts[1:]:
        if part.specs != specs:
            raise IngestError(f"Staged part {part.part} has columns that differ from part {parts[0].part}.")
    return specs


def _log_progress(staged: StagedPart, files: StagedFiles, started: float) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info(
        "Part %d: %d rows in %d chunks, %.0f rows/s, %.1f MiB staged in %d files",
        staged.part,
        staged.rows,
        staged.chunks,
        staged.rows / elapsed,
        files.bytes / MIB,
        files.files,
    )


def _read(reader: ChunkReader, query: SourceQuery) -> tuple[list[ColumnSpec], Iterator[pa.RecordBatch]]:
    """Open ``query`` and return its specs and batches, turning driver errors into :class:`IngestError`."""
    try:
        specs = reader.open(query)
    except (SophiaError, ValueError):
        raise
    except Exception as error:
        raise IngestError(f"The source query failed: {error}") from error

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        try:
            for batch in reader.chunks():
                rows += batch.num_rows
                yield batch
        except IngestError:
            raise
        except Exception as error:
            raise IngestError(
                f"Reading the source failed after {rows} rows: {error}. "
                "The target was not changed; retry the load."
            ) from error
        finally:
            reader.close()

    return specs, batches()


def run_load(loader: Loader, reader: ChunkReader, query: SourceQuery) -> LoadSummary:
    """Read ``query`` with ``reader``, stage it and apply the plan: the whole single-task load.

    :raises IngestError: on any failure; the target is then unchanged.
    """
    if (done := loader.already_loaded()) is not None:
        log.info("Load %s already committed %d rows; nothing to do.", loader.load_id, done)
        return LoadSummary(rows=done, skipped=True, peak_rss_mb=peak_rss_mb())
    specs, batches = _read(reader, query)
    return loader.load([loader.stage(batches, specs)])


def stage_part(
    loader: Loader, reader: ChunkReader, query: SourceQuery, key_column: str, part: int, parts: int
) -> StagedPart:
    """Stage key range ``part`` of ``parts`` of ``query.table`` (scale-out step, any worker).

    The ranges split ``[MIN(key_column), MAX(key_column)]`` evenly; the first and last are
    open-ended so every row belongs to exactly one part.

    :raises ValueError: when ``query`` has no table or ``part`` is out of range.
    """
    if query.table is None:
        raise ValueError("Splitting into key ranges needs source_table (not sql).")
    if not 0 <= part < parts:
        raise ValueError(f"part must be in [0, {parts}), got {part}")
    low, high = reader.key_bounds(query.table, key_column)
    key_range: tuple[Any, Any] | None = None
    if low is not None:
        key_range = split_key_range(int(low), int(high), parts)[part]
    elif part:  # an empty table: part 0 stages nothing, the others have nothing either
        key_range = (0, 0)
    ranged = SourceQuery(
        table=query.table,
        incremental_column=query.incremental_column,
        window=query.window,
        key_column=key_column,
        key_range=key_range,
    )
    specs, batches = _read(reader, ranged)
    log.info("Staging part %d/%d: %s in %s", part + 1, parts, key_column, key_range)
    return loader.stage(batches, specs, part)


def load_parts(loader: Loader, parts: Sequence[StagedPart | dict[str, Any]]) -> LoadSummary:
    """Load every staged part (one COPY each) and apply the plan once (scale-out final step).

    The files stay staged until the plan commits, so a retry of this step alone succeeds;
    they are then removed (the embedded warehouse cannot REMOVE: there they stay).
    """
    staged = [part if isinstance(part, StagedPart) else StagedPart(**part) for part in parts]
    return loader.load(sorted(staged, key=lambda part: part.part), keep_until_commit=True)
