"""Profiling: measure our code against naive baselines, keep the numbers, chart them.

No Airflow here; :mod:`airflow_provider_sophia.operators.profiling` is the Airflow face and
``python -m airflow_provider_sophia.profiling`` the command line.
"""

from __future__ import annotations

from airflow_provider_sophia.profiling.baseline import DirectoryStore, TableStore, load_json, save_json
from airflow_provider_sophia.profiling.compare import Comparison, MetricDelta, compare
from airflow_provider_sophia.profiling.histogram import LatencyHistogram
from airflow_provider_sophia.profiling.profiler import Profiler, ProfileResult
from airflow_provider_sophia.profiling.results import Metric, RunResult, ScenarioResult
from airflow_provider_sophia.profiling.runner import Outcome, publish, run_scenarios

__all__ = [
    "Comparison",
    "DirectoryStore",
    "LatencyHistogram",
    "Metric",
    "MetricDelta",
    "Outcome",
    "ProfileResult",
    "Profiler",
    "RunResult",
    "ScenarioResult",
    "TableStore",
    "compare",
    "load_json",
    "publish",
    "run_scenarios",
    "save_json",
]
