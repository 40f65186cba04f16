"""Benchmark: chunked PostgreSQL extraction, ours against the usual ways, each in its own process.

Every method reads the same mixed-type table (17 columns: integers, numerics, floats, booleans,
unicode and long text, bytes, dates, naive and zoned timestamps, json/jsonb, uuid, NULLs) and
reports rows/s and its peak RSS; ratios are against raw ``COPY ... TO STDOUT`` and dlt in the
same run; the fast methods behind the headline ratio run ``--passes`` times (median kept).
``python -m bench.ingest_bench [--quick]`` writes ``bench/results/ingest_bench.json``. The
machine is shared: absolute numbers move between runs, ratios within a run are the claim.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DSN = os.environ.get("SOPHIA_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).resolve().parent / "results" / "ingest_bench.json"
REPO = Path(__file__).resolve().parent.parent
CHUNK = 5000

MIXED_COLUMNS = """
    id bigint PRIMARY KEY,
    small_i smallint,
    int_i integer,
    amount numeric(12,2),
    ratio numeric,
    score double precision,
    f4 real,
    flag boolean,
    name text,
    long_text text,
    payload bytea,
    day date,
    created_at timestamp,
    updated_at timestamptz,
    doc jsonb,
    meta json,
    uid uuid
"""

MIXED_SELECT = """
SELECT g,
       CASE WHEN g %% 11 = 0 THEN NULL ELSE (g %% 32000)::smallint END,
       CASE WHEN g %% 13 = 0 THEN NULL ELSE (g * 7) %% 2000000000 END,
       CASE WHEN g %% 17 = 0 THEN NULL ELSE ((g %% 1000000) * 1.37)::numeric(12,2) END,
       CASE WHEN g %% 19 = 0 THEN NULL ELSE (g * 0.001)::numeric END,
       CASE WHEN g %% 23 = 0 THEN NULL ELSE g / 3.0::float8 END,
       CASE WHEN g %% 29 = 0 THEN NULL ELSE (g %% 1000) / 8.0::real END,
       CASE WHEN g %% 31 = 0 THEN NULL ELSE g %% 2 = 0 END,
       CASE WHEN g %% 37 = 0 THEN NULL ELSE 'naïve ☃ 名前 ' || g END,
       CASE WHEN g %% 100 = 0 THEN repeat('long text ', 200) || g ELSE NULL END,
       CASE WHEN g %% 41 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
       CASE WHEN g %% 43 = 0 THEN NULL ELSE date '2020-01-01' + (g %% 2000)::int END,
       CASE WHEN g %% 47 = 0 THEN NULL ELSE timestamp '2020-01-01'
            + g * interval '1 second 123457 microseconds' END,
       CASE WHEN g %% 53 = 0 THEN NULL ELSE timestamptz '2020-01-01 00:00:00+00'
            + g * interval '61 seconds' END,
       CASE WHEN g %% 59 = 0 THEN NULL ELSE jsonb_build_object('n', g,
            'tags', jsonb_build_array('a', g %% 5), 'ok', g %% 3 = 0) END,
       CASE WHEN g %% 61 = 0 THEN NULL ELSE json_build_object('k', 'v' || g) END,
       CASE WHEN g %% 67 = 0 THEN NULL ELSE md5(g::text || 'u')::uuid END
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""


def create_mixed_table(dsn: str, table: str, rows: int) -> None:
    """(Re)create ``table`` in PostgreSQL with ``rows`` rows of every mapped type."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        conn.execute(f'CREATE TABLE "{table}" ({MIXED_COLUMNS})')
        conn.execute(f'INSERT INTO "{table}" {MIXED_SELECT}', {"start": 1, "stop": rows})
        conn.execute(f'ANALYZE "{table}"')


# --- methods (each runs in a child process) -------------------------------------------


def _raw_copy(table: str, **_: Any) -> int:
    import psycopg

    rows = 0
    sql = f'COPY (SELECT * FROM "{table}") TO STDOUT'
    with (
        psycopg.connect(DSN) as conn,
        conn.cursor() as cursor,
        cursor.copy(sql) as copy,
        open(os.devnull, "wb") as sink,
    ):
        for data in copy:
            sink.write(data)
            rows += bytes(data).count(b"\n")
    return rows


def _to_parquet(reader: Any, table: str) -> int:
    """Stage ``table`` through ``reader`` into local parquet files as a load does, minus the PUT."""
    from airflow_provider_sophia.ingest import SourceQuery
    from airflow_provider_sophia.ingest.staging import ParquetFiles

    rows = 0
    reader.open(SourceQuery(table=table))
    with tempfile.TemporaryDirectory() as tmp:
        files = ParquetFiles(tmp, reader.schema, lambda path, _: os.remove(path))
        try:
            for batch in reader.chunks():
                files.write(batch)
                rows += batch.num_rows
            files.close()
        finally:
            files.abort()
    return rows


def _ours_adbc(table: str, **_: Any) -> int:
    from airflow_provider_sophia.ingest.readers import AdbcPostgresReader, connect_adbc_postgres

    return _to_parquet(AdbcPostgresReader(connect_adbc_postgres(DSN), chunk_size=CHUNK), table)


def _ours_psycopg(table: str, **_: Any) -> int:
    import psycopg

    from airflow_provider_sophia.ingest.readers import PostgresCursorReader

    with psycopg.connect(DSN) as conn:
        return _to_parquet(PostgresCursorReader(conn, chunk_size=CHUNK, batch_size=1000), table)


def _ours_end_to_end(table: str, port: int, **_: Any) -> int:
    import snowflake.connector

    from airflow_provider_sophia.ingest import Loader, LoadPlan, SourceQuery, run_load
    from airflow_provider_sophia.ingest.readers import AdbcPostgresReader, connect_adbc_postgres
    from airflow_provider_sophia.local.warehouse import connect_kwargs

    def connect() -> Any:
        return contextlib.closing(snowflake.connector.connect(**connect_kwargs(port)))

    with connect() as connection:
        target = f"BENCH_{table.upper()}_{os.getpid()}"
        loader = Loader(connection, LoadPlan(target=target, mode="replace"), target, connect=connect)
        reader = AdbcPostgresReader(connect_adbc_postgres(DSN), chunk_size=CHUNK)
        return run_load(loader, reader, SourceQuery(table=table)).rows


def _psycopg2(table: str) -> Any:
    import psycopg2

    return psycopg2.connect(DSN), f'SELECT * FROM "{table}"'


def _pandas_whole(table: str, **_: Any) -> int:
    import pandas as pd

    conn, sql = _psycopg2(table)
    return len(pd.read_sql(sql, conn))


def _pandas_chunks_concat(table: str, **_: Any) -> int:
    import pandas as pd

    conn, sql = _psycopg2(table)
    return len(pd.concat(pd.read_sql(sql, conn, chunksize=CHUNK)))


def _pandas_chunks(table: str, **_: Any) -> int:
    import pandas as pd

    conn, sql = _psycopg2(table)
    return sum(len(chunk) for chunk in pd.read_sql(sql, conn, chunksize=CHUNK))


def _dlt(table: str, **_: Any) -> int:
    import dlt
    from dlt.sources.sql_database import sql_table

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = Path(tmp, "bucket").as_uri()
        os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
        pipeline = dlt.pipeline(
            pipeline_name="bench", pipelines_dir=str(Path(tmp, "p")), destination="filesystem"
        )
        source = sql_table(
            credentials=DSN.replace("postgresql://", "postgresql+psycopg2://"),
            table=table,
            backend="pyarrow",
            chunk_size=CHUNK,
        )
        pipeline.run(source, loader_file_format="parquet")
        return int(pipeline.last_trace.last_normalize_info.row_counts[table])


OURS = ["pyarrow.parquet", "airflow_provider_sophia.ingest", "adbc_driver_postgresql.dbapi", "psycopg"]
#: method -> (function, modules imported before the clock starts: import time is not throughput)
METHODS: dict[str, tuple[Any, list[str]]] = {
    "raw COPY TO STDOUT": (_raw_copy, ["psycopg"]),
    "ours: ADBC stream -> parquet": (_ours_adbc, OURS),
    "ours: psycopg named cursor -> parquet": (_ours_psycopg, OURS),
    "pandas.read_sql whole": (_pandas_whole, ["pandas", "psycopg2"]),
    "original read_sql(chunksize)+concat": (_pandas_chunks_concat, ["pandas", "psycopg2"]),
    "read_sql(chunksize) over psycopg2": (_pandas_chunks, ["pandas", "psycopg2"]),
    "dlt sql_table pyarrow -> parquet": (
        _dlt,
        ["dlt", "dlt.sources.sql_database", "pyarrow.parquet", "sqlalchemy"],
    ),
    "ours end-to-end into the warehouse": (_ours_end_to_end, [*OURS, "snowflake.connector"]),
}
#: the fast methods behind the headline ratio, run several times: one noisy run of a
#: second on a shared machine must not decide it (the median run is kept).
REPEATED = {"raw COPY TO STDOUT", "ours: ADBC stream -> parquet", "ours end-to-end into the warehouse"}


def _child(method: str, table: str, port: int) -> None:
    function, modules = METHODS[method]
    for module in modules:
        importlib.import_module(module)
    started = time.perf_counter()
    rows = function(table, port=port)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": round(seconds, 3), "peak_rss_mb": round(peak, 1)}))


def _run(method: str, table: str, port: int) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "bench.ingest_bench",
        "--child",
        method,
        "--table",
        table,
        "--port",
        str(port),
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    if done.returncode != 0:
        return {
            "error": done.stderr.strip().splitlines()[-1]
            if done.stderr.strip()
            else f"exit {done.returncode}"
        }
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rows_per_s"] = round(result["rows"] / max(result["seconds"], 1e-9))
    return result


def _measure(method: str, table: str, port: int, passes: int) -> dict[str, Any]:
    """Run ``method`` (``passes`` times when it is in :data:`REPEATED`); return its median run."""
    runs = [_run(method, table, port) for _ in range(passes if method in REPEATED else 1)]
    failed = [run for run in runs if "error" in run]
    if failed:
        return failed[0]
    median = sorted(runs, key=lambda run: run["rows_per_s"])[len(runs) // 2]
    return median | {
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "passes_rows_per_s": [run["rows_per_s"] for run in runs],
    }


def main(argv: list[str] | None = None) -> None:
    """Create the tables, run every method in its own process, print and save the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20k and 100k rows instead of 200k and 2M")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), help="subset of methods to run")
    parser.add_argument("--passes", type=int, default=3, help="runs of the fast methods (median kept)")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.table, args.port)
        return
    from airflow_provider_sophia.local import warehouse as wh

    sizes = [20_000, 100_000] if args.quick else [200_000, 2_000_000]
    report: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} cores, shared", "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="sophia-bench-wh-") as tmp:
        service = wh.service(Path(tmp))
        state, _ = service.start()
        try:
            for size in sizes:
                table = f"bench_mixed_{size}"
                create_mixed_table(DSN, table, size)
                results = {
                    method: _measure(method, table, state.port, args.passes) for method in args.methods
                }
                report["sizes"][str(size)] = results
                _print(size, results)
        finally:
            service.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {RESULTS}")


def _print(size: int, results: dict[str, dict[str, Any]]) -> None:
    copy = results.get("raw COPY TO STDOUT", {}).get("rows_per_s")
    dlt = results.get("dlt sql_table pyarrow -> parquet", {}).get("rows_per_s")
    print(f"\n{size:,} rows")
    print(f"{'method':42} {'rows/s':>10} {'vs COPY':>8} {'vs dlt':>8} {'peak RSS MiB':>13}")
    for method, result in results.items():
        if "error" in result:
            print(f"{method:42} failed: {result['error']}")
            continue
        rate = result["rows_per_s"]
        result["vs_copy"] = round(rate / copy, 2) if copy else None
        result["vs_dlt"] = round(rate / dlt, 2) if dlt else None
        print(
            f"{method:42} {rate:>10,} {result['vs_copy'] or '-':>8} {result['vs_dlt'] or '-':>8} "
            f"{result['peak_rss_mb']:>13}"
        )


if __name__ == "__main__":
    main()
