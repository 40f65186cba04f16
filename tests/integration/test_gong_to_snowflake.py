"""GongToSnowflakeOperator against the Gong simulator and the embedded warehouse (fakesnow server)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_sophia.exceptions import GongRateLimited
from airflow_provider_sophia.gong.landing import canonical_json, content_hash, record_id
from airflow_provider_sophia.gong.simulator import Fault, GongSimulator, Settings
from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.identifiers import quote_identifier
from airflow_provider_sophia.operators.gong_to_snowflake import GongToSnowflakeOperator
from tests.conftest import EmbeddedWarehouse, unique_name

pytestmark = pytest.mark.integration

UTC = timezone.utc
#: the run's data interval; transcripts and extensive calls reach back LOOKBACK before it.
INTERVAL = (datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC))
LOOKBACK = timedelta(days=2)
STREAM_PATHS = {
    "users": "/v2/users",
    "calls": "/v2/calls",
    "calls_extensive": "/v2/calls/extensive",
    "transcripts": "/v2/calls/transcript",
}
COLUMNS = ("ID", "RECORD", "_EXTRACTED_AT", "_WINDOW_START", "_WINDOW_END", "_CONTENT_HASH")


@pytest.fixture
def sim(snowflake_conn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[GongSimulator]:
    """A simulator (900 calls over 30 days, 40 records a page) behind ``gong_default``."""
    with GongSimulator(seed=11, users=90, calls=900, page_size=40, settings=Settings(rate_limit=None)) as sim:
        extra = {
            "base_delay": 0.01,
            "max_delay": 0.05,
            "max_attempts": 8,
            "rate_limit_per_second": 0,
            "timeout": 5,
            "breaker_fail_max": 50,
        }
        connection = {
            "conn_type": "gong",
            "host": sim.url,
            "login": sim.access_key,
            "password": sim.access_key_secret,
            "extra": extra,
        }
        monkeypatch.setenv("AIRFLOW_CONN_GONG_DEFAULT", json.dumps(connection))
        yield sim
    SnowflakePoolHook.close_all_pools()


@pytest.fixture
def db(warehouse: EmbeddedWarehouse) -> Iterator[Any]:
    """A warehouse connection for checking the landed tables."""
    with contextlib.closing(warehouse.connect()) as connection:
        yield connection


def context(interval: tuple[datetime | None, datetime | None] = INTERVAL, try_number: int = 1) -> Any:
    ti = SimpleNamespace(dag_id="gong_landing", task_id="land", map_index=-1, try_number=try_number)
    return {
        "ti": ti,
        "run_id": "scheduled__2024-01-08",
        "data_interval_start": interval[0],
        "data_interval_end": interval[1],
    }


def operator(stream: str, table: str, **kwargs: Any) -> GongToSnowflakeOperator:
    return GongToSnowflakeOperator(
        task_id="land", stream=stream, target_table=table, lookback=LOOKBACK, **kwargs
    )


def landed(db: Any, table: str) -> list[tuple[Any, ...]]:
    """Every landed row ordered by ID, the VARIANT parsed (timestamps read as text, then parsed)."""
    sql = (
        'SELECT "ID", "RECORD"::VARCHAR, "_EXTRACTED_AT"::VARCHAR, "_WINDOW_START"::VARCHAR, '
        f'"_WINDOW_END"::VARCHAR, "_CONTENT_HASH" FROM {quote_identifier(table)} ORDER BY "ID"'
    )
    rows = db.cursor().execute(sql).fetchall()
    return [(row[0], json.loads(row[1]), *map(moment, row[2:5]), row[5]) for row in rows]


def moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def selector(stream: str) -> dict[str, Any] | None:
    """The ``contentSelector`` the tests send for ``stream``."""
    return {"exposedFields": {}} if stream == "calls_extensive" else None


def expected(
    sim: GongSimulator, stream: str, start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    return sim.data.select(stream, start, end, content_selector=selector(stream))


def assert_exactly_once(db: Any, table: str, stream: str, records: list[dict[str, Any]]) -> None:
    rows = landed(db, table)
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)) == len(records) > 0
    by_id = {record_id(stream, record): record for record in records}
    assert {row[0]: row[1] for row in rows} == by_id
    assert all(row[5] == content_hash(canonical_json(row[1])) for row in rows)


# --- each stream, every record exactly once ------------------------------------------


@pytest.mark.parametrize("stream", ["users", "calls", "calls_extensive", "transcripts"])
def test_each_stream_lands_every_record_exactly_once(
    sim: GongSimulator, db: Any, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    table = unique_name(f"GONG_{stream}")
    caplog.set_level("INFO")
    result = operator(stream, table, content_selector=selector(stream), progress_every=2).execute(context())
    late = stream in ("calls_extensive", "transcripts")
    start = None if stream == "users" else INTERVAL[0] - (LOOKBACK if late else timedelta(0))
    end = None if stream == "users" else INTERVAL[1]
    records = expected(sim, stream, start, end)
    assert_exactly_once(db, table, stream, records)
    rows = landed(db, table)
    if stream == "users":
        assert {(row[3], row[4]) for row in rows} == {(None, None)}
        assert sim.requests(path=STREAM_PATHS[stream])[0]["query"] == {}
    else:
        assert {(row[3], row[4]) for row in rows} == {(start, end)}
    pages = -(-len(records) // sim.page_size)
    assert result == {
        "stream": stream,
        "records": len(records),
        "pages": pages,
        "requests": pages,
        "retries": 0,
        "seconds": result["seconds"],
        "target_table": table,
        "window_start": start.isoformat() if start else None,
        "window_end": end.isoformat() if end else None,
        "parts": 1,
    }
    assert any(f"Gong {stream}: 2 pages" in message for message in caplog.messages), "no progress logged"


def test_manual_run_takes_the_window_from_ui_strings(sim: GongSimulator, db: Any) -> None:
    table = unique_name("GONG_CALLS")
    task = operator("calls", table, from_datetime="2024-01-20T00:00:00Z", to_datetime="2024-01-22")
    result = task.execute(context(interval=(None, None)))
    window = datetime(2024, 1, 20, tzinfo=UTC), datetime(2024, 1, 22, tzinfo=UTC)
    assert_exactly_once(db, table, "calls", expected(sim, "calls", *window))
    assert (result["window_start"], result["window_end"]) == tuple(moment.isoformat() for moment in window)
    bad = operator("calls", table, from_datetime="last tuesday")
    with pytest.raises(ValueError, match=r"from_datetime='last tuesday' is not an ISO-8601 date-time"):
        bad.execute(context(interval=(None, None)))


# --- idempotence ------------------------------------------------------------------------


def test_rerun_of_the_same_window_changes_nothing(sim: GongSimulator, db: Any) -> None:
    table = unique_name("GONG_TRANSCRIPTS")
    operator("transcripts", table).execute(context())
    before = landed(db, table)
    again = operator("transcripts", table).execute(context(try_number=2))
    assert again["records"] == len(before)
    assert landed(db, table) == before


def test_rerun_with_a_changed_record_updates_just_that_row(sim: GongSimulator, db: Any) -> None:
    table = unique_name("GONG_CALLS")
    operator("calls", table).execute(context())
    before = {row[0]: row for row in landed(db, table)}
    changed_id = sorted(before)[len(before) // 2]
    sim.update_record(changed_id, {"title": "Renewal call, rescheduled"})
    operator("calls", table).execute(context(try_number=2))
    after = {row[0]: row for row in landed(db, table)}
    assert after.keys() == before.keys()
    differing = {key for key in after if after[key] != before[key]}
    assert differing == {changed_id}
    old, new = before[changed_id], after[changed_id]
    assert new[1]["title"] == "Renewal call, rescheduled"
    assert new[1] == old[1] | {"title": "Renewal call, rescheduled"}
    assert new[5] != old[5]
    assert new[2] > old[2]


# --- faults -------------------------------------------------------------------------------


FAULTS = {
    "5xx burst": [Fault("status", status=503, count=4)],
    "429 with Retry-After": [Fault("status", status=429, count=1, retry_after=0.3)],
    "truncated body": [Fault("truncate", rate=0.5, count=1)],
    "5xx and drops at random": [Fault("status", status=502, rate=0.2), Fault("drop", rate=0.1)],
}


@pytest.mark.parametrize("stream", ["calls", "transcripts"])
@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_faults_still_land_every_record_once(
    sim: GongSimulator, db: Any, stream: str, faults: list[Fault]
) -> None:
    path = STREAM_PATHS[stream]
    for fault in faults:
        sim.add_fault(Fault(**{**vars(fault), "path": path}))
    table = unique_name(f"GONG_{stream}")
    result = operator(stream, table).execute(context())
    start = INTERVAL[0] - (LOOKBACK if stream == "transcripts" else timedelta(0))
    records = expected(sim, stream, start, INTERVAL[1])
    assert_exactly_once(db, table, stream, records)
    log = sim.requests(path=path)
    injected = [entry for entry in log if entry["fault"] or entry["status"] != 200]
    assert injected, "no fault was injected"
    for fault in faults:
        if fault.kind == "status" and fault.count:
            assert Counter(entry["status"] for entry in log)[fault.status] == fault.count
        if fault.kind == "truncate":
            assert [entry["fault"] for entry in injected] == ["truncate"]
        if fault.retry_after:
            waited = log[1]["time"] - log[0]["time"]
            assert waited >= fault.retry_after
    assert result["requests"] == len(log)
    assert result["retries"] == len(log) - result["pages"] == len(injected)
    assert result["records"] == len(records)


# --- the daily quota ----------------------------------------------------------------------


def test_quota_fails_saying_when_it_resets_and_lands_what_was_fetched(sim: GongSimulator, db: Any) -> None:
    sim.configure(daily_quota=2, quota_retry_after=7200)
    table = unique_name("GONG_CALLS")
    started = datetime.now(UTC)
    with pytest.raises(GongRateLimited) as failure:
        operator("calls", table).execute(context())
    message = str(failure.value)
    reset = datetime.strptime(message.split("resets at ")[1][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert "UTC" in message
    assert "defer_on_quota=True" in message
    assert abs((reset - started - timedelta(hours=2)).total_seconds()) < 60
    assert failure.value.retry_after == 7200
    fetched = expected(sim, "calls", *INTERVAL)[: 2 * sim.page_size]
    assert_exactly_once(db, table, "calls", fetched)


def test_quota_defers_and_resumes_from_the_saved_cursor(sim: GongSimulator, db: Any) -> None:
    sim.configure(daily_quota=3, quota_retry_after=3600)
    table = unique_name("GONG_TRANSCRIPTS")
    task = operator("transcripts", table, defer_on_quota=True)
    started = datetime.now(UTC)
    with pytest.raises(TaskDeferred) as deferral:
        task.execute(context())
    deferred = deferral.value
    assert isinstance(deferred.trigger, DateTimeTrigger)
    assert abs(deferred.trigger.moment.timestamp() - started.timestamp() - 3600) < 60
    assert deferred.method_name == "resume_after_quota"
    kwargs = json.loads(json.dumps(deferred.kwargs))
    assert kwargs == deferred.kwargs
    assert kwargs["cursor"]
    assert kwargs["part"] == 1
    assert kwargs["totals"]["records"] == 3 * sim.page_size
    records = expected(sim, "transcripts", INTERVAL[0] - LOOKBACK, INTERVAL[1])
    assert len(landed(db, table)) == 3 * sim.page_size

    sim.configure(daily_quota=None)
    seen = len(sim.requests())
    result = getattr(task, deferred.method_name)(context(), event=deferred.trigger.moment, **kwargs)
    assert_exactly_once(db, table, "transcripts", records)
    resumed = sim.requests(since=seen + 1)
    assert resumed[0]["json"]["cursor"] == kwargs["cursor"]
    pages = -(-len(records) // sim.page_size)
    assert len(resumed) == pages - 3
    assert result["records"] == len(records)
    assert result["pages"] == pages
    assert result["parts"] == 2


def test_time_slices_land_every_record_once_and_resume_each_slice_after_the_quota(
    sim: GongSimulator, db: Any
) -> None:
    sim.configure(daily_quota=4, quota_retry_after=3600)
    table = unique_name("GONG_CALLS_EXTENSIVE")
    task = operator(
        "calls_extensive", table, defer_on_quota=True, slices=3, content_selector=selector("calls_extensive")
    )
    with pytest.raises(TaskDeferred) as deferral:
        task.execute(context())
    kwargs = json.loads(json.dumps(deferral.value.kwargs))
    assert kwargs == deferral.value.kwargs
    assert 1 <= len(kwargs["resume"]) <= 3
    assert len(landed(db, table)) == kwargs["totals"]["records"] > 0
    windows = {entry["json"]["filter"]["fromDateTime"] for entry in sim.requests()}
    assert len(windows) == 3  # the slices were fetched at once

    sim.configure(daily_quota=None)
    result = task.resume_after_quota(context(), event=None, **kwargs)
    records = expected(sim, "calls_extensive", INTERVAL[0] - LOOKBACK, INTERVAL[1])
    assert_exactly_once(db, table, "calls_extensive", records)
    assert result["records"] == len(records)
    assert result["parts"] == 2


def test_slices_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slices must be at least 1"):
        operator("calls", "T", slices=0)


# --- where the cursor and the filter go -----------------------------------------------------


@pytest.mark.parametrize("stream", ["calls_extensive", "transcripts"])
def test_cursor_and_filter_go_in_the_json_body_of_post_endpoints(sim: GongSimulator, stream: str) -> None:
    operator(stream, unique_name(f"GONG_{stream}")).execute(context())
    log = sim.requests(path=STREAM_PATHS[stream])
    assert len(log) > 2
    assert all(entry["method"] == "POST" and entry["query"] == {} for entry in log)
    window = {"fromDateTime": (INTERVAL[0] - LOOKBACK).isoformat(), "toDateTime": INTERVAL[1].isoformat()}
    assert all(entry["json"]["filter"] == window for entry in log)
    cursors = [entry["json"].get("cursor") for entry in log]
    assert cursors[0] is None
    assert all(cursors[1:])
    assert len(set(cursors)) == len(cursors)


def test_cursor_goes_in_the_query_of_get_endpoints(sim: GongSimulator) -> None:
    operator("calls", unique_name("GONG_CALLS")).execute(context())
    log = sim.requests(path="/v2/calls")
    assert len(log) > 2
    assert all(entry["json"] is None for entry in log)
    cursors = [entry["query"].get("cursor") for entry in log]
    assert cursors[0] is None
    assert len(set(cursors[1:])) == len(log) - 1
