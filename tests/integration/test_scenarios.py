"""Every scenario in reduced size, against our real pool, Gong client + simulator and ingest readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_sophia.profiling import RunResult, ScenarioResult, load_json, run_scenarios
from airflow_provider_sophia.profiling.__main__ import main
from airflow_provider_sophia.profiling.scenarios import get_scenario

pytestmark = pytest.mark.integration


def run_small(name: str, **overrides: object) -> RunResult:
    return run_scenarios({name: overrides}, size="small")


@pytest.fixture(scope="module")
def shutdown() -> ScenarioResult:
    return run_small("pool_shutdown").results[0]


def test_pool_shutdown(shutdown: ScenarioResult) -> None:
    assert shutdown.value("after.idle_close_p50_s") < 0.1
    before = shutdown.metrics["before.idle_close_p50_s"]
    assert before.capped  # the sleeping worker outlived the 0.3 s cap
    assert shutdown.value("before.idle_close_implied_p50_s") > 50  # ~ the 60 s interval
    assert shutdown.value("before.hung_close_implied_p50_s") > 4  # ~ the 5 s hang
    assert shutdown.value("before.idle_threads_left_running") == 2
    assert len(shutdown.series["idle"]["after"]) == 2
    assert len(shutdown.series["hung"]["after"]) == 2


def test_pool_close_is_fast_while_a_validation_hangs(shutdown: ScenarioResult) -> None:
    assert shutdown.value("after.hung_close_max_s") < 0.1  # issue 3: <= 100 ms, hung validation included


def test_pool_acquire() -> None:
    result = run_small("pool_acquire").results[0]
    params = get_scenario("pool_acquire").parameters("small")
    expected = params["threads"] * params["acquisitions"]
    assert result.series["before"]["summary"]["count"] == expected
    assert result.series["after"]["summary"]["count"] == expected
    assert result.value("after.timeouts") == 0
    assert result.value("after.throughput") > 0
    assert result.value("after.acquire_p50_s") <= result.value("after.acquire_max_s")


def test_pool_acquire_on_postgres(postgres_dsn: str) -> None:
    result = run_small("pool_acquire", dsn=postgres_dsn, threads=4, acquisitions=20).results[0]
    assert result.parameters["source"] == "postgresql"
    assert "dsn" not in result.parameters
    assert result.series["after"]["summary"]["count"] == 80


def test_http_retry() -> None:
    result = run_small("http_retry").results[0]
    params = get_scenario("http_retry").parameters("small")
    assert result.value("after.requests_while_down") == params["max_attempts"]
    assert result.value("after.refused_locally") == params["requests"] - 1
    assert result.metrics["before.time_to_give_up_s"].capped
    assert result.value("before.requests_while_down") > result.value("after.requests_while_down")
    assert len(result.series["after"]["request_times"]) == params["max_attempts"]


def test_ingest_memory() -> None:
    result = run_small("ingest_memory").results[0]
    runs = result.series["runs"]
    assert {(run["method"], run["rows"]) for run in runs} == {
        (method, rows) for method in ("read_all", "chunks_concat", "stream") for rows in (2_000, 20_000)
    }
    for run in runs:
        assert run["peak_rss_mib"] >= run["start_rss_mib"] > 10
        assert len(run["rss_mib"]) >= 2
    assert result.value("after.rows_per_s_20000_rows") > 0
    assert "after.peak_rss_growth_mib" in result.metrics


def test_ingest_memory_from_postgres(postgres_dsn: str) -> None:
    result = run_small("ingest_memory", dsn=postgres_dsn, sizes=[1_000, 3_000]).results[0]
    assert result.parameters["source"] == "postgresql"
    assert {run["rows"] for run in result.series["runs"]} == {1_000, 3_000}


def test_unknown_scenario_or_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown scenario 'nope'"):
        run_scenarios(["nope"])
    with pytest.raises(ValueError, match="has no parameter bogus"):
        run_scenarios({"pool_acquire": {"bogus": 1}})


def test_cli_run_writes_results_report_charts_and_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, baselines = tmp_path / "out", tmp_path / "baselines"
    args = ["run", "pool_acquire", "--size", "small", "--output-dir", str(out), "--quiet"]
    assert main([*args, "--set", "pool_acquire.threads=4", "--save-baseline", str(baselines)]) == 0
    run = load_json(out / "results.json")
    assert run.results[0].parameters["threads"] == 4
    assert (out / "pool_acquire_latency.png").stat().st_size > 10_000
    assert "![pool_acquire](pool_acquire_latency.png)" in (out / "report.md").read_text()
    assert len(list(baselines.glob("perf-*.json"))) == 1
    # Against a baseline it cannot match (1e12 acquisitions/s) it fails only when asked to.
    baseline = json.loads((out / "results.json").read_text())
    baseline["results"][0]["metrics"]["after.throughput"]["value"] = 1e12
    (tmp_path / "fast.json").write_text(json.dumps(baseline))
    capsys.readouterr()
    assert main([*args, "--baseline", str(tmp_path / "fast.json")]) == 0
    assert main([*args, "--baseline", str(tmp_path / "fast.json"), "--fail-on-regression"]) == 1
    assert "REGRESSION pool_acquire after.throughput" in capsys.readouterr().err
