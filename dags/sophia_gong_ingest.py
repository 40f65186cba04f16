"""
### Gong → Snowflake, daily and incremental

Lands Gong users, calls, extensive calls and transcripts from `gong_default` as raw
VARIANT rows in Snowflake (`GONG_USERS`, `GONG_CALLS`, `GONG_CALLS_EXTENSIVE`,
`GONG_TRANSCRIPTS`), merged on the record id: a record whose content did not change is
not rewritten, so reruns are free of side effects.

* **Window**: the run's data interval; transcripts and extensive calls are widened back by
  three days because Gong publishes them hours after the call. A manual run without
  dates takes the last three days.
* **Backfills from the UI**: set `from_datetime` / `to_datetime` (ISO-8601, UTC).
* **Rate limit**: every task runs in the Airflow pool `gong_api` (3 slots) and its client
  sends at most 1 request/s, so the tasks together stay under Gong's 3 requests/s. Each
  task pages its window as 3 time slices at once, so a slow page or a retry's backoff in
  one slice leaves that second to the others.
* **Daily quota**: when Gong's 10,000 calls/day are spent the task defers until the quota
  resets and resumes from the page where it stopped.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_sophia.operators.gong_to_snowflake import GongToSnowflakeOperator

STREAMS = ("users", "calls", "calls_extensive", "transcripts")
GONG_POOL_SLOTS = 3


@dag(
    dag_id="sophia_gong_ingest",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["sophia", "gong", "snowflake"],
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "pool": "gong_api",
    },
    params={
        "from_datetime": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="From (UTC)",
            description="Backfill start, e.g. 2026-11-01T00:00:00Z. Empty: the run's data interval.",
        ),
        "to_datetime": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="To (UTC)",
            description="Backfill end (exclusive). Empty: the end of the run's data interval.",
        ),
    },
)
def sophia_gong_ingest() -> None:
    for stream in STREAMS:
        GongToSnowflakeOperator(
            task_id=f"land_{stream}",
            stream=stream,
            from_datetime="{{ params.from_datetime }}",
            to_datetime="{{ params.to_datetime }}",
            lookback=timedelta(days=3),
            defer_on_quota=True,
            slices=3,
            client_kwargs={"rate_limit_per_second": 3.0 / GONG_POOL_SLOTS},
        )


sophia_gong_ingest()
