"""Helpers of the ingestion integration tests: loaders on the embedded warehouse, checksums."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from airflow_provider_sophia.ingest import Loader, LoadPlan
from tests.conftest import EmbeddedWarehouse


def make_loader(warehouse: EmbeddedWarehouse, connection: Any, load_id: str, **plan: Any) -> Loader:
    """Return a loader on ``connection`` whose uploads use their own warehouse connections."""
    return Loader(
        connection,
        LoadPlan(**plan),
        load_id,
        file_size_mb=4,
        parallelism=2,
        connect=lambda: contextlib.closing(warehouse.connect()),
        progress_every=10,
    )


def _normal(value: Any, json_column: bool) -> str | None:
    if value is None:
        return None
    if json_column:
        return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, decimal.Decimal | int):
        return format(decimal.Decimal(value).normalize(), "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.timezone.utc) if value.tzinfo else value).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def checksums(rows: Sequence[Sequence[Any]], names: Sequence[str], json_columns: Sequence[str] = ()) -> dict:
    """Return per column (non-NULL count, md5 of the normalised values in row order)."""
    result = {}
    for index, name in enumerate(names):
        values = [_normal(row[index], name in json_columns) for row in rows]
        digest = hashlib.md5(repr(values).encode(), usedforsecurity=False).hexdigest()
        result[name] = (sum(value is not None for value in values), digest)
    return result


def target_rows(connection: Any, table: str, names: Sequence[str], timestamps: Sequence[str] = ()) -> list:
    """Fetch the target ordered by ID; timestamps as text (the emulator shows NULL ones as 1970)."""
    columns = ", ".join(f'"{name}"::VARCHAR' if name in timestamps else f'"{name}"' for name in names)
    rows = connection.cursor().execute(f'SELECT {columns} FROM "{table}" ORDER BY "ID"').fetchall()
    positions = [names.index(name) for name in timestamps]
    fixed = []
    for row in rows:
        row = list(row)
        for position in positions:
            if row[position] is not None:
                row[position] = dt.datetime.fromisoformat(row[position])
        fixed.append(row)
    return fixed


def scalar(connection: Any, sql: str, params: Any = None) -> Any:
    """Return the first value of the first row."""
    return connection.cursor().execute(sql, params).fetchone()[0]


def staging_leftovers(connection: Any) -> list[str]:
    """Return the names of staging tables still present."""
    rows = connection.cursor().execute("SHOW TABLES").fetchall()
    return [row[1] for row in rows if str(row[1]).startswith("_SOPHIA_STG_")]
