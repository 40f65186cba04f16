from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_sophia.exceptions import InvalidIdentifierError
from airflow_provider_sophia.profiling import (
    DirectoryStore,
    Metric,
    RunResult,
    ScenarioResult,
    TableStore,
    compare,
)
from airflow_provider_sophia.profiling.baseline import load_json, save_json
from tests.conftest import unique_name


def make_run(latency: float = 1.0, throughput: float = 100.0, naive: float = 10.0, **kw: float) -> RunResult:
    result = ScenarioResult("pool_acquire", {"threads": 4})
    result.add("acquire_p99_s", latency, "s", "lower")
    result.add("throughput", throughput, "acquisitions/s", "higher")
    result.add("acquire_p99_s", naive, "s", "lower", "before")
    for name, value in kw.items():
        result.add(name, value, "s", "lower", min_delta=0.5)
    result.series = {"after": {"summary": {"p50": 0.1}, "buckets": [[0.1, 0.2, 3]]}}
    result.notes = ["a note"]
    return RunResult([result])


def flagged(current: RunResult, baseline: RunResult, tolerance: float = 0.2) -> set[str]:
    return {delta.metric for delta in compare(current, baseline, tolerance).regressions}


def test_thirty_percent_regression_is_flagged_ten_percent_passes() -> None:
    baseline = make_run(latency=1.0)
    assert flagged(make_run(latency=1.3), baseline) == {"after.acquire_p99_s"}
    assert flagged(make_run(latency=1.1), baseline) == set()


def test_direction_aware() -> None:
    baseline = make_run(latency=1.0, throughput=100.0)
    assert flagged(make_run(throughput=70.0), baseline) == {"after.throughput"}  # higher is better
    assert flagged(make_run(throughput=130.0), baseline) == set()  # an improvement
    assert flagged(make_run(latency=0.5), baseline) == set()  # lower latency is an improvement
    deltas = {d.metric: d for d in compare(make_run(throughput=130.0), baseline).deltas}
    assert deltas["after.throughput"].change == pytest.approx(-0.3)


def test_naive_side_min_delta_and_capped_baselines_are_not_gated() -> None:
    baseline = make_run(naive=10.0, noisy_s=0.1)
    assert flagged(make_run(naive=100.0, noisy_s=0.5), baseline) == set()  # 0.4 s < min_delta 0.5 s
    assert flagged(make_run(noisy_s=0.7), baseline) == {"after.noisy_s"}
    capped = make_run()
    capped.results[0].metrics["after.acquire_p99_s"] = Metric(1.0, "s", "lower", capped=True)
    assert flagged(make_run(latency=5.0), capped) == set()


def test_only_scenarios_in_both_runs_are_compared() -> None:
    other = RunResult([ScenarioResult("http_retry", {})])
    assert compare(make_run(), other).deltas == []


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        compare(make_run(), make_run(), -0.1)


def test_json_round_trip(tmp_path: Path) -> None:
    run = make_run(latency=0.25, extra_s=1.5)
    path = save_json(run, tmp_path / "nested" / "run.json")
    loaded = load_json(path)
    assert loaded == run
    assert loaded.environment["cpu_count"] >= 1
    assert loaded.environment["packages"]["pandas"]
    data = json.loads(path.read_text())
    assert data["format"] == "airflow-provider-sophia/profiling"
    assert data["version"] == 1


def test_unknown_version_or_format_is_refused(tmp_path: Path) -> None:
    path = save_json(make_run(), tmp_path / "run.json")
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data | {"version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        load_json(path)
    path.write_text(json.dumps({"something": "else"}))
    with pytest.raises(ValueError, match="Not a profiling result"):
        load_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_json(path)


def test_directory_store_latest_and_by_id(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "baselines")
    with pytest.raises(FileNotFoundError, match="No profiling run"):
        store.load()
    first = make_run(latency=1.0)
    first.created_at = "2025-01-01T00:00:00+00:00"
    second = make_run(latency=2.0)
    second.created_at = "2025-06-01T00:00:00+00:00"
    store.save(second)
    path = store.save(first)
    assert store.load() == second
    assert store.load(first.run_id) == first
    assert DirectoryStore(path).load() == first  # a file path loads that file


def _table_round_trip(store: TableStore) -> None:
    first = make_run(latency=1.0)
    first.created_at = "2025-01-01T00:00:00+00:00"
    second = make_run(latency=2.0)
    second.results.append(ScenarioResult("http_retry", {"requests": 5}))
    second.created_at = "2025-06-01T00:00:00+00:00"
    with pytest.raises(LookupError, match="holds no profiling run"):
        store.load()  # a first run finds the table missing: created empty, no baseline yet
    store.save(first)
    store.save(second)
    assert store.load() == second
    assert store.load(first.run_id) == first
    with pytest.raises(LookupError, match="no profiling run 'missing'"):
        store.load("missing")


def test_table_store_round_trip_sqlite(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "perf.db") as conn:
        _table_round_trip(TableStore(conn, paramstyle="qmark"))


def test_table_store_round_trip_warehouse(fakesnow_patched: None) -> None:
    import snowflake.connector

    conn = snowflake.connector.connect(database="SOPHIA", schema="PUBLIC")
    try:
        _table_round_trip(TableStore(conn, unique_name("PERF_BASELINES")))
        # the default table name is quoted and works as is
        TableStore(conn).save(make_run())
        cursor = conn.cursor()
        cursor.execute('select count(*) from "PERF_BASELINES"')
        assert cursor.fetchone() == (1,)
    finally:
        conn.close()


def test_table_store_refuses_bad_identifiers_and_paramstyles() -> None:
    with pytest.raises(InvalidIdentifierError):
        TableStore(sqlite3.connect(":memory:"), 'perf"; drop table x; --')
    with pytest.raises(ValueError, match="paramstyle"):
        TableStore(sqlite3.connect(":memory:"), paramstyle="named")
