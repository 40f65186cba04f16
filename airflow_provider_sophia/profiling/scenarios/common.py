"""Helpers shared by the scenarios: connection factories and latency summaries."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from airflow_provider_sophia.profiling.histogram import LatencyHistogram
from airflow_provider_sophia.profiling.results import ScenarioResult, Side


def connection_factory(dsn: str | None) -> Callable[[], Any]:
    """Return a ``connect()`` callable for the pool scenarios.

    :param dsn: ``None`` for in-memory SQLite (runs anywhere), a ``postgresql://`` DSN for
        PostgreSQL through psycopg, or a path to a SQLite file.
    """
    if dsn is None or not dsn.startswith(("postgresql://", "postgres://")):
        path = dsn or ":memory:"
        return lambda: sqlite3.connect(path, check_same_thread=False)
    import psycopg

    return lambda: psycopg.connect(dsn, autocommit=True)


def public_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Return ``params`` fit for a report: a ``dsn`` (it may hold a password) becomes its scheme.

    :param params: a scenario's effective parameters.
    """
    dsn = params.get("dsn")
    source = "sqlite" if dsn is None or "://" not in dsn else dsn.split("://", 1)[0]
    return {key: value for key, value in params.items() if key != "dsn"} | {"source": source}


def add_latency_metrics(
    result: ScenarioResult, prefix: str, histogram: LatencyHistogram, side: Side, min_delta: float = 0.001
) -> dict[str, Any]:
    """Add ``<side>.<prefix>_{p50,p90,p99,max}_s`` to ``result``; return the histogram chart data.

    :param result: the scenario result to extend.
    :param prefix: the metric name prefix, e.g. ``acquire``.
    :param histogram: the measured latencies.
    :param side: ``before`` or ``after``.
    :param min_delta: seconds of change that count as noise in comparisons.
    """
    summary = histogram.summary()
    for stat in ("p50", "p90", "p99", "max"):
        result.add(f"{prefix}_{stat}_s", summary[stat], "s", "lower", side, min_delta=min_delta)
    return {"summary": summary, "buckets": histogram.buckets()}


def histogram_of(values: Iterable[float]) -> LatencyHistogram:
    """Return a histogram holding ``values``.

    :param values: latencies in seconds.
    """
    histogram = LatencyHistogram()
    histogram.record_many(values)
    return histogram
