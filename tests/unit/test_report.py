from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from airflow_provider_sophia.profiling import RunResult, ScenarioResult, compare, save_json
from airflow_provider_sophia.profiling.__main__ import main, parse_overrides
from airflow_provider_sophia.profiling.histogram import LatencyHistogram
from airflow_provider_sophia.profiling.progress import ProgressBar
from airflow_provider_sophia.profiling.report import render, write_report
from airflow_provider_sophia.profiling.results import format_value
from airflow_provider_sophia.profiling.summary import summary, text_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _histogram(values: list[float]) -> dict[str, object]:
    histogram = LatencyHistogram()
    histogram.record_many(values)
    return {"summary": histogram.summary(), "buckets": histogram.buckets()}


def fake_run(scale: float = 1.0) -> RunResult:
    """A run shaped like the real scenarios' output, with made-up numbers."""
    shutdown = ScenarioResult("pool_shutdown", {"health_check_interval": 60.0, "cap_s": 2.0})
    shutdown.add("idle_close_p50_s", 2.0, "s", "lower", "before", capped=True)
    shutdown.add("idle_close_implied_p50_s", 59.9, "s", "lower", "before")
    shutdown.add("idle_close_p50_s", 0.0007 * scale, "s", "lower", min_delta=0.005)
    shutdown.series = {
        "idle": {"before_measured": [2.0, 2.0], "before_implied": [59.9, 59.8], "after": [0.0007, 0.0008]},
        "hung": {"before_measured": [2.0, 2.0], "before_implied": [29.9, 29.9], "after": [0.001, 0.002]},
    }
    acquire = ScenarioResult("pool_acquire", {"threads": 32, "max_size": 8})
    acquire.add("acquire_p99_s", 0.03, "s", "lower", "before")
    acquire.add("acquire_p99_s", 0.005 * scale, "s", "lower")
    acquire.add("throughput", 3000 / scale, "acquisitions/s", "higher")
    acquire.series = {
        "before": _histogram([1e-6] * 500 + [0.01 * i for i in range(1, 50)]),
        "after": _histogram([0.002 + 1e-5 * i for i in range(500)]),
    }
    ingest = ScenarioResult("ingest_memory", {"sizes": [1000, 10000]})
    ingest.add("peak_rss_growth_mib", 300, "MiB", "lower", "before")
    ingest.add("peak_rss_growth_mib", 2 * scale, "MiB", "lower", min_delta=16)
    ingest.series = {
        "runs": [
            {
                "method": method,
                "rows": rows,
                "wall_s": 1.0,
                "rows_per_s": rows / 1.0,
                "peak_rss_mib": 100 + growth * rows / 1000,
                "start_rss_mib": 100,
                "rss_mib": [[t / 10, 100 + growth * rows / 1000 * t / 10] for t in range(11)],
            }
            for rows in (1000, 10000)
            for method, growth in (("read_all", 30), ("chunks_concat", 25), ("stream", 0.2))
        ]
    }
    retry = ScenarioResult("http_retry", {"requests": 20})
    retry.add("requests_while_down", 40, "requests", "lower", "before")
    retry.add("requests_while_down", 5 * scale, "requests", "lower", min_delta=1)
    retry.series = {
        "before": {"request_times": [0.25 * i for i in range(40)]},
        "after": {"request_times": [0.0, 0.1, 0.3, 0.7, 1.5]},
        "window_s": 10.0,
    }
    return RunResult([shutdown, acquire, ingest, retry])


def test_report_and_charts_are_written(tmp_path: Path) -> None:
    report = write_report(fake_run(), tmp_path / "out" / "report.md", charts_dir=tmp_path / "img")
    text = report.markdown.read_text()
    assert set(report.charts) == {"pool_shutdown", "pool_acquire", "ingest_memory", "http_retry"}
    for scenario, png in report.charts.items():
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert png.stat().st_size > 15_000, f"{png} looks empty"
        assert f"![{scenario}](../img/{png.name})" in text
        assert f"## {scenario}" in text
    assert "| idle_close_p50_s (lower is better) | ≥ 2 s | 700 µs | ≥ 2,857x |" in text
    assert "| throughput (higher is better) | - | 3,000 acquisitions/s | - |" in text
    assert "CPUs" in text
    assert "Versions:" in text


def test_report_shows_regressions_against_a_baseline() -> None:
    current, baseline = fake_run(scale=2.0), fake_run()
    comparison = compare(current, baseline, 0.2)
    text = render(current, comparison)
    assert f"Compared with baseline `{baseline.run_id}` (tolerance 20%)" in text
    row = "| pool_acquire | after.throughput | 3,000 acquisitions/s | 1,500 acquisitions/s | +50.0% |"
    assert f"{row} **REGRESSION** |" in text
    # doubled, but by 0.7 ms: under its 5 ms noise floor
    assert "| pool_shutdown | after.idle_close_p50_s | 700 µs | 1.4 ms | +100.0% | ok |" in text
    table = text_table(current, comparison)
    assert "REGRESSION" in table
    assert "pool_acquire" in table
    brief = summary(current, comparison, report="r.md")
    json.dumps(brief)
    assert brief["report"] == "r.md"
    # peak_rss_growth_mib doubled too, but by 2 MiB: under its 16 MiB noise floor
    assert {item["metric"] for item in brief["regressions"]} == {
        "after.acquire_p99_s",
        "after.throughput",
        "after.requests_while_down",
    }


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (2.5, "s", "2.5 s"),
        (0.0123, "s", "12.3 ms"),
        (4.2e-5, "s", "42 µs"),
        (12345.6, "rows/s", "12,346 rows/s"),
    ],
)
def test_format_value(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_cli_report_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = save_json(fake_run(scale=2.0), tmp_path / "current.json")
    baseline = save_json(fake_run(), tmp_path / "baseline.json")
    assert main(["report", str(current), "--output", str(tmp_path / "r" / "report.md")]) == 0
    assert (tmp_path / "r" / "pool_acquire_latency.png").read_bytes()[:8] == PNG_MAGIC
    assert main(["compare", str(current), str(baseline)]) == 1
    assert "3 regression(s) in 5 compared metrics" in capsys.readouterr().out
    assert main(["compare", str(baseline), str(baseline)]) == 0
    assert main(["compare", str(current), str(baseline), "--tolerance", "2"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(current), str(tmp_path / "missing")])
    assert exit_info.value.code == 2


def test_cli_list_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("pool_shutdown", "pool_acquire", "ingest_memory", "http_retry"))
    assert parse_overrides(["ingest_memory.sizes=[10,20]", "pool_acquire.dsn=postgresql://x/y"]) == {
        "ingest_memory": {"sizes": [10, 20]},
        "pool_acquire": {"dsn": "postgresql://x/y"},
    }
    with pytest.raises(ValueError, match=r"scenario\.param=value"):
        parse_overrides(["threads=3"])


def test_progress_bar_draws_to_its_stream() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10, interval=0.0)
    bar(0.5, "halfway")
    bar(1.0, "done")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[#####.....]  50%")
    assert lines[0].endswith("halfway")
    assert lines[1].startswith("[##########] 100%")
