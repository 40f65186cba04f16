"""Land Gong records raw in Snowflake: windows, record ids, Arrow batches (no Airflow imports).

One landed row per record: ``ID``, the record as ``RECORD`` (VARIANT, staged as JSON
text), ``_EXTRACTED_AT``, ``_WINDOW_START`` / ``_WINDOW_END`` (NULL for users) and
``_CONTENT_HASH`` (SHA-256 of the record's canonical JSON, so key order does not matter).

Windows: the run's data interval, widened back by ``lookback`` for the streams whose
records arrive late (:data:`LATE_STREAMS`); explicit ``from_datetime`` / ``to_datetime``
replace the matching bound as given. Without either (a manual run has no data interval),
the window is the last ``lookback`` up to now. Users have no window.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from airflow_provider_sophia.exceptions import GongError, GongRateLimited, IngestError
from airflow_provider_sophia.gong.client import STREAMS, PageIterator, SlicedPages
from airflow_provider_sophia.identifiers import split_identifier
from airflow_provider_sophia.ingest.types import ColumnSpec, Kind, arrow_schema

log = logging.getLogger(__name__)

#: stream -> default landing table.
DEFAULT_TABLES = {
    "users": "GONG_USERS",
    "calls": "GONG_CALLS",
    "calls_extensive": "GONG_CALLS_EXTENSIVE",
    "transcripts": "GONG_TRANSCRIPTS",
}
#: streams whose records appear hours after the call started: their window is widened back.
LATE_STREAMS = frozenset({"calls_extensive", "transcripts"})
#: streams fetched without a date window.
UNWINDOWED_STREAMS = frozenset({"users"})
#: stream -> path of the record id inside a record.
ID_PATHS: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "calls": ("id",),
    "calls_extensive": ("metaData", "id"),
    "transcripts": ("callId",),
}
#: values a template renders for "not given" (``{{ dag_run.conf.get('x') }}`` renders ``None``).
UNSET_TEXT = frozenset({"", "none", "null"})

ID, RECORD, EXTRACTED_AT, WINDOW_START, WINDOW_END, CONTENT_HASH = (
    "ID",
    "RECORD",
    "_EXTRACTED_AT",
    "_WINDOW_START",
    "_WINDOW_END",
    "_CONTENT_HASH",
)
#: the landed columns, in staged order.
COLUMNS = (
    ColumnSpec(ID, Kind.TEXT, "gong record id"),
    ColumnSpec(RECORD, Kind.JSON, "gong record"),
    ColumnSpec(EXTRACTED_AT, Kind.TIMESTAMP_TZ, "extraction time"),
    ColumnSpec(WINDOW_START, Kind.TIMESTAMP_TZ, "window start"),
    ColumnSpec(WINDOW_END, Kind.TIMESTAMP_TZ, "window end"),
    ColumnSpec(CONTENT_HASH, Kind.TEXT, "sha-256 of the canonical record"),
)
SCHEMA = arrow_schema(COLUMNS)


def check_stream(stream: str) -> str:
    """Return ``stream`` when it is a Gong stream.

    :raises ValueError: naming the valid streams otherwise.
    """
    if stream not in STREAMS:
        raise ValueError(f"Unknown Gong stream {stream!r}; use one of {sorted(STREAMS)}.")
    return stream


def target_table(stream_or_table: str) -> str:
    """Return the landing table of a stream (``calls`` -> ``GONG_CALLS``), or a table name as given.

    :raises InvalidIdentifierError: when a table name is not a valid identifier.
    """
    table = DEFAULT_TABLES.get(stream_or_table, stream_or_table)
    split_identifier(table)
    return table


def parse_moment(value: Any, name: str) -> datetime | None:
    """Return ``value`` as an aware UTC datetime; ``None``, ``""`` and ``"None"`` mean not given.

    Accepts datetimes (naive ones are UTC), dates and ISO-8601 strings such as
    ``2024-01-16``, ``2024-01-16T08:00:00Z`` or ``2024-01-16T08:00:00+02:00``.

    :param value: the value to parse.
    :param name: the parameter's name, for the error message.
    :raises ValueError: when a string is not ISO-8601, or the type is not a date-time.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in UNSET_TEXT):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{name}={value!r} is not an ISO-8601 date-time; use e.g. '2024-01-16' or "
                "'2024-01-16T08:00:00+00:00'."
            ) from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise ValueError(f"{name}={value!r} is a {type(value).__name__}, not a date-time or ISO-8601 text.")
    moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        utc = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{name}={value!r} is outside the range of UTC date-times.") from None
    return datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    """The half-open range ``[start, end)`` of call start times one load fetches.

    :param start: inclusive lower bound (UTC).
    :param end: exclusive upper bound (UTC).
    :param source: how it was chosen, for the log.
    """

    start: datetime
    end: datetime
    source: str = "given"

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-able form (deferral kwargs)."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, str] | None) -> Window | None:
        """Rebuild a window from :meth:`to_dict` output (``None`` stays ``None``)."""
        if data is None:
            return None
        start, end = parse_moment(data["start"], "start"), parse_moment(data["end"], "end")
        if start is None or end is None:
            raise ValueError(f"A saved window needs a start and an end, got {dict(data)!r}.")
        return cls(start, end, data.get("source", "given"))


def resolve_window(
    stream: str,
    *,
    interval_start: Any,
    interval_end: Any,
    from_datetime: Any = None,
    to_datetime: Any = None,
    lookback: timedelta = timedelta(days=3),
    now: datetime | None = None,
) -> Window | None:
    """Return the window ``stream`` fetches, or ``None`` for an unwindowed stream (users).

    :param stream: the Gong stream.
    :param interval_start: the run's data interval start (``None``, or equal to the end, on a
        manual run: then there is no interval).
    :param interval_end: the run's data interval end.
    :param from_datetime: explicit start, replacing the interval's (UI-triggered backfills).
    :param to_datetime: explicit end, replacing the interval's.
    :param lookback: how far late streams reach back before the interval start; also the
        span of the window when there is no interval and no explicit start.
    :param now: the current time (the end when there is neither an interval nor ``to_datetime``).
    :raises ValueError: for an unknown stream, a negative lookback, a bound that does not
        parse, or a window whose start is not before its end.
    """
    check_stream(stream)
    if not isinstance(lookback, timedelta) or lookback < timedelta(0):
        raise ValueError(f"lookback must be a non-negative timedelta, got {lookback!r}.")
    start = parse_moment(from_datetime, "from_datetime")
    end = parse_moment(to_datetime, "to_datetime")
    if stream in UNWINDOWED_STREAMS:
        return None
    interval_from = parse_moment(interval_start, "data_interval_start")
    interval_to = parse_moment(interval_end, "data_interval_end")
    if interval_from is not None and interval_to is not None and interval_from >= interval_to:
        # Airflow 3 gives a manual run a zero-width interval at its trigger time: no interval.
        interval_from = interval_to = None
    if end is not None:
        end_source = "to_datetime"
    elif interval_to is not None:
        end, end_source = interval_to, "data interval end"
    else:
        end, end_source = parse_moment(now, "now") or datetime.now(timezone.utc), "now (no data interval)"
    if start is not None:
        start_source = "from_datetime"
    elif interval_from is not None:
        widen = lookback if stream in LATE_STREAMS else timedelta(0)
        start = _earlier(interval_from, widen)
        start_source = "data interval start" + (f" - lookback {widen}" if widen else "")
    else:
        start, start_source = _earlier(end, lookback), f"end - lookback {lookback} (no data interval)"
    if start >= end:
        raise ValueError(
            f"The window of stream {stream!r} is empty: start {start.isoformat()} is not before end "
            f"{end.isoformat()}; check from_datetime / to_datetime."
        )
    return Window(start, end, f"{start_source} .. {end_source}")


def _earlier(moment: datetime, span: timedelta) -> datetime:
    """Return ``moment - span``, or raise :class:`ValueError` when that is before year 1."""
    try:
        return moment - span
    except OverflowError:
        raise ValueError(
            f"The window start {moment.isoformat()} minus lookback {span} is before year 1; "
            "use a smaller lookback or a later from_datetime."
        ) from None


def record_id(stream: str, record: Mapping[str, Any]) -> str:
    """Return the id of one record (``metaData.id`` of an extensive call, ``callId`` of a transcript).

    :raises GongError: when the record has no id where its stream keeps it.
    """
    value: Any = record
    for key in ID_PATHS[stream]:
        value = value.get(key) if isinstance(value, Mapping) else None
    if value in (None, ""):
        raise GongError(
            f"A Gong {stream} record has no {'.'.join(ID_PATHS[stream])}: {json.dumps(record)[:200]}; "
            "Gong's response format changed or the record is malformed."
        )
    return str(value)


def canonical_json(record: Mapping[str, Any]) -> str:
    """Return the record as compact JSON with sorted keys (the text that is hashed and landed)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(text: str) -> str:
    """Return the SHA-256 hex digest of a record's canonical JSON."""
    return hashlib.sha256(text.encode()).hexdigest()


def records_to_batch(
    stream: str, records: list[dict[str, Any]], extracted_at: datetime, window: Window | None
) -> pa.RecordBatch:
    """Turn records of ``stream`` into a batch of :data:`SCHEMA` (one row per record).

    :param stream: the Gong stream the records come from.
    :param records: the records.
    :param extracted_at: when they were fetched (aware).
    :param window: the window they were fetched for, ``None`` for users.
    """
    texts = [canonical_json(record) for record in records]
    count = len(records)
    timestamp = SCHEMA.field(EXTRACTED_AT).type
    arrays = [
        pa.array([record_id(stream, record) for record in records], pa.string()),
        pa.array(texts, pa.string()),
        pa.array([extracted_at] * count, timestamp),
        pa.array([window.start if window else None] * count, timestamp),
        pa.array([window.end if window else None] * count, timestamp),
        pa.array([content_hash(text) for text in texts], pa.string()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


class PageBatches:
    """Arrow batches from the pages of one stream, remembering where to resume.

    Iterating fetches page after page and yields a batch each ``rows_per_batch`` records
    (and the rest at the end), so memory holds about one batch. A :class:`GongRateLimited`
    (the daily quota) ends the iteration early, keeping what was fetched: ``rate_limited``
    then holds the error and ``resume_point`` tells where to continue.

    :param pages: the client's pages (``client.iter_pages(...)`` or ``client.iter_pages_parallel(...)``).
    :param window: the window the pages were requested for (``None`` for users).
    :param extracted_at: the extraction time stamped on every row; now when ``None``.
    :param rows_per_batch: records per yielded batch.
    :param progress_every: log progress every this many pages.
    :param stop: set it to stop before the next page (iteration then raises :class:`IngestError`).
    """

    def __init__(
        self,
        pages: PageIterator | SlicedPages,
        window: Window | None,
        *,
        extracted_at: datetime | None = None,
        rows_per_batch: int = 1000,
        progress_every: int = 10,
        stop: threading.Event | None = None,
    ) -> None:
        if rows_per_batch < 1:
            raise ValueError(f"rows_per_batch must be at least 1, got {rows_per_batch!r}.")
        self.pages = pages
        self.window = window
        self.extracted_at = extracted_at or datetime.now(timezone.utc)
        self.rows_per_batch = rows_per_batch
        self.progress_every = max(progress_every, 1)
        self.stop = stop or threading.Event()
        self.rate_limited: GongRateLimited | None = None
        self.records = 0

    @property
    def stream(self) -> str:
        """The stream being fetched."""
        return self.pages.stream

    @property
    def resume_point(self) -> dict[str, Any]:
        """The client arguments that continue with the next page (see ``pages.resume_point()``)."""
        return self.pages.resume_point()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        started = time.monotonic()
        buffer: list[dict[str, Any]] = []
        while True:
            if self.stop.is_set():
                raise IngestError(
                    f"Fetching Gong {self.stream} was stopped after {self.pages.pages} pages; "
                    "nothing of this run was landed."
                )
            try:
                page = next(self.pages)
            except StopIteration:
                break
            except GongRateLimited as error:
                self.rate_limited = error
                log.warning(
                    "Gong %s: quota spent after %d pages (%d records); stopping.",
                    self.stream,
                    self.pages.pages,
                    self.records + len(buffer),
                )
                break
            buffer.extend(page.records)
            if self.pages.pages % self.progress_every == 0:
                self._log_progress(started, len(buffer))
            if len(buffer) >= self.rows_per_batch:
                yield self._flush(buffer)
                buffer = []
        if buffer:
            yield self._flush(buffer)
        self._log_progress(started, 0)

    def _flush(self, records: list[dict[str, Any]]) -> pa.RecordBatch:
        self.records += len(records)
        return records_to_batch(self.stream, records, self.extracted_at, self.window)

    def _log_progress(self, started: float, buffered: int) -> None:
        records = self.records + buffered
        log.info(
            "Gong %s: %d pages, %d records (%.0f records/s)%s",
            self.stream,
            self.pages.pages,
            records,
            records / max(time.monotonic() - started, 1e-9),
            "" if self.pages.done else ", more to fetch",
        )
