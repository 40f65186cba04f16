"""``make demo``: run the example DAGs on the embedded stack and print what they did.

Each DAG runs through ``airflow dags test`` (a real DAG run in the metadata DB, tasks in
this machine's processes); the table at the end comes from the runs' XCom return values,
and the row counts from a query against the warehouse itself.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sophia.identifiers import quote_name
from airflow_provider_sophia.local import warehouse
from airflow_provider_sophia.local.stack import LocalStack, airflow


@dataclass(frozen=True)
class DemoRun:
    """One DAG the demo runs, with its trigger ``conf`` (and the one for its very first run)."""

    dag_id: str
    conf: dict[str, Any] = field(default_factory=dict)
    first_conf: dict[str, Any] | None = None


DEMO_RUNS = (
    # The first run copies everything; later runs load only what changed since the last success.
    DemoRun("sophia_core_sql_ingest", first_conf={"full_refresh": True}),
    DemoRun("sophia_gong_ingest"),
    DemoRun("sophia_cortex_enrichment"),
    DemoRun("sophia_performance_baseline"),
)
COLUMNS = ("DAG", "task", "rows", "seconds", "peak RSS MiB", "report")


def run_demo(stack: LocalStack, *, keep_running: bool = False) -> int:
    """Start the stack, run every demo DAG present, print the summary; return the exit code."""
    started = time.monotonic()
    env = stack.up()
    available = {path.stem for path in stack.dags_folder.glob("*.py")}
    runs = [run for run in DEMO_RUNS if run.dag_id in available]
    try:
        for run in runs:
            log_file = stack.state_dir / "logs" / f"demo-{run.dag_id}.log"
            print(f"running    {run.dag_id} (log: {log_file}) ...", flush=True)
            conf = run.conf
            if run.first_conf is not None and not _succeeded_before(stack, run.dag_id):
                conf = run.first_conf
            args = ["dags", "test", run.dag_id]
            if conf:
                args += ["--conf", json.dumps(conf)]
            result = airflow(args, env, quiet=True)
            log_file.write_text(result.stdout + result.stderr)
        print()
        print(_table([row for run in runs for row in _task_rows(stack, run.dag_id)]))
        print()
        print(_table(_warehouse_counts(stack), columns=("warehouse table", "rows")))
    finally:
        if not keep_running:
            stack.down()
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s")
    return 0


def _succeeded_before(stack: LocalStack, dag_id: str) -> bool:
    """Return whether the DAG has a successful run in the stack's metadata DB."""
    with sqlite3.connect(stack.airflow_home / "airflow.db") as db:
        found = db.execute("SELECT 1 FROM dag_run WHERE dag_id = ? AND state = 'success' LIMIT 1", (dag_id,))
        return found.fetchone() is not None


def _task_rows(stack: LocalStack, dag_id: str) -> Iterator[tuple[str, ...]]:
    """Yield one summary row per task instance of the DAG's latest run, from its XCom."""
    with sqlite3.connect(stack.airflow_home / "airflow.db") as db:
        latest = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        if latest is None:
            return
        results = db.execute(
            "SELECT x.task_id, x.map_index, ti.rendered_map_index, x.value FROM xcom x "
            "JOIN task_instance ti ON ti.dag_id = x.dag_id AND ti.run_id = x.run_id "
            "AND ti.task_id = x.task_id AND ti.map_index = x.map_index "
            "WHERE x.dag_id = ? AND x.run_id = ? AND x.key = 'return_value' ORDER BY x.task_id, x.map_index",
            (dag_id, latest[0]),
        ).fetchall()
    for task_id, map_index, rendered_map_index, raw in results:
        value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        if not isinstance(value, dict):
            continue
        label = task_id if map_index < 0 else f"{task_id}[{rendered_map_index or map_index}]"
        rows = next((value[key] for key in ("rows", "records", "rows_enriched") if key in value), "")
        yield (
            dag_id,
            label,
            f"{rows:,}" if isinstance(rows, int) else str(rows),
            f"{value['seconds']:.1f}" if "seconds" in value else "",
            f"{value['peak_rss_mb']:.0f}" if "peak_rss_mb" in value else "",
            str(value.get("report", "")),
        )


def _warehouse_counts(stack: LocalStack) -> list[tuple[str, str]]:
    """Count the rows of every table in the warehouse's demo schema."""
    import snowflake.connector

    state = warehouse.service(stack.state_dir).status()
    assert state is not None, "the warehouse stopped during the demo"
    with snowflake.connector.connect(**warehouse.connect_kwargs(state.port)) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_type = 'BASE TABLE' ORDER BY table_name",
            (warehouse.SCHEMA,),
        )
        counts = []
        for (table,) in cursor.fetchall():
            cursor.execute(f"SELECT COUNT(*) FROM {quote_name(table)}")  # noqa: S608 - quoted identifier
            (count,) = cursor.fetchone() or (0,)
            counts.append((table, f"{count:,}"))
    return counts


def _table(rows: Sequence[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    """Format rows as an aligned text table."""
    if not rows:
        return "(no results)"
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows, strict=True)]
    lines = [columns, tuple("-" * width for width in widths), *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines
    )
