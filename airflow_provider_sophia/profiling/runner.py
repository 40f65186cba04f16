"""Run scenarios into one :class:`RunResult` (with progress), then compare and write it all out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_sophia.profiling.baseline import save_json
from airflow_provider_sophia.profiling.compare import Comparison, MetricDelta, compare
from airflow_provider_sophia.profiling.progress import Progress, silent
from airflow_provider_sophia.profiling.report import Report, write_report
from airflow_provider_sophia.profiling.results import RunResult
from airflow_provider_sophia.profiling.scenarios import get_scenario

log = logging.getLogger(__name__)

#: Scenario names, or a mapping of scenario name to parameter overrides.
ScenarioSpec = Sequence[str] | Mapping[str, Mapping[str, Any] | None]


def normalize(scenarios: ScenarioSpec | str) -> dict[str, dict[str, Any]]:
    """Return ``{name: overrides}`` for a name, a list of names or a mapping; names are checked.

    :param scenarios: what to run.
    :raises ValueError: for an unknown scenario or an empty selection.
    """
    if isinstance(scenarios, str):
        scenarios = [scenarios]
    items = scenarios.items() if isinstance(scenarios, Mapping) else ((name, None) for name in scenarios)
    selected = {get_scenario(name).name: dict(overrides or {}) for name, overrides in items}
    if not selected:
        raise ValueError("No scenario selected; name at least one.")
    return selected


def run_scenarios(
    scenarios: ScenarioSpec | str,
    *,
    size: str = "default",
    progress: Progress = silent,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run the scenarios one after the other and return their results as one run.

    :param scenarios: scenario names, or ``{name: parameter overrides}``.
    :param size: ``default`` or ``small`` (reduced sizes).
    :param progress: called with the overall share done and a label.
    :param cancel: when set, the run stops at the scenario's next progress report.
    :raises InterruptedError: when ``cancel`` was set.
    """
    selected = normalize(scenarios)
    plans = [(get_scenario(name), overrides) for name, overrides in selected.items()]
    parameters = [scenario.parameters(size, overrides) for scenario, overrides in plans]
    results = []
    for index, ((scenario, _), params) in enumerate(zip(plans, parameters, strict=True)):

        def report(fraction: float, label: str, index: int = index) -> None:
            if cancel is not None and cancel.is_set():
                raise InterruptedError("The profiling run was cancelled.")
            progress((index + fraction) / len(plans), f"[{index + 1}/{len(plans)}] {label}")

        log.info("Running scenario %s with %s", scenario.name, params)
        started = time.perf_counter()
        result = scenario.run(progress=report, **params)
        result.wall_s = time.perf_counter() - started
        log.info("Scenario %s finished in %.1f s", scenario.name, result.wall_s)
        results.append(result)
    progress(1.0, "done")
    return RunResult(results)


@dataclass(frozen=True)
class Outcome:
    """A finished run with everything written for it."""

    run: RunResult
    comparison: Comparison | None
    report: Report
    results_path: Path

    @property
    def regressions(self) -> list[MetricDelta]:
        """Return the regressions against the baseline (none without a baseline)."""
        return self.comparison.regressions if self.comparison else []


def publish(
    run: RunResult,
    output_dir: str | Path,
    *,
    baseline: RunResult | None = None,
    tolerance: float = 0.2,
    report_path: str | Path | None = None,
    charts_dir: str | Path | None = None,
) -> Outcome:
    """Compare ``run`` with ``baseline`` and write its JSON, charts and markdown report.

    :param run: the results.
    :param output_dir: where ``results.json`` (and by default the report and charts) go.
    :param baseline: the run to compare with, if any.
    :param tolerance: allowed relative worsening per metric.
    :param report_path: the markdown file; ``<output_dir>/report.md`` when ``None``.
    :param charts_dir: the charts' directory; ``<output_dir>`` when ``None``.
    """
    output_dir = Path(output_dir)
    comparison = compare(run, baseline, tolerance) if baseline is not None else None
    results_path = save_json(run, output_dir / "results.json")
    report = write_report(
        run,
        report_path or output_dir / "report.md",
        charts_dir=charts_dir or output_dir,
        comparison=comparison,
    )
    log.info("Profiling report: %s; results: %s", report.markdown, results_path)
    return Outcome(run, comparison, report, results_path)
