"""CortexService: set-based Cortex enrichment inside Snowflake, and a small-batch API.

Set-based (:meth:`CortexService.enrich_table`): a run is at most four statements whatever the
number of rows — create the target if missing, count pending rows, one ``MERGE`` that calls the
function on the new or changed rows only (inside Snowflake, so the work scales on the warehouse,
not the worker), and read back the rows that failed. A run over unchanged rows sends nothing to
Cortex. Each statement is retried on transient errors; the MERGE is safe to retry because a row
already written has its new content hash and is no longer pending.

Small batch (:meth:`CortexService.enrich_texts`): texts held in Python go as bind parameters,
one ``SELECT`` per ``batch_size`` texts, identical texts sent once.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from airflow_provider_sophia.cortex.handlers import parse_result, run_with_retry
from airflow_provider_sophia.cortex.models import (
    CortexRequest,
    CortexResult,
    EnrichmentSummary,
    ErrorMode,
    RowError,
    ServiceConfig,
)
from airflow_provider_sophia.cortex.utils import (
    EnrichmentTables,
    Statement,
    batch_sql,
    content_hash,
    create_target_sql,
    input_limit_chars,
    merge_sql,
    pending_stats_sql,
    request_fingerprint,
    run_errors_sql,
    truncate,
)
from airflow_provider_sophia.exceptions import CortexPermanentError, CortexResultError

log = logging.getLogger(__name__)

#: returns a context manager yielding a DB-API connection to Snowflake (e.g. a pool's).
ConnectionFactory = Callable[[], AbstractContextManager[Any]]


class _Session:
    """One connection held across a run's statements, released and replaced after a failed attempt."""

    def __init__(self, connect: ConnectionFactory) -> None:
        self._connect = connect
        self._scope: contextlib.ExitStack | None = None
        self._connection: Any = None

    def execute(self, statement: Statement) -> list[tuple[Any, ...]]:
        """Execute and commit one statement; return its rows (none for DDL).

        The commit makes the write durable even on a connection someone left with autocommit off.
        """
        if self._scope is None:
            scope = contextlib.ExitStack()
            self._connection = scope.enter_context(self._connect())
            self._scope = scope
        try:
            cursor = self._connection.cursor()
            try:
                cursor.execute(statement.sql, statement.params or None)
                rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            finally:
                cursor.close()
            self._connection.commit()
            return rows
        except BaseException as error:
            self._release(error)
            raise

    def _release(self, error: BaseException | None = None) -> None:
        scope, self._scope, self._connection = self._scope, None, None
        if scope is not None:
            if error is None:
                scope.close()
            else:
                scope.__exit__(type(error), error, error.__traceback__)

    def close(self) -> None:
        """Release the connection."""
        self._release()


class CortexService:
    """Enrich text with Snowflake Cortex functions.

    :param connect: returns a context manager yielding a DB-API connection, e.g.
        ``SnowflakePoolHook(...).pooled_connection``.
    :param config: errors, retries and batching; the defaults report failed rows and retry
        transient errors up to four attempts per statement.
    :param sleep: waits between retries (tests pass a no-op).
    """

    def __init__(
        self,
        connect: ConnectionFactory,
        config: ServiceConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self.config = config or ServiceConfig()
        self._sleep = sleep

    def _execute(
        self, session: _Session, statement: Statement, what: str, summary: EnrichmentSummary | None = None
    ) -> list[tuple[Any, ...]]:
        rows, attempts = run_with_retry(
            lambda: session.execute(statement), self.config.retry, what=what, sleep=self._sleep
        )
        if summary is not None:
            summary.statements += 1
            summary.attempts += attempts
        return rows

    def enrich_table(
        self,
        request: CortexRequest,
        *,
        source_table: str,
        key_column: str,
        text_column: str,
        target_table: str,
        max_rows: int | None = None,
    ) -> EnrichmentSummary:
        """Write ``request``'s result for every new or changed source row into ``target_table``.

        Rows are new or changed when their content hash (function, options and text) differs
        from the target's; rows with a NULL text are ignored. ``key_column`` must be unique in
        the source (Snowflake rejects a MERGE with duplicate source keys).

        :param request: the function and its options (see ``build_request``).
        :param source_table: table (``db.schema.table`` allowed) holding the texts.
        :param key_column: the source's unique key; stored as VARCHAR in the target.
        :param text_column: the source's text column.
        :param target_table: table receiving the results; created when missing.
        :param max_rows: most rows sent to Cortex in this run (by key); the rest wait for the next.
        :raises InvalidIdentifierError: for an invalid table or column name, before any SQL.
        :raises CortexPermanentError: on a permanent error, or when rows failed and
            ``on_error`` is ``fail``.
        :raises CortexTransientError: when transient errors outlast the retry policy.
        """
        started = time.monotonic()
        tables = EnrichmentTables.of(source_table, key_column, text_column, target_table)
        run_id = uuid.uuid4().hex
        config = self.config
        create = create_target_sql(tables, request)
        stats = pending_stats_sql(tables, request, retry_failed_rows=config.retry_failed_rows)
        merge = merge_sql(
            tables,
            request,
            run_id=run_id,
            max_rows=max_rows,
            max_input_chars=config.max_input_chars,
            retry_failed_rows=config.retry_failed_rows,
        )
        failures = run_errors_sql(tables, run_id, config.max_reported_errors)
        summary = EnrichmentSummary(
            function=request.function.name, model=request.model, target_table=tables.target
        )
        session = _Session(self._connect)
        try:
            self._execute(session, create, f"CREATE TABLE IF NOT EXISTS {tables.target}", summary)
            total, pending = (
                int(value or 0) for value in self._execute(session, stats, "count pending rows", summary)[0]
            )
            summary.rows_skipped_unchanged = total - pending
            log.info(
                "%s into %s: %d source rows with text, %d new or changed, %d unchanged (run %s).",
                request.function.name,
                tables.target,
                total,
                pending,
                summary.rows_skipped_unchanged,
                run_id,
            )
            merged = 0
            if pending:
                counts = self._execute(
                    session, merge, f"MERGE {request.function.name} into {tables.target}", summary
                )
                merged = sum(int(value) for value in counts[0]) if counts else 0
                failed_rows = self._execute(session, failures, "read failed rows", summary)
                summary.rows_failed = int(failed_rows[0][2]) if failed_rows else 0
                summary.errors = [RowError(str(key), str(error)) for key, error, _ in failed_rows]
        finally:
            session.close()
        summary.rows_enriched = merged - summary.rows_failed
        summary.rows_deferred = pending - merged
        summary.seconds = round(time.monotonic() - started, 3)
        for row in summary.errors:
            log.warning("Row %r of %s failed: %s", row.key, tables.source, row.error)
        log.info(
            "%s into %s: %d enriched, %d failed, %d deferred (max_rows), %d unchanged; %d statements, %.2fs.",
            request.function.name,
            tables.target,
            summary.rows_enriched,
            summary.rows_failed,
            summary.rows_deferred,
            summary.rows_skipped_unchanged,
            summary.statements,
            summary.seconds,
        )
        if summary.rows_failed and config.on_error is ErrorMode.FAIL:
            keys = tuple(row.key for row in summary.errors)
            raise CortexPermanentError(
                f"{summary.rows_failed} row(s) of {tables.source} failed {request.function.name}, e.g. keys "
                f"{list(keys[:10])}; see {tables.target}.ERROR, or set on_error='report' to keep going.",
                keys,
            )
        return summary

    def enrich_texts(self, request: CortexRequest, texts: Mapping[str, str]) -> list[CortexResult]:
        """Run ``request`` on texts held in Python; return one result per key, in order.

        Texts are cut to the function's input limit and sent as bind parameters, one
        statement per ``batch_size`` texts; identical texts in a batch are sent once.

        :param request: the function and its options.
        :param texts: the texts by key.
        :raises CortexPermanentError: with the keys concerned, when ``on_error`` is ``fail``.
        :raises CortexTransientError: when transient errors outlast the retry policy.
        """
        config = self.config
        limit = input_limit_chars(request, config.max_input_chars)
        fingerprint = request_fingerprint(request)
        items = [(str(key), text) for key, text in texts.items()]
        results: list[CortexResult] = []
        session = _Session(self._connect)
        try:
            for start in range(0, len(items), config.batch_size):
                batch = items[start : start + config.batch_size]
                results.extend(self._enrich_batch(session, request, batch, limit, fingerprint))
        finally:
            session.close()
        return results

    def _enrich_batch(
        self,
        session: _Session,
        request: CortexRequest,
        batch: list[tuple[str, str]],
        limit: int,
        fingerprint: str,
    ) -> list[CortexResult]:
        unique = {content_hash(text, fingerprint): truncate(text, limit) for _, text in batch}
        statement = batch_sql(request, list(unique.values()))
        keys = tuple(key for key, _ in batch)
        try:
            rows = self._execute(session, statement, f"{request.function.name} over {len(unique)} text(s)")
        except CortexPermanentError as error:
            if self.config.on_error is ErrorMode.FAIL:
                raise CortexPermanentError(str(error), keys) from error
            log.warning("Batch of keys %s failed: %s", list(keys), error)
            return [CortexResult(key, error=str(error)) for key in keys]
        raw_by_hash = dict(zip(unique, (row[1] for row in rows), strict=True))
        results = []
        for key, text in batch:
            try:
                parsed = parse_result(request, raw_by_hash[content_hash(text, fingerprint)])
            except CortexResultError as error:
                if self.config.on_error is ErrorMode.FAIL:
                    raise CortexPermanentError(f"Key {key!r}: {error}", (key,)) from error
                log.warning("Key %r failed: %s", key, error)
                results.append(CortexResult(key, error=str(error)))
                continue
            results.append(CortexResult(key, parsed.value, parsed.usage))
        return results
