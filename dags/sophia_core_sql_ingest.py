"""
### Core SQL → Snowflake, chunked and incremental

Copies the core application's tables from `core_sql_default` (any SQL database Airflow can
reach) into Snowflake (`snowflake_default`), one mapped task per table.

* **Incremental** by `updated_at`: each run reads the rows changed since the last
  successful run (its data interval, widened back to the previous success when runs were
  missed) and **merges** them on `id`. A rerun of the same window changes nothing.
* **Full refresh** (trigger with `full_refresh: true`): every row is read and the target is
  **replaced** atomically — readers never see it empty or half loaded.
* Memory stays flat whatever the table size: rows stream in chunks of `chunk_size` to
  parquet files, which are staged and loaded with one `COPY INTO`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_sophia.operators.sql_to_snowflake import ChunkedSqlToSnowflakeOperator

CORE_TABLES = ["customers", "products", "orders"]
WINDOW_START = "{{ prev_data_interval_end_success | default(none) or data_interval_start | default(none) }}"


@dag(
    dag_id="sophia_core_sql_ingest",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["sophia", "ingest", "snowflake"],
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "tables": Param(
            CORE_TABLES,
            type="array",
            items={"type": "string", "enum": CORE_TABLES},
            minItems=1,
            uniqueItems=True,
            title="Tables",
            description="Core tables to copy; each becomes its own mapped task.",
        ),
        "chunk_size": Param(
            5000,
            type="integer",
            minimum=100,
            maximum=1_000_000,
            title="Chunk size",
            description="Rows per chunk read from the source; memory grows with this, not the table.",
        ),
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Read every row and replace the target atomically instead of merging changes.",
        ),
    },
)
def sophia_core_sql_ingest() -> None:
    @task
    def plan_tables(params: dict[str, Any]) -> list[dict[str, Any]]:
        """One mapped load per table: replace on full refresh, else an incremental merge on id."""
        full_refresh = bool(params["full_refresh"])
        return [
            {
                "source_table": table,
                "target_table": table.upper(),
                "chunk_size": int(params["chunk_size"]),
                "mode": "replace" if full_refresh else "merge",
                "incremental_column": None if full_refresh else "updated_at",
            }
            for table in params["tables"]
        ]

    ChunkedSqlToSnowflakeOperator.partial(
        task_id="ingest_table",
        source_conn_id="core_sql_default",
        snowflake_conn_id="snowflake_default",
        merge_keys=["id"],
        # Since the last successful run: a missed day is caught up by the next run. A run
        # triggered without a logical date has no interval: it reads every row.
        window_start=WINDOW_START,
        window_end="{{ data_interval_end | default(none) }}",
        map_index_template="{{ task.source_table }}",
    ).expand_kwargs(plan_tables())


sophia_core_sql_ingest()
