"""Scenario ``ingest_memory``: peak RSS and rows/s of three ways to extract a table, at two sizes.

A mixed-type table (integers, decimals, floats, booleans, timestamps, text) of each size
in ``sizes`` is created in the source (a SQLite file by default, or PostgreSQL with
``dsn``) and written to a local parquet file by each method of
:mod:`~airflow_provider_sophia.profiling.scenarios.ingest_worker`, each in its own
process so that every peak RSS is honest:

* before: ``chunks_concat`` -- the original ``read_sql(chunksize) + pd.concat`` -- and
  ``read_all`` -- ``pandas.read_sql`` of everything (reported as ``read_all_*``);
* after: ``stream`` -- our chunk reader, one chunk in memory at a time.

What grows with the table shows in ``peak_rss_growth_mib``: peak RSS at the largest size
minus peak RSS at the smallest.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from airflow_provider_sophia.identifiers import quote_identifier
from airflow_provider_sophia.profiling.progress import Progress, silent
from airflow_provider_sophia.profiling.results import ScenarioResult, Side
from airflow_provider_sophia.profiling.scenarios.common import public_parameters
from airflow_provider_sophia.profiling.scenarios.ingest_worker import METHODS, SOURCE_ENV

DESCRIPTION = "Peak RSS and rows/s of read-all vs read-chunks+concat vs our streaming reader, at two sizes."
DEFAULTS: dict[str, Any] = {
    "sizes": [100_000, 1_000_000],
    "chunk_size": 5000,
    "batch_size": 1000,
    "sample_interval": 0.02,
    "timeout_s": 900.0,
    "dsn": None,
}
SMALL: dict[str, Any] = {"sizes": [2_000, 20_000], "sample_interval": 0.01}
MIB = 2**20

#: Column expressions of the generated table over a row number ``i``, per dialect.
_SQLITE_TABLE = """
CREATE TABLE {table} (
    id INTEGER PRIMARY KEY, account TEXT, amount NUMERIC(12, 2), score REAL, active BOOLEAN,
    created_at TIMESTAMP, note TEXT
)"""
_SQLITE_FILL = """
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
INSERT INTO {table}
SELECT i, 'account-' || (i % 5000), round((i % 100000) / 100.0, 2), (i * 7919 % 100000) / 7.0, i % 2,
       datetime(1700000000 + i * 37, 'unixepoch'), printf('%.80c', 'x') || i
FROM seq"""
#: ``%%`` is psycopg's escaped modulo operator.
_POSTGRES_FILL = """
CREATE TABLE {table} AS
SELECT i::bigint AS id, 'account-' || (i %% 5000) AS account,
       ((i %% 100000) / 100.0)::numeric(12, 2) AS amount, ((i * 7919) %% 100000) / 7.0::float8 AS score,
       i %% 2 = 0 AS active,
       to_timestamp(1700000000 + i * 37)::timestamp AS created_at, repeat('x', 80) || i AS note
FROM generate_series(1, %s) AS i"""


def _create_source(dsn: str | None, rows: int, directory: Path) -> tuple[str, str]:
    """Create the table of ``rows`` rows; return ``(source, table)`` for the workers."""
    table = f"perf_ingest_{rows}_{uuid.uuid4().hex[:6]}"
    quoted = quote_identifier(table, upper=False)
    if dsn is None:
        source = str(directory / f"{table}.sqlite")
        with sqlite3.connect(source) as conn:
            conn.execute(_SQLITE_TABLE.format(table=quoted))
            conn.execute(_SQLITE_FILL.format(table=quoted), (rows,))
        return source, table
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_POSTGRES_FILL.format(table=quoted).encode(), (rows,))
    return dsn, table


def _drop_source(dsn: str | None, table: str) -> None:
    """Drop a PostgreSQL table made by :func:`_create_source` (SQLite files go with their directory)."""
    if dsn is None:
        return
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {quote_identifier(table, upper=False)}".encode())


def _run_worker(method: str, source: str, table: str, directory: Path, p: dict[str, Any]) -> dict[str, Any]:
    """Run one method in a fresh interpreter and return its measurements."""
    command = [
        sys.executable, "-m", "airflow_provider_sophia.profiling.scenarios.ingest_worker",
        "--method", method, "--table", table, "--output", str(directory / f"{table}-{method}.parquet"),
        "--chunk-size", str(p["chunk_size"]), "--batch-size", str(p["batch_size"]),
        "--interval", str(p["sample_interval"]),
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        env=os.environ | {SOURCE_ENV: source},
        capture_output=True,
        text=True,
        timeout=p["timeout_s"],
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"ingest_memory method {method!r} on {table} failed with exit status {completed.returncode}:\n"
            f"{completed.stderr[-2000:]}"
        )
    (directory / f"{table}-{method}.parquet").unlink(missing_ok=True)
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def run(progress: Progress = silent, **params: Any) -> ScenarioResult:
    """Measure every method at every size, each in its own process.

    :param progress: called with the share of the work done.
    :param params: overrides of :data:`DEFAULTS`: ``sizes`` (rows, two or more), ``chunk_size``,
        ``batch_size``, ``sample_interval`` (s), ``timeout_s`` per method, ``dsn`` (``None``:
        a SQLite file; else a PostgreSQL DSN).
    """
    p = DEFAULTS | params
    sizes = sorted(int(size) for size in p["sizes"])
    if len(sizes) < 2:
        raise ValueError(f"ingest_memory needs at least two sizes to show growth, got {p['sizes']!r}.")
    result = ScenarioResult("ingest_memory", public_parameters(p | {"sizes": sizes}))
    runs: list[dict[str, Any]] = []
    steps, done = len(sizes) * len(METHODS), 0
    with tempfile.TemporaryDirectory(prefix="sophia-ingest-memory-") as tmp:
        for rows in sizes:
            progress(done / steps, f"ingest_memory: creating {rows:,} rows")
            source, table = _create_source(p["dsn"], rows, Path(tmp))
            try:
                for method in METHODS:
                    progress(done / steps, f"ingest_memory: {method} on {rows:,} rows")
                    measured = _run_worker(method, source, table, Path(tmp), p)
                    if measured["rows"] != rows:
                        raise RuntimeError(f"{method} read {measured['rows']} rows of {rows}.")
                    runs.append(_summarize(measured))
                    done += 1
            finally:
                _drop_source(p["dsn"], table)
    _add_metrics(result, runs, sizes)
    result.series = {"runs": runs}
    progress(1.0, "ingest_memory done")
    return result


def _summarize(measured: dict[str, Any]) -> dict[str, Any]:
    """Return the chart-ready summary of one worker's measurements."""
    return {
        "method": measured["method"],
        "rows": measured["rows"],
        "wall_s": measured["wall_s"],
        "rows_per_s": measured["rows"] / measured["wall_s"],
        "peak_rss_mib": measured["peak_rss"] / MIB,
        "start_rss_mib": measured["rss_start"] / MIB,
        "rss_mib": [[round(t, 4), rss / MIB] for t, rss in measured["rss_samples"]],
    }


def _add_metrics(result: ScenarioResult, runs: list[dict[str, Any]], sizes: list[int]) -> None:
    """Add per-size peak RSS and rows/s, and the growth of peak RSS from smallest to largest size."""
    by = {(run["method"], run["rows"]): run for run in runs}
    growth = {
        method: by[(method, sizes[-1])]["peak_rss_mib"] - by[(method, sizes[0])]["peak_rss_mib"]
        for method in METHODS
    }
    sides: dict[str, tuple[Side, str]] = {
        "chunks_concat": ("before", ""),
        "read_all": ("before", "read_all_"),
        "stream": ("after", ""),
    }
    for method, (side, prefix) in sides.items():
        for rows in sizes:
            run = by[(method, rows)]
            result.add(
                f"{prefix}peak_rss_mib_{rows}_rows", run["peak_rss_mib"], "MiB", "lower", side, min_delta=16
            )
            result.add(f"{prefix}rows_per_s_{rows}_rows", run["rows_per_s"], "rows/s", "higher", side)
        result.add(f"{prefix}peak_rss_growth_mib", growth[method], "MiB", "lower", side, min_delta=16)
    for rows in sizes:
        peaks = ", ".join(f"{method} {by[(method, rows)]['peak_rss_mib']:.0f} MiB" for method in METHODS)
        speeds = ", ".join(f"{method} {by[(method, rows)]['rows_per_s']:,.0f}" for method in METHODS)
        result.notes.append(f"{rows:,} rows: peak RSS {peaks}; rows/s {speeds}.")
    grown = ", ".join(f"{method} {growth[method]:+.0f} MiB" for method in METHODS)
    result.notes.append(f"Peak RSS growth from {sizes[0]:,} to {sizes[-1]:,} rows: {grown}.")
