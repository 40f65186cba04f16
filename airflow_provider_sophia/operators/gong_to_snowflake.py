"""GongToSnowflakeOperator: incremental, idempotent Gong ingestion into raw VARIANT tables.

Schedule a downstream DAG on the landed table with the same :func:`gong_asset` call::

    land = GongToSnowflakeOperator(task_id="land_calls", stream="calls")  # outlet: gong_asset("calls")

    @dag(schedule=[gong_asset("calls")])
    def model_calls(): ...
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import Asset, BaseOperator

from airflow_provider_sophia.exceptions import GongRateLimited
from airflow_provider_sophia.gong.client import PageIterator, SlicedPages
from airflow_provider_sophia.gong.landing import (
    COLUMNS,
    CONTENT_HASH,
    EXTRACTED_AT,
    ID,
    PageBatches,
    Window,
    check_stream,
    resolve_window,
    target_table,
)
from airflow_provider_sophia.hooks.gong import GongHook
from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.identifiers import normalize_part, split_identifier
from airflow_provider_sophia.ingest.pipeline import Loader
from airflow_provider_sophia.ingest.plans import LoadPlan
from airflow_provider_sophia.operators._staging import staged_loader

if TYPE_CHECKING:
    from airflow.sdk import Context

#: URI scheme of the assets of landing tables named without a Snowflake account.
ASSET_SCHEME = "x-sophia-snowflake"
COUNTERS = ("records", "pages", "requests", "retries")


def gong_asset(
    stream_or_table: str,
    *,
    snowflake_conn_id: str = "snowflake_default",
    account: str | None = None,
    database: str | None = None,
    schema: str | None = None,
) -> Asset:
    """Return the Asset of a Gong landing table: the same for the producing and consuming DAGs.

    Without ``account`` the URI is ``x-sophia-snowflake://<snowflake_conn_id>/<TABLE>`` (the
    table as written, e.g. ``GONG_CALLS`` or ``RAW/GONG_CALLS``); with ``account`` it is the
    Snowflake provider's ``snowflake://<account>/<DATABASE>/<SCHEMA>/<TABLE>``, whose database
    and schema come from a qualified table name or from ``database`` / ``schema``.

    :param stream_or_table: a stream (``calls`` -> ``GONG_CALLS``) or a table name.
    :param snowflake_conn_id: the Snowflake connection the table lives behind.
    :param account: the Snowflake account identifier, for a ``snowflake://`` URI.
    :param database: database of an unqualified table (with ``account``).
    :param schema: schema of a table without one (with ``account``).
    :raises ValueError: when ``account`` is given but the database or schema is unknown.
    """
    parts = split_identifier(target_table(stream_or_table))
    if account is None:
        return Asset(
            uri=f"{ASSET_SCHEME}://{snowflake_conn_id}/" + "/".join(quote(part, safe="") for part in parts)
        )
    namespace = [database, schema][: 3 - len(parts)]
    if not all(namespace):
        raise ValueError(
            f"A snowflake:// asset of {stream_or_table!r} needs its database and schema: qualify the "
            "table (DB.SCHEMA.TABLE) or pass database= and schema=."
        )
    qualified = [normalize_part(str(part)) for part in namespace] + parts
    return Asset(uri=f"snowflake://{account}/" + "/".join(quote(part, safe="") for part in qualified))


class GongToSnowflakeOperator(BaseOperator):
    """Land one Gong stream in a Snowflake table, one VARIANT row per record, page by page.

    Rows: ``ID``, ``RECORD`` (VARIANT), ``_EXTRACTED_AT``, ``_WINDOW_START``, ``_WINDOW_END``,
    ``_CONTENT_HASH``. ``merge`` upserts on ``ID``: a record whose hash changed is rewritten
    with the newest extraction, an unchanged one is left as it is (its ``_EXTRACTED_AT`` is
    when that version was first seen). ``append`` keeps every extraction (dedupe on ``ID``,
    latest ``_EXTRACTED_AT``); ``replace`` leaves exactly the last extraction.

    Window (call start times, ``[start, end)``): the run's data interval, its start moved back
    by ``lookback`` for ``transcripts`` and ``calls_extensive`` (they arrive hours late);
    ``from_datetime`` / ``to_datetime`` replace a bound as given. A run without a data interval
    (a manual trigger) and without them fetches the last ``lookback`` up to now. ``users``
    has no window.

    The daily quota (:class:`GongRateLimited`): what was fetched is landed, then the task
    fails saying when the quota resets (UTC), or with ``defer_on_quota=True`` it defers until
    then and resumes at the page where it stopped (later parts of a ``replace`` are appended).

    :param gong_conn_id: the Gong connection.
    :param snowflake_conn_id: the Snowflake connection (connections come from its pool).
    :param stream: ``users``, ``calls``, ``calls_extensive`` or ``transcripts``.
    :param target_table: the landing table (``db.schema.table`` allowed); ``GONG_<STREAM>``
        when ``None``. Templated.
    :param from_datetime: start of the window (ISO-8601 text or datetime); templated, e.g.
        ``"{{ dag_run.conf.get('from_datetime') }}"`` (a rendered ``None`` or ``""`` is not given).
    :param to_datetime: end of the window (exclusive). Templated.
    :param lookback: how far late streams reach back before the interval start.
    :param mode: ``merge``, ``append`` or ``replace``.
    :param defer_on_quota: defer until the quota resets instead of failing.
    :param slices: time slices of the window fetched at once (see
        :meth:`GongClient.iter_pages_parallel`); 1 pages one cursor stream. Slicing fills the
        time one stream spends in backoff or waiting for slow pages; ``users`` is never sliced.
    :param content_selector: Gong's ``contentSelector`` for ``calls_extensive``.
    :param rows_per_batch: records per staged Arrow batch (bounds memory).
    :param progress_every: log progress every this many pages.
    :param file_size_mb: staged file roll size; ``[sophia] ingest_file_size_mb`` when ``None``.
    :param upload_parallelism: uploads at once; ``[sophia] ingest_upload_parallelism`` when ``None``.
    :param client_kwargs: :class:`GongClient` settings overriding the connection's extras, e.g.
        ``{"rate_limit_per_second": 1.0}`` when several tasks share Gong's 3 requests/s.
    :param kwargs: :class:`BaseOperator` arguments; ``outlets`` defaults to the table's
        :func:`gong_asset` (none when ``target_table`` is a template).
    """

    template_fields: Sequence[str] = ("target_table", "from_datetime", "to_datetime")
    ui_color = "#ede9fe"

    def __init__(
        self,
        *,
        gong_conn_id: str = "gong_default",
        snowflake_conn_id: str = "snowflake_default",
        stream: str,
        target_table: str | None = None,
        from_datetime: datetime | str | None = None,
        to_datetime: datetime | str | None = None,
        lookback: timedelta = timedelta(days=3),
        mode: str = "merge",
        defer_on_quota: bool = False,
        slices: int = 1,
        content_selector: dict[str, Any] | None = None,
        rows_per_batch: int = 1000,
        progress_every: int = 10,
        file_size_mb: float | None = None,
        upload_parallelism: int | None = None,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "{{" not in (target_table or ""):
            kwargs["outlets"] = [gong_asset(target_table or stream, snowflake_conn_id=snowflake_conn_id)]
        if slices < 1:
            raise ValueError(f"slices must be at least 1, got {slices!r}.")
        super().__init__(**kwargs)
        self.gong_conn_id = gong_conn_id
        self.snowflake_conn_id = snowflake_conn_id
        self.stream = stream
        self.target_table = target_table
        self.from_datetime = from_datetime
        self.to_datetime = to_datetime
        self.lookback = lookback
        self.mode = mode
        self.defer_on_quota = defer_on_quota
        self.slices = slices
        self.content_selector = content_selector
        self.rows_per_batch = rows_per_batch
        self.progress_every = progress_every
        self.file_size_mb = file_size_mb
        self.upload_parallelism = upload_parallelism
        self.client_kwargs = client_kwargs or {}
        self._stop: threading.Event | None = None
        self._loader: Loader | None = None

    @cached_property
    def gong_hook(self) -> GongHook:
        """The Gong hook."""
        return GongHook(gong_conn_id=self.gong_conn_id, **self.client_kwargs)

    @cached_property
    def snowflake_hook(self) -> SnowflakePoolHook:
        """The pooled Snowflake hook."""
        return SnowflakePoolHook(snowflake_conn_id=self.snowflake_conn_id)

    @property
    def table(self) -> str:
        """The landing table (after templating)."""
        return target_table(self.target_table or check_stream(self.stream))

    def execute(self, context: Context) -> dict[str, Any]:
        """Fetch the stream's window and land it; return the summary."""
        window = resolve_window(
            check_stream(self.stream),
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
            from_datetime=self.from_datetime,
            to_datetime=self.to_datetime,
            lookback=self.lookback,
        )
        if window is None:
            self.log.info("Gong %s: no window (every record) -> %s.", self.stream, self.table)
        else:
            self.log.info(
                "Gong %s: window %s .. %s (%s) -> %s.",
                self.stream,
                window.start.isoformat(),
                window.end.isoformat(),
                window.source,
                self.table,
            )
        return self._extract_and_land(context, window, resume_point={}, part=0, totals={})

    def resume_after_quota(
        self,
        context: Context,
        event: Any = None,
        *,
        window: dict[str, str] | None,
        part: int,
        totals: dict[str, float],
        **resume_point: Any,
    ) -> dict[str, Any]:
        """Continue after the quota reset from the page where the previous part stopped.

        :param context: the task context.
        :param event: the trigger's event (the reset time).
        :param window: the window being fetched (:meth:`Window.to_dict`).
        :param part: the number of this part of the extraction.
        :param totals: the counters of the earlier parts.
        :param resume_point: where the pages continue: ``cursor`` and ``batch`` of one stream,
            or ``resume`` (each slice's window and cursor) of time slices.
        """
        self.log.info(
            "Gong %s: quota reset (%s); resuming part %d where it stopped.", self.stream, event, part
        )
        return self._extract_and_land(context, Window.from_dict(window), resume_point, part, totals)

    def on_kill(self) -> None:
        """Stop before the next page and cancel staging; nothing of the current part is landed."""
        if self._stop is not None:
            self._stop.set()
        if self._loader is not None:
            self._loader.cancel()

    def _extract_and_land(
        self,
        context: Context,
        window: Window | None,
        resume_point: dict[str, Any],
        part: int,
        totals: dict[str, float],
    ) -> dict[str, Any]:
        started = time.monotonic()
        client = self.gong_hook.get_client()
        before = client.stats()
        self._stop = threading.Event()
        start, end = (window.start, window.end) if window else (None, None)
        pages: PageIterator | SlicedPages
        if self.slices > 1 and window is not None:
            pages = client.iter_pages_parallel(
                self.stream,
                start,
                end,
                slices=self.slices,
                content_selector=self.content_selector,
                **resume_point,
            )
        else:
            pages = client.iter_pages(
                self.stream, start, end, content_selector=self.content_selector, **resume_point
            )
        extraction = PageBatches(
            pages,
            window,
            rows_per_batch=self.rows_per_batch,
            progress_every=self.progress_every,
            stop=self._stop,
        )
        try:
            self._land(context, extraction, part)
        finally:
            pages.close()
            client.close()
        after = client.stats()
        counts = {
            "records": extraction.records,
            "pages": pages.pages,
            "requests": after.requests - before.requests,
            "retries": after.retries - before.retries,
        }
        totals = {name: int(totals.get(name, 0)) + counts[name] for name in COUNTERS} | {
            "seconds": round(float(totals.get("seconds", 0.0)) + time.monotonic() - started, 3)
        }
        if extraction.rate_limited is not None:
            self._pause(extraction, extraction.rate_limited, window, part, totals)
        result: dict[str, Any] = {
            "stream": self.stream,
            **totals,
            "target_table": self.table,
            "window_start": window.start.isoformat() if window else None,
            "window_end": window.end.isoformat() if window else None,
            "parts": part + 1,
        }
        self.log.info("Gong %s landed in %s: %s", self.stream, self.table, result)
        return result

    def _land(self, context: Context, extraction: PageBatches, part: int) -> None:
        """Stage the extraction's batches and apply the load plan in one transaction."""
        plan = LoadPlan(
            target=self.table,
            mode="append" if self.mode == "replace" and part else self.mode,
            merge_keys=(ID,),
            incremental_column=EXTRACTED_AT,
            compare_columns=(CONTENT_HASH,),
        )
        ti = context["ti"]
        load_id = f"{ti.dag_id}.{ti.task_id}.{context['run_id']}.{ti.map_index}.{part}"
        with staged_loader(
            self.snowflake_hook,
            plan,
            load_id,
            file_size_mb=self.file_size_mb,
            upload_parallelism=self.upload_parallelism,
        ) as self._loader:
            try:
                summary = self._loader.load([self._loader.stage(extraction, COLUMNS)])
            finally:
                self._loader = None
        self.log.info(
            "Gong %s part %d: %d rows staged and applied (%s).", self.stream, part, summary.rows, plan.mode
        )

    def _pause(
        self,
        extraction: PageBatches,
        error: GongRateLimited,
        window: Window | None,
        part: int,
        totals: dict[str, float],
    ) -> None:
        """Defer until the quota resets (``defer_on_quota``), else fail saying when it resets."""
        resets_at = datetime.now(timezone.utc) + timedelta(seconds=error.retry_after)
        when = resets_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        if self.defer_on_quota:
            self.log.warning(
                "Gong %s: the API quota is spent after %d records; deferring until it resets at %s.",
                self.stream,
                totals["records"],
                when,
            )
            self.defer(
                trigger=DateTimeTrigger(moment=resets_at),
                method_name=self.resume_after_quota.__name__,
                kwargs={
                    "window": window.to_dict() if window else None,
                    "part": part + 1,
                    "totals": totals,
                    **extraction.resume_point,
                },
            )
        raise GongRateLimited(
            f"Gong's API quota is spent while fetching stream {self.stream!r} (Gong asked to wait "
            f"{error.retry_after:.0f}s); it resets at {when}. The {totals['records']} records fetched "
            f"before were landed in {self.table}. Clear the task after {when} (it fetches the window "
            "again), or set defer_on_quota=True to wait and resume from the page where it stopped.",
            error.retry_after,
        ) from error
