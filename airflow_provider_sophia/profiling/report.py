"""The markdown report of a profiling run: before/after tables, notes, charts, baseline deltas."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_sophia.profiling.charts import write_charts
from airflow_provider_sophia.profiling.compare import Comparison
from airflow_provider_sophia.profiling.results import Metric, RunResult, ScenarioResult, format_value
from airflow_provider_sophia.profiling.scenarios import SCENARIOS


@dataclass(frozen=True)
class Report:
    """Where a report was written: the markdown file and the charts it embeds."""

    markdown: Path
    charts: dict[str, Path]


def _cell(metric: Metric | None) -> str:
    if metric is None:
        return "-"
    return ("≥ " if metric.capped else "") + format_value(metric.value, metric.unit)


def _ratio(before: Metric | None, after: Metric | None) -> str:
    """Return how many times better ours is (``x``), or ``-`` when not comparable."""
    if before is None or after is None or before.value <= 0 or after.value <= 0:
        return "-"
    ratio = before.value / after.value if after.better == "lower" else after.value / before.value
    text = f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.3g}x"
    return ("≥ " if before.capped and after.better == "lower" else "") + text


def scenario_table(result: ScenarioResult) -> list[str]:
    """Return markdown lines of the before/after table of one scenario.

    :param result: the scenario's result.
    """
    names = list(dict.fromkeys(key.split(".", 1)[1] for key in result.metrics))
    lines = ["| metric | before (naive) | after (ours) | ours is |", "|---|---:|---:|---:|"]
    for name in names:
        before, after = result.metrics.get(f"before.{name}"), result.metrics.get(f"after.{name}")
        better = next(metric.better for metric in (after, before) if metric is not None)
        lines.append(
            f"| {name} ({better} is better) | {_cell(before)} | {_cell(after)} | {_ratio(before, after)} |"
        )
    return lines


def comparison_table(comparison: Comparison) -> list[str]:
    """Return markdown lines of the comparison with the baseline.

    :param comparison: the comparison.
    """
    lines = [
        f"## Compared with baseline `{comparison.baseline_run_id}` (tolerance {comparison.tolerance:.0%})",
        "",
        f"**{len(comparison.regressions)} regression(s)** in {len(comparison.deltas)} compared metrics.",
        "",
        "| scenario | metric | baseline | current | worse by | status |",
        "|---|---|---:|---:|---:|---|",
    ]
    for delta in comparison.deltas:
        status = "**REGRESSION**" if delta.regression else "ok"
        lines.append(
            f"| {delta.scenario} | {delta.metric} | {format_value(delta.baseline, delta.unit)} | "
            f"{format_value(delta.current, delta.unit)} | {delta.change:+.1%} | {status} |"
        )
    return [*lines, ""]


def render(run: RunResult, comparison: Comparison | None = None, charts: dict[str, str] | None = None) -> str:
    """Return the markdown report of ``run``.

    :param run: the results.
    :param comparison: the comparison with a baseline, if any.
    :param charts: ``{scenario: image path as the markdown should link it}``.
    """
    env = run.environment
    versions = ", ".join(f"{name} {version}" for name, version in env.get("packages", {}).items() if version)
    lines = [
        "# Performance profile: before (naive) vs after (airflow-provider-sophia)",
        "",
        f"Run `{run.run_id}` at {run.created_at} on {env.get('system')} {env.get('machine')}, "
        f"{env.get('cpu_count')} CPUs, {env.get('memory_bytes', 0) / 2**30:.1f} GiB RAM, "
        f"Python {env.get('python')}.",
        "",
        f"Versions: {versions}.",
        "",
        "Rerun: `python -m airflow_provider_sophia.profiling run` (see `--help`).",
        "",
    ]
    if comparison is not None:
        lines += comparison_table(comparison)
    for result in run.results:
        description = SCENARIOS[result.scenario].description if result.scenario in SCENARIOS else ""
        params = ", ".join(f"{key}={value}" for key, value in sorted(result.parameters.items()))
        lines += [
            f"## {result.scenario}",
            "",
            description,
            "",
            f"Parameters: `{params}`; ran {result.wall_s:.1f} s.",
            "",
        ]
        lines += scenario_table(result)
        lines += ["", *(f"- {note}" for note in result.notes), ""]
        if charts and result.scenario in charts:
            lines += [f"![{result.scenario}]({charts[result.scenario]})", ""]
    return "\n".join(lines)


def write_report(
    run: RunResult,
    path: str | Path,
    *,
    charts_dir: str | Path | None = None,
    comparison: Comparison | None = None,
) -> Report:
    """Write the charts and the markdown report that embeds them (by relative path).

    :param run: the results.
    :param path: the markdown file to write.
    :param charts_dir: where the PNG charts go; beside the report when ``None``.
    :param comparison: the comparison with a baseline, if any.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    charts = write_charts(run, Path(charts_dir) if charts_dir is not None else path.parent)
    links = {name: Path(os.path.relpath(png, path.parent)).as_posix() for name, png in charts.items()}
    path.write_text(render(run, comparison, links), encoding="utf-8")
    return Report(path, charts)
