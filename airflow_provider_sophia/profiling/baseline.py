"""Baseline stores: profiling runs saved as versioned JSON files or in a ``PERF_BASELINES`` table.

Both stores have ``save(run)`` and ``load(run_id=None)`` (the latest run when no id is
given). The table store works over any DB-API connection (Snowflake, the embedded
warehouse, SQLite): identifiers are validated and quoted, values are bind parameters.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_sophia.identifiers import quote_column, quote_identifier
from airflow_provider_sophia.profiling.results import FORMAT_VERSION, RunResult, ScenarioResult

log = logging.getLogger(__name__)

DEFAULT_TABLE = "PERF_BASELINES"
_COLUMNS = ("RUN_ID", "CREATED_AT", "FORMAT_VERSION", "SCENARIO_INDEX", "SCENARIO", "ENVIRONMENT", "RESULT")
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class BaselineStore(Protocol):
    """Where profiling runs are kept."""

    def save(self, run: RunResult) -> str:
        """Store ``run``; return where it went."""
        ...

    def load(self, run_id: str | None = None) -> RunResult:
        """Return the run ``run_id``, or the latest one."""
        ...


def save_json(run: RunResult, path: str | Path) -> Path:
    """Write ``run`` as JSON to ``path`` (parents created); return the path.

    :param run: the run.
    :param path: the file to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def load_json(path: str | Path) -> RunResult:
    """Read a run written by :func:`save_json`.

    :param path: the JSON file.
    :raises ValueError: when the file is not a profiling run this code reads.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); pass a file written by a profiling run."
        ) from None
    return RunResult.from_dict(data)


class DirectoryStore:
    """Runs as ``perf-<created_at>-<run_id>.json`` files in a directory.

    :param path: the directory, or one JSON file to load from.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def save(self, run: RunResult) -> str:
        """Write ``run`` into the directory; return the file's path.

        :param run: the run.
        """
        stamp = run.created_at.replace(":", "").replace("-", "").replace("+0000", "Z")
        return str(save_json(run, self.path / f"perf-{stamp}-{run.run_id}.json"))

    def load(self, run_id: str | None = None) -> RunResult:
        """Return the run ``run_id`` or the newest one in the directory (or the file itself).

        :param run_id: the run to load; the newest when ``None``.
        :raises FileNotFoundError: when no such run is stored there.
        """
        if self.path.is_file():
            return load_json(self.path)
        pattern = f"perf-*-{run_id}.json" if run_id else "perf-*.json"
        files = sorted(self.path.glob(pattern))
        if not files:
            raise FileNotFoundError(
                f"No profiling run {run_id or ''} in {self.path}; run "
                "`python -m airflow_provider_sophia.profiling run --save-baseline DIR` first."
            )
        return load_json(files[-1])


class TableStore:
    """Runs in a table, one row per scenario, over a DB-API connection.

    :param connection: an open DB-API connection (Snowflake connector, sqlite3, ...).
    :param table: the table, optionally qualified (``DB.SCHEMA.PERF_BASELINES``).
    :param paramstyle: the driver's bind style: ``pyformat``/``format`` (Snowflake) or ``qmark``.
    """

    def __init__(self, connection: Any, table: str = DEFAULT_TABLE, paramstyle: str = "pyformat") -> None:
        if paramstyle not in _PLACEHOLDERS:
            raise ValueError(
                f"paramstyle {paramstyle!r} is not supported; use one of {sorted(_PLACEHOLDERS)}."
            )
        self.connection = connection
        self.table = quote_identifier(table)
        self._mark = _PLACEHOLDERS[paramstyle]
        self._columns = [quote_column(column) for column in _COLUMNS]

    # Every identifier in this class's SQL is validated and quoted; every value is bound.
    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def create(self) -> None:
        """Create the table when it does not exist."""
        types = ("VARCHAR", "VARCHAR", "INTEGER", "INTEGER", "VARCHAR", "VARCHAR", "VARCHAR")
        columns = ", ".join(f"{name} {kind}" for name, kind in zip(self._columns, types, strict=True))
        self._execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({columns})")

    def save(self, run: RunResult) -> str:
        """Insert one row per scenario of ``run`` (creating the table first); return the table.

        :param run: the run.
        """
        self.create()
        marks = ", ".join([self._mark] * len(self._columns))
        sql = f"INSERT INTO {self.table} ({', '.join(self._columns)}) VALUES ({marks})"  # noqa: S608
        environment = json.dumps(run.environment, sort_keys=True)
        for index, result in enumerate(run.results):
            row = (run.run_id, run.created_at, FORMAT_VERSION, index, result.scenario, environment)
            self._execute(sql, (*row, json.dumps(result.to_dict())))
        self.connection.commit()
        log.info("Saved profiling run %s (%d scenarios) to %s", run.run_id, len(run.results), self.table)
        return self.table

    def load(self, run_id: str | None = None) -> RunResult:
        """Return the run ``run_id`` or the latest run in the table (created empty when missing).

        :param run_id: the run to load; the latest when ``None``.
        :raises LookupError: when the table holds no such run.
        :raises ValueError: when the stored run has a format version this code does not read.
        """
        self.create()
        run_col, created_col, version_col = self._columns[:3]
        if run_id is None:
            latest = self._execute(
                f"SELECT {run_col} FROM {self.table} ORDER BY {created_col} DESC, {run_col} DESC LIMIT 1"  # noqa: S608
            )
            if not latest:
                raise LookupError(f"{self.table} holds no profiling run; save one first.")
            run_id = str(latest[0][0])
        rows = self._execute(
            f"SELECT {', '.join(self._columns)} FROM {self.table} "  # noqa: S608
            f"WHERE {run_col} = {self._mark} ORDER BY {self._columns[3]}",
            (run_id,),
        )
        if not rows:
            raise LookupError(f"{self.table} holds no profiling run {run_id!r}.")
        versions = {int(row[2]) for row in rows}
        if versions != {FORMAT_VERSION}:
            raise ValueError(
                f"Run {run_id!r} in {self.table} has {version_col} {sorted(versions)}; this code reads "
                f"{FORMAT_VERSION}. Rerun the scenarios to make a new baseline."
            )
        return RunResult(
            results=[ScenarioResult.from_dict(json.loads(row[6])) for row in rows],
            environment=json.loads(rows[0][5]),
            created_at=str(rows[0][1]),
            run_id=run_id,
        )
