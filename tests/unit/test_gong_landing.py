"""Gong landing core: windows, record ids, Arrow batches, content hashes, date parsing; the Asset helper."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pendulum
import pyarrow as pa
import pytest

from airflow_provider_sophia.exceptions import GongError, GongRateLimited, IngestError
from airflow_provider_sophia.gong.landing import (
    COLUMNS,
    SCHEMA,
    PageBatches,
    Window,
    canonical_json,
    content_hash,
    parse_moment,
    record_id,
    records_to_batch,
    resolve_window,
    target_table,
)

UTC = timezone.utc
START, END = datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 11, tzinfo=UTC)
LOOKBACK = timedelta(days=3)


def window(stream: str, **overrides: Any) -> Window | None:
    arguments: dict[str, Any] = {"interval_start": START, "interval_end": END, "lookback": LOOKBACK}
    return resolve_window(stream, **(arguments | overrides))


# --- windows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "start"),
    [("calls", START), ("calls_extensive", START - LOOKBACK), ("transcripts", START - LOOKBACK)],
)
def test_data_interval_is_widened_back_only_for_late_streams(stream: str, start: datetime) -> None:
    result = window(stream)
    assert result is not None
    assert (result.start, result.end) == (start, END)
    assert "data interval" in result.source


def test_users_have_no_window() -> None:
    assert window("users") is None


def test_explicit_bounds_replace_the_interval_as_given() -> None:
    result = window("transcripts", from_datetime="2024-01-01", to_datetime="2024-01-16T00:00:00Z")
    assert result is not None
    assert result == Window(
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 16, tzinfo=UTC), result.source
    )
    assert result.source == "from_datetime .. to_datetime"
    only_end = window("transcripts", to_datetime="2024-01-12T00:00:00+02:00")
    assert only_end is not None
    assert (only_end.start, only_end.end) == (START - LOOKBACK, datetime(2024, 1, 11, 22, tzinfo=UTC))


@pytest.mark.parametrize("unset", [None, "", "None", " null "])
def test_rendered_empty_templates_mean_not_given(unset: str | None) -> None:
    result = window("calls", from_datetime=unset, to_datetime=unset)
    assert result is not None
    assert (result.start, result.end) == (START, END)


def test_manual_run_without_interval_falls_back_to_the_last_lookback() -> None:
    now = datetime(2024, 3, 1, 12, tzinfo=UTC)
    result = resolve_window("calls", interval_start=None, interval_end=None, lookback=LOOKBACK, now=now)
    assert result is not None
    assert (result.start, result.end) == (now - LOOKBACK, now)
    assert "no data interval" in result.source
    from_only = resolve_window(
        "transcripts", interval_start=None, interval_end=None, from_datetime="2024-02-01", now=now
    )
    assert from_only is not None
    assert (from_only.start, from_only.end) == (datetime(2024, 2, 1, tzinfo=UTC), now)


def test_zero_width_interval_of_a_manual_airflow_3_run_counts_as_no_interval() -> None:
    now = datetime(2024, 3, 1, 12, tzinfo=UTC)
    result = resolve_window("calls", interval_start=now, interval_end=now, lookback=LOOKBACK, now=now)
    assert result is not None
    assert (result.start, result.end) == (now - LOOKBACK, now)
    assert "no data interval" in result.source


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"from_datetime": "yesterday"}, r"from_datetime='yesterday' is not an ISO-8601 date-time"),
        ({"to_datetime": "2024-13-01"}, r"to_datetime='2024-13-01' is not an ISO-8601"),
        ({"from_datetime": 1704067200}, r"from_datetime=1704067200 is a int"),
        ({"from_datetime": "2024-01-11", "to_datetime": "2024-01-11"}, r"is empty: start 2024-01-11"),
        ({"lookback": timedelta(hours=-1)}, r"lookback must be a non-negative timedelta"),
        ({"lookback": 3}, r"lookback must be a non-negative timedelta"),
    ],
)
def test_bad_bounds_raise_a_clear_value_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        window("calls", **overrides)


def test_unknown_stream_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Unknown Gong stream 'meetings'"):
        window("meetings")


def test_parse_moment_normalises_every_form_to_aware_utc() -> None:
    expected = datetime(2024, 1, 16, 6, tzinfo=UTC)
    forms = [
        "2024-01-16T06:00:00Z",
        "2024-01-16T08:00:00+02:00",
        "2024-01-16 06:00:00",
        datetime(2024, 1, 16, 6),
        pendulum.datetime(2024, 1, 16, 8, tz="Europe/Berlin").add(hours=-1),
    ]
    for form in forms:
        moment = parse_moment(form, "x")
        assert moment == expected, form
        assert type(moment) is datetime
        assert moment.tzinfo is UTC
    assert parse_moment(date(2024, 1, 16), "x") == datetime(2024, 1, 16, tzinfo=UTC)


def test_window_round_trips_through_json() -> None:
    original = window("transcripts")
    assert original is not None
    restored = Window.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert Window.from_dict(None) is None


# --- records, hashes, batches -------------------------------------------------------


def test_record_ids_per_stream() -> None:
    assert record_id("users", {"id": "1"}) == "1"
    assert record_id("calls", {"id": 27}) == "27"
    assert record_id("calls_extensive", {"metaData": {"id": "2"}, "parties": []}) == "2"
    assert record_id("transcripts", {"callId": "3", "transcript": []}) == "3"
    with pytest.raises(GongError, match=r"transcripts record has no callId"):
        record_id("transcripts", {"id": "3"})
    with pytest.raises(GongError, match=r"has no metaData.id"):
        record_id("calls_extensive", {"metaData": None})


def test_content_hash_ignores_key_order_and_sees_any_change() -> None:
    one = {"id": "1", "title": "Pricing", "parties": [{"a": 1, "b": 2}]}
    reordered = {"parties": [{"b": 2, "a": 1}], "title": "Pricing", "id": "1"}
    assert canonical_json(one) == canonical_json(reordered)
    assert content_hash(canonical_json(one)) == content_hash(canonical_json(reordered))
    changed = one | {"title": "Pricing!"}
    assert content_hash(canonical_json(one)) != content_hash(canonical_json(changed))
    assert content_hash("{}") == hashlib.sha256(b"{}").hexdigest()


def test_records_to_batch_has_one_row_per_record_with_metadata() -> None:
    records: list[dict[str, Any]] = [
        {"callId": "1", "transcript": [{"text": "héllo"}]},
        {"callId": "2", "transcript": []},
    ]
    extracted = datetime(2024, 2, 1, tzinfo=UTC)
    landed = window("transcripts")
    batch = records_to_batch("transcripts", records, extracted, landed)
    assert batch.schema == SCHEMA
    assert [field.name for field in SCHEMA] == [spec.target for spec in COLUMNS]
    rows = batch.to_pylist()
    assert [row["ID"] for row in rows] == ["1", "2"]
    assert [json.loads(row["RECORD"]) for row in rows] == records
    assert "héllo" in rows[0]["RECORD"]
    assert {row["_EXTRACTED_AT"] for row in rows} == {extracted}
    assert landed is not None
    assert {(row["_WINDOW_START"], row["_WINDOW_END"]) for row in rows} == {(landed.start, landed.end)}
    assert rows[0]["_CONTENT_HASH"] == content_hash(canonical_json(records[0]))


def test_users_batch_has_null_window() -> None:
    batch = records_to_batch("users", [{"id": "9"}], datetime(2024, 2, 1, tzinfo=UTC), None)
    assert batch.column("_WINDOW_START").null_count == batch.column("_WINDOW_END").null_count == 1


def test_default_target_tables() -> None:
    assert [target_table(s) for s in ("users", "calls", "calls_extensive", "transcripts")] == [
        "GONG_USERS",
        "GONG_CALLS",
        "GONG_CALLS_EXTENSIVE",
        "GONG_TRANSCRIPTS",
    ]
    assert target_table("raw.gong.my_calls") == "raw.gong.my_calls"


# --- page batching --------------------------------------------------------------------


class FakePages:
    """A stand-in for the client's PageIterator: pages of ids, optionally a quota error at one page."""

    def __init__(self, pages: list[list[str]], quota_at: int | None = None) -> None:
        self.stream = "calls"
        self._pages = pages
        self.quota_at = quota_at
        self.pages = 0
        self.cursor: str | None = None
        self.batch = 0
        self.done = False

    def __next__(self) -> Any:
        if self.pages == self.quota_at:
            raise GongRateLimited("quota", 3600.0)
        if self.pages >= len(self._pages):
            self.done = True
            raise StopIteration
        page = type("Page", (), {"records": [{"id": value} for value in self._pages[self.pages]]})
        self.pages += 1
        self.cursor = f"c{self.pages}"
        return page

    def resume_point(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "batch": self.batch}


def batches_of(pages: FakePages, **kwargs: Any) -> tuple[PageBatches, list[pa.RecordBatch]]:
    extraction = PageBatches(pages, window("calls"), **kwargs)  # type: ignore[arg-type]
    return extraction, list(extraction)


def test_pages_are_grouped_into_batches_of_bounded_size() -> None:
    extraction, batches = batches_of(FakePages([["1", "2"], ["3", "4"], ["5"]]), rows_per_batch=3)
    assert [batch.num_rows for batch in batches] == [4, 1]
    assert extraction.records == 5
    assert extraction.rate_limited is None


def test_quota_ends_the_batches_keeping_what_was_fetched_and_where_to_resume() -> None:
    extraction, batches = batches_of(FakePages([["1"], ["2"], ["3"]], quota_at=2))
    assert sum(batch.num_rows for batch in batches) == extraction.records == 2
    assert isinstance(extraction.rate_limited, GongRateLimited)
    assert extraction.resume_point == {"cursor": "c2", "batch": 0}


def test_stop_raises_before_the_next_page() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(IngestError, match=r"stopped after 0 pages"):
        batches_of(FakePages([["1"]]), stop=stop)


def test_rows_per_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"rows_per_batch must be at least 1"):
        batches_of(FakePages([]), rows_per_batch=0)


# --- the Asset helper ------------------------------------------------------------------


def test_gong_asset_is_the_same_for_producer_and_consumer() -> None:
    from airflow.sdk import Asset

    from airflow_provider_sophia.operators.gong_to_snowflake import GongToSnowflakeOperator, gong_asset

    assert (
        gong_asset("calls")
        == gong_asset("GONG_CALLS")
        == Asset(uri="x-sophia-snowflake://snowflake_default/GONG_CALLS")
    )
    assert gong_asset("raw.my_calls", snowflake_conn_id="wh").uri == "x-sophia-snowflake://wh/RAW/MY_CALLS"
    operator = GongToSnowflakeOperator(task_id="land", stream="transcripts")
    assert operator.outlets == [gong_asset("transcripts")]
    templated = GongToSnowflakeOperator(task_id="t", stream="calls", target_table="{{ params.table }}")
    assert templated.outlets == []
    assert (
        gong_asset("calls", account="acme-eu", database="raw", schema="gong").uri
        == "snowflake://acme-eu/RAW/GONG/GONG_CALLS"
    )
    assert gong_asset("db.sch.t", account="acme").uri == "snowflake://acme/DB/SCH/T"
    with pytest.raises(ValueError, match=r"needs its database and schema"):
        gong_asset("calls", account="acme", schema="gong")
