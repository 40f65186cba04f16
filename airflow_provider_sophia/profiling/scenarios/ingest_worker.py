"""One ingest method in its own process, so that its peak RSS is its own (used by ``ingest_memory``).

``python -m airflow_provider_sophia.profiling.scenarios.ingest_worker --method M --table T
--output FILE`` reads the table from the source named by ``$SOPHIA_PROFILING_SOURCE`` (a
SQLite file path or a ``postgresql://`` DSN; an environment variable so that a password
never shows in the process list), writes it to one parquet file and prints its
measurements as one JSON line. Each method imports only what it needs before the
profiler starts, so the imports count in its RSS as they would in a real worker.

Methods:

* ``read_all`` (naive): ``pandas.read_sql`` of the whole table, then ``to_parquet``;
* ``chunks_concat`` (the original): ``pandas.read_sql(chunksize=...)``, ``pd.concat`` of
  every chunk, then ``to_parquet`` -- chunked reading that still holds the whole table;
* ``stream`` (ours): our chunk reader's Arrow batches appended to a parquet writer, one
  chunk in memory at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import warnings
from collections.abc import Callable
from typing import Any

from airflow_provider_sophia.identifiers import quote_identifier
from airflow_provider_sophia.profiling.profiler import Profiler

SOURCE_ENV = "SOPHIA_PROFILING_SOURCE"
METHODS = ("read_all", "chunks_concat", "stream")


def connect(source: str) -> tuple[Any, str]:
    """Return ``(connection, dialect)`` for a SQLite path or a PostgreSQL DSN.

    :param source: the source.
    """
    if source.startswith(("postgresql://", "postgres://")):
        import psycopg

        return psycopg.connect(source), "postgresql"
    return sqlite3.connect(source), "sqlite"


def _pandas_method(concat: bool, chunk_size: int) -> Callable[[Any, str, str, str], int]:
    import pandas as pd

    def run(conn: Any, dialect: str, table: str, output: str) -> int:
        sql = f"SELECT * FROM {quote_identifier(table, upper=False)}"  # noqa: S608 - validated identifier
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy for non-sqlite3
            if concat:
                frame = pd.concat(pd.read_sql(sql, conn, chunksize=chunk_size), ignore_index=True)
            else:
                frame = pd.read_sql(sql, conn)
        frame.to_parquet(output, index=False)
        return len(frame)

    return run


def _stream_method(chunk_size: int, batch_size: int) -> Callable[[Any, str, str, str], int]:
    import pyarrow.parquet as pq

    from airflow_provider_sophia.ingest.readers import SourceQuery, reader_for

    def run(conn: Any, dialect: str, table: str, output: str) -> int:
        reader = reader_for(conn, dialect, chunk_size=chunk_size, batch_size=batch_size)
        reader.open(SourceQuery(table=table))
        rows = 0
        try:
            with pq.ParquetWriter(output, reader.schema) as writer:
                for batch in reader.chunks():
                    writer.write_batch(batch)
                    rows += batch.num_rows
        finally:
            reader.close()
        return rows

    return run


def measure(
    method: str, table: str, output: str, chunk_size: int, batch_size: int, interval: float
) -> dict[str, Any]:
    """Run ``method`` under a profiler and return its measurements.

    :param method: one of :data:`METHODS`.
    :param table: the source table.
    :param output: the parquet file to write.
    :param chunk_size: rows per chunk (pandas ``chunksize`` and ours).
    :param batch_size: rows per fetch (ours).
    :param interval: seconds between RSS samples.
    """
    conn, dialect = connect(os.environ[SOURCE_ENV])
    if method == "stream":
        work = _stream_method(chunk_size, batch_size)
    else:
        work = _pandas_method(method == "chunks_concat", chunk_size)
    profiler = Profiler(method, sample_interval=interval)
    with profiler:
        rows = work(conn, dialect, table, output)
    conn.close()
    assert profiler.result is not None
    result = profiler.result
    return {
        "method": method,
        "rows": rows,
        "wall_s": result.wall_s,
        "cpu_s": result.cpu_s,
        "rss_start": result.rss_start,
        "peak_rss": result.peak_rss,
        "rss_samples": result.rss_samples,
        "output_bytes": os.path.getsize(output),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args(argv)
    result = measure(args.method, args.table, args.output, args.chunk_size, args.batch_size, args.interval)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
