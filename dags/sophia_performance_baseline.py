"""
### Weekly performance baseline

Reruns the profiling scenarios — our pool, Gong client and chunked ingest next to the naive
implementations they replace — on this deployment, compares them with the newest baseline
stored in the warehouse table `PERF_BASELINES`, and writes a markdown report with charts.

* `pool_shutdown`: close latency of the pool while a health check sleeps or hangs;
* `pool_acquire`: acquire latency under 32 threads;
* `ingest_memory`: peak RSS and rows/s of read-all, read-chunks+concat and our streaming read;
* `http_retry`: requests sent to a failing Gong endpoint, unbounded retries vs ours + breaker.

A metric worse than the baseline by more than `tolerance` is a regression: it is always
reported, and fails the run when `fail_on_regression` is set.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_sophia.operators.profiling import PerformanceProfileOperator

SCENARIOS = ["pool_shutdown", "pool_acquire", "ingest_memory", "http_retry"]


@dag(
    dag_id="sophia_performance_baseline",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["sophia", "profiling"],
    default_args={
        "owner": "data-platform",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
    },
    params={
        "scenarios": Param(
            SCENARIOS,
            type="array",
            items={"type": "string", "enum": SCENARIOS},
            minItems=1,
            uniqueItems=True,
            title="Scenarios",
            description="Which before/after scenarios to run.",
        ),
        "size": Param(
            "small",
            type="string",
            enum=["small", "default"],
            title="Size",
            description="`small` runs in about a minute; `default` uses the full sizes (several minutes).",
        ),
        "tolerance": Param(
            0.2,
            type="number",
            minimum=0,
            maximum=5,
            title="Tolerance",
            description="Allowed relative worsening of a metric before it counts as a regression.",
        ),
        "fail_on_regression": Param(
            False, type="boolean", title="Fail on regression", description="Fail the run on a regression."
        ),
        "save_baseline": Param(
            True,
            type="boolean",
            title="Save as baseline",
            description="Store this run as the newest baseline for the next comparison.",
        ),
    },
)
def sophia_performance_baseline() -> None:
    PerformanceProfileOperator(
        task_id="profile",
        scenarios="{{ params.scenarios }}",
        size="{{ params.size }}",
        tolerance="{{ params.tolerance }}",
        fail_on_regression="{{ params.fail_on_regression }}",
        save_baseline="{{ params.save_baseline }}",
        snowflake_conn_id="snowflake_default",
        execution_timeout=timedelta(hours=1),
    )


sophia_performance_baseline()
