"""Short forms of a run for logs and XCom: a plain-text table and a small JSON-able dict."""

from __future__ import annotations

from typing import Any

from airflow_provider_sophia.profiling.compare import Comparison
from airflow_provider_sophia.profiling.results import RunResult, format_value


def text_table(run: RunResult, comparison: Comparison | None = None) -> str:
    """Return a fixed-width table: scenario, metric, before, after, and the baseline status.

    :param run: the results.
    :param comparison: the comparison with a baseline, if any.
    """
    status = {
        (d.scenario, d.metric): ("REGRESSION" if d.regression else f"{d.change:+.0%}")
        for d in (comparison.deltas if comparison else [])
    }
    rows: list[tuple[str, ...]] = [("scenario", "metric", "before (naive)", "after (ours)", "vs baseline")]
    for result in run.results:
        names = dict.fromkeys(key.split(".", 1)[1] for key in result.metrics)
        for name in names:
            cells = []
            for side in ("before", "after"):
                metric = result.metrics.get(f"{side}.{name}")
                cells.append(
                    ""
                    if metric is None
                    else ("≥" if metric.capped else "") + format_value(metric.value, metric.unit)
                )
            rows.append((result.scenario, name, *cells, status.get((result.scenario, f"after.{name}"), "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def summary(run: RunResult, comparison: Comparison | None = None, **paths: Any) -> dict[str, Any]:
    """Return a small JSON-able summary: every metric value, the regressions and file paths.

    :param run: the results.
    :param comparison: the comparison with a baseline, if any.
    :param paths: JSON-able file paths to include, e.g. ``report=...``, ``charts={...}``.
    """
    return {
        "run_id": run.run_id,
        "created_at": run.created_at,
        "scenarios": {
            result.scenario: {key: metric.value for key, metric in sorted(result.metrics.items())}
            for result in run.results
        },
        "baseline_run_id": comparison.baseline_run_id if comparison else None,
        "regressions": [delta.to_dict() for delta in comparison.regressions] if comparison else [],
        **paths,
    }
