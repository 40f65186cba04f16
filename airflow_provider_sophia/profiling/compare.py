"""Compare a profiling run with a baseline, metric by metric, knowing which way is better."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_sophia.profiling.results import Metric, RunResult


@dataclass(frozen=True)
class MetricDelta:
    """How one metric moved from the baseline to the current run.

    ``change`` is the relative change in the *worse* direction: +0.3 means 30 % worse,
    -0.1 means 10 % better, whichever of lower or higher is better for the metric.
    """

    scenario: str
    metric: str
    unit: str
    better: str
    baseline: float
    current: float
    change: float
    regression: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the delta as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Every compared metric of a run against its baseline."""

    tolerance: float
    deltas: list[MetricDelta]
    baseline_run_id: str

    @property
    def regressions(self) -> list[MetricDelta]:
        """Return the deltas flagged as regressions."""
        return [delta for delta in self.deltas if delta.regression]


def _worse_by(current: Metric, baseline: Metric) -> tuple[float, float]:
    """Return the (relative, absolute) change in the worse direction."""
    absolute = current.value - baseline.value
    if current.better == "higher":
        absolute = -absolute
    return absolute / max(abs(baseline.value), 1e-12), absolute


def compare(current: RunResult, baseline: RunResult, tolerance: float = 0.2) -> Comparison:
    """Compare the "after" metrics (our code) of every scenario present in both runs.

    A metric regresses when it is worse than its baseline by more than ``tolerance``
    (relative) and by more than its ``min_delta`` (absolute, so that sub-millisecond noise
    is not a regression). Capped baseline values are skipped: they are bounds, not numbers.
    The "before" metrics measure the naive reference implementations and are not gated.

    :param current: this run.
    :param baseline: the run to compare with.
    :param tolerance: allowed relative worsening, e.g. 0.2 for 20 %.
    :raises ValueError: when ``tolerance`` is negative.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 (a fraction such as 0.2), got {tolerance!r}")
    deltas: list[MetricDelta] = []
    for result in current.results:
        reference = baseline.get(result.scenario)
        if reference is None:
            continue
        for key, metric in sorted(result.metrics.items()):
            base = reference.metrics.get(key)
            if metric.side != "after" or base is None or base.capped or base.better != metric.better:
                continue
            relative, absolute = _worse_by(metric, base)
            regression = relative > tolerance and absolute > metric.min_delta
            deltas.append(
                MetricDelta(
                    result.scenario,
                    key,
                    metric.unit,
                    metric.better,
                    base.value,
                    metric.value,
                    relative,
                    regression,
                )
            )
    return Comparison(tolerance, deltas, baseline.run_id)
