"""Chunked, bounded-memory ingestion into Snowflake (no Airflow imports).

Readers stream a source as Arrow record batches (:mod:`.readers`), types map with
fidelity to Snowflake (:mod:`.types`), batches roll into parquet files PUT to a stage
(:mod:`.staging`), and load plans move them into the target in one transaction
(:mod:`.plans`); :mod:`.pipeline` ties them together.
"""

from __future__ import annotations

from airflow_provider_sophia.ingest.pipeline import (
    Loader,
    LoadSummary,
    StagedPart,
    load_parts,
    run_load,
    stage_part,
)
from airflow_provider_sophia.ingest.plans import LoadPlan
from airflow_provider_sophia.ingest.readers import (
    AdbcPostgresReader,
    ChunkReader,
    CursorReader,
    MySqlReader,
    PostgresCursorReader,
    SourceQuery,
    SqliteReader,
    reader_for,
)
from airflow_provider_sophia.ingest.types import ColumnSpec, Kind, arrow_column_spec

__all__ = [
    "AdbcPostgresReader",
    "ChunkReader",
    "ColumnSpec",
    "CursorReader",
    "Kind",
    "LoadPlan",
    "LoadSummary",
    "Loader",
    "MySqlReader",
    "PostgresCursorReader",
    "SourceQuery",
    "SqliteReader",
    "StagedPart",
    "arrow_column_spec",
    "load_parts",
    "reader_for",
    "run_load",
    "stage_part",
]
