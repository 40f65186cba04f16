"""Load plans: move a transient staging table into the target in ONE transaction.

* ``append`` -- insert the staged rows. With an incremental window, the target's rows of
  that window are deleted first, so a rerun of the window yields the same target. Without
  a window, the load id is recorded in the ledger table ``_SOPHIA_LOADS`` in the same
  transaction and a load whose id is already there is skipped: exactly once per load id.
* ``replace`` -- delete every target row and insert the staged rows in one transaction:
  readers see the old rows until the commit, then the new ones, never an empty or half
  loaded table. (``ALTER TABLE ... SWAP WITH`` would also be atomic in Snowflake, but it is
  DDL, which commits on its own, and the embedded warehouse does not parse it.)
* ``merge`` -- upsert on ``merge_keys``; among staged rows of one key the latest wins (by
  ``incremental_column`` when given, then by stream order), and with ``incremental_column``
  a staged row older than the target's row of its key leaves that row alone, so a late
  backfill or an overlapping run that commits last never moves a row back in time.
  ``compare_columns`` limits rewrites to rows where one of them changed (e.g. a content
  hash). It runs as a DELETE of the matched (changed) rows plus an INSERT of the latest
  staged rows whose key is then absent, in one transaction: the embedded warehouse cannot
  run ``MERGE`` inside an explicit transaction, and this form is atomic in both. Target
  columns the source does not have are reset to NULL on rewritten rows.

DDL (target, staging table, ledger) runs before ``BEGIN``: Snowflake DDL commits on its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sophia.exceptions import IngestError, InvalidIdentifierError
from airflow_provider_sophia.identifiers import (
    normalize_part,
    quote_column,
    quote_identifier,
    quote_name,
    split_identifier,
)
from airflow_provider_sophia.ingest.types import ColumnSpec, Kind

log = logging.getLogger(__name__)

MODES = ("append", "replace", "merge")
#: extra staged column numbering rows in stream order (the latest row of a key wins a merge).
ROW_COLUMN = "_SOPHIA_ROW"
LEDGER_TABLE = "_SOPHIA_LOADS"
STAGING_PREFIX = "_SOPHIA_STG_"

Statement = tuple[str, tuple[Any, ...]]


def load_key(load_id: str) -> str:
    """Return the short deterministic key naming a load's staging objects."""
    return hashlib.sha256(load_id.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LoadPlan:
    """How staged rows reach the target table.

    :param target: target table, ``table``, ``schema.table`` or ``db.schema.table``.
    :param mode: ``append``, ``replace`` or ``merge``.
    :param merge_keys: source column names the merge matches on.
    :param incremental_column: source column of the incremental window (and merge order).
    :param window: ``(start, end)`` of the incremental window, end exclusive.
    :param compare_columns: merge only: update a matched row only when one of these differs.
    :param create_table: create the target when missing (else a missing target is an error).
    """

    target: str
    mode: str = "append"
    merge_keys: Sequence[str] = ()
    incremental_column: str | None = None
    window: tuple[Any, Any] | None = None
    compare_columns: Sequence[str] = ()
    create_table: bool = True
    _namespace: list[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_namespace", split_identifier(self.target)[:-1])
        for option in ("merge_keys", "compare_columns"):
            if isinstance(getattr(self, option), str):
                raise InvalidIdentifierError(
                    f"{option} must be a list of column names, got the string {getattr(self, option)!r}; "
                    f"use e.g. [{getattr(self, option)!r}]."
                )
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "merge" and not self.merge_keys:
            raise ValueError("mode='merge' needs merge_keys, e.g. merge_keys=['id'].")
        if self.mode == "replace" and self.window is not None:
            raise ValueError(
                "mode='replace' reloads the whole table and takes no incremental window; "
                "use mode='append' (the window's rows are replaced) or mode='merge'."
            )
        if self.window is not None and self.incremental_column is None:
            raise ValueError("An incremental window needs incremental_column.")
        for name in (*self.merge_keys, *self.compare_columns, self.incremental_column or "x"):
            quote_column(name, upper=False)

    @property
    def quoted_target(self) -> str:
        """The validated, quoted target name."""
        return quote_identifier(self.target)

    @property
    def uses_ledger(self) -> bool:
        """Whether reruns are deduplicated by load id (append without window is not idempotent)."""
        return self.mode == "append" and self.window is None

    def sibling(self, name: str) -> str:
        """Return the quoted name of a helper table next to the target (same database and schema)."""
        return ".".join(quote_name(part) for part in [*self._namespace, name])

    def staging_table(self, load_id: str) -> str:
        """Return the quoted name of the transient staging table of ``load_id`` (reused on retry)."""
        return self.sibling(STAGING_PREFIX + load_key(load_id).upper())

    def create_staging_sql(self, specs: Sequence[ColumnSpec], load_id: str) -> str:
        """Return DDL (re)creating the empty transient staging table."""
        columns = [f"{quote_name(spec.target)} {spec.staging_type}" for spec in specs]
        columns.append(f"{quote_name(ROW_COLUMN)} NUMBER(38,0)")
        return f"CREATE OR REPLACE TRANSIENT TABLE {self.staging_table(load_id)} ({', '.join(columns)})"

    def create_target_sql(self, specs: Sequence[ColumnSpec]) -> str:
        """Return DDL creating the target when it does not exist."""
        columns = ", ".join(f"{quote_name(spec.target)} {spec.snowflake_type}" for spec in specs)
        return f"CREATE TABLE IF NOT EXISTS {self.quoted_target} ({columns})"

    def statements(self, specs: Sequence[ColumnSpec], load_id: str) -> list[Statement]:
        """Return the DML applied inside the transaction, with bind parameters.

        :raises InvalidIdentifierError: when a merge key, compare or incremental column is not a column.
        """
        staging = self.staging_table(load_id)
        target = self.quoted_target
        names = [quote_name(spec.target) for spec in specs]
        select = ", ".join(
            f"{spec.load_expression(quote_name('SRC'))} AS {name}"
            for spec, name in zip(specs, names, strict=True)
        )
        if self.mode == "merge":
            return self._merge_statements(specs, staging, select)
        columns = ", ".join(names)
        insert = (
            f"INSERT INTO {target} ({columns}) SELECT {select} FROM {staging} AS {quote_name('SRC')}",  # noqa: S608
            (),
        )
        if self.mode == "replace":
            return [(f"DELETE FROM {target}", ()), insert]  # noqa: S608
        if self.window is None:
            return [insert]
        column = resolve_column(specs, self.incremental_column or "")
        bounds = tuple(window_bound(value, column.kind) for value in self.window)
        where = f"{quote_name(column.target)} >= %s AND {quote_name(column.target)} < %s"
        return [(f"DELETE FROM {target} WHERE {where}", bounds), insert]  # noqa: S608

    def _merge_statements(self, specs: Sequence[ColumnSpec], staging: str, select: str) -> list[Statement]:
        src, tgt, new = quote_name("SRC"), quote_name("T"), quote_name("S")
        keys = [quote_name(resolve_column(specs, key).target) for key in self.merge_keys]
        order = [f"{src}.{quote_name(ROW_COLUMN)} DESC"]
        not_older = ""
        if self.incremental_column:
            latest_first = quote_name(resolve_column(specs, self.incremental_column).target)
            order.insert(0, f"{src}.{latest_first} DESC NULLS LAST")
            not_older = f" AND NOT COALESCE({tgt}.{latest_first} > {new}.{latest_first}, FALSE)"
        partition = ", ".join(f"{src}.{key}" for key in keys)
        latest = (
            f"(SELECT {select} FROM {staging} AS {src} QUALIFY ROW_NUMBER() OVER "  # noqa: S608
            f"(PARTITION BY {partition} ORDER BY {', '.join(order)}) = 1) AS {new}"
        )
        same_key = " AND ".join(f"{new}.{key} = {tgt}.{key}" for key in keys)
        compare = [quote_name(resolve_column(specs, name).target) for name in self.compare_columns]
        changed = " OR ".join(f"{tgt}.{name} IS DISTINCT FROM {new}.{name}" for name in compare)
        condition = (f"{same_key} AND ({changed})" if changed else same_key) + not_older
        names = [quote_name(spec.target) for spec in specs]
        target = self.quoted_target
        columns, values = ", ".join(names), ", ".join(f"{new}.{name}" for name in names)
        delete = f"DELETE FROM {target} AS {tgt} WHERE EXISTS (SELECT 1 FROM {latest} WHERE {condition})"  # noqa: S608
        absent = f"NOT EXISTS (SELECT 1 FROM {target} AS {tgt} WHERE {same_key})"  # noqa: S608
        insert = f"INSERT INTO {target} ({columns}) SELECT {values} FROM {latest} WHERE {absent}"  # noqa: S608
        return [(delete, ()), (insert, ())]


def resolve_column(specs: Sequence[ColumnSpec], name: str) -> ColumnSpec:
    """Find the column a user named (as in the source, or as in Snowflake).

    :raises InvalidIdentifierError: when no column of the result has that name.
    """
    wanted = {name, normalize_part(name, upper=False), normalize_part(name, upper=True)}
    for spec in specs:
        if spec.name in wanted or spec.target in wanted:
            return spec
    raise InvalidIdentifierError(
        f"Column {name!r} is not in the source result; its columns are {[spec.name for spec in specs]}."
    )


def window_bound(value: Any, kind: Kind) -> Any:
    """Return a window bound comparable with a target column of ``kind`` (NTZ columns: naive UTC)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None and kind is not Kind.TIMESTAMP_TZ:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def ledger_sql(plan: LoadPlan) -> tuple[str, str, str]:
    """Return (create, lookup, insert) statements of the ledger next to ``plan``'s target."""
    ledger = plan.sibling(LEDGER_TABLE)
    return (
        f"CREATE TABLE IF NOT EXISTS {ledger} (LOAD_ID VARCHAR, TARGET_TABLE VARCHAR, MODE VARCHAR, "
        "ROWS_LOADED NUMBER(38,0), LOADED_AT TIMESTAMP_NTZ)",
        f"SELECT ROWS_LOADED FROM {ledger} WHERE LOAD_ID = %s AND TARGET_TABLE = %s",  # noqa: S608
        f"INSERT INTO {ledger} (LOAD_ID, TARGET_TABLE, MODE, ROWS_LOADED, LOADED_AT) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, CURRENT_TIMESTAMP())",
    )


def loaded_rows(cursor: Any, plan: LoadPlan, load_id: str) -> int | None:
    """Return the rows a finished load recorded in the ledger, ``None`` when it did not finish."""
    create, lookup, _ = ledger_sql(plan)
    cursor.execute(create)
    row = cursor.execute(lookup, (load_id, plan.quoted_target)).fetchone()
    return None if row is None else int(row[0])


def apply_plan(cursor: Any, plan: LoadPlan, specs: Sequence[ColumnSpec], load_id: str, rows: int) -> None:
    """Apply ``plan`` from the staging table in one transaction and record it in the ledger.

    :param cursor: a Snowflake cursor (autocommit on; the transaction is explicit).
    :param plan: the load plan.
    :param specs: the staged columns.
    :param load_id: the load's id (recorded in the ledger).
    :param rows: rows staged (recorded in the ledger).
    :raises IngestError: when a statement fails; the transaction is rolled back.
    """
    statements = plan.statements(specs, load_id)
    create, _, record = ledger_sql(plan)
    cursor.execute(create)
    cursor.execute("BEGIN")
    try:
        for sql, params in statements:
            cursor.execute(sql, params or None)
        cursor.execute(record, (load_id, plan.quoted_target, plan.mode, rows))
        cursor.execute("COMMIT")
    except BaseException as error:
        cursor.execute("ROLLBACK")
        if isinstance(error, Exception):
            raise IngestError(
                f"Applying the {plan.mode} plan to {plan.target} failed: {error}. "
                "The transaction was rolled back; the target is unchanged."
            ) from error
        raise
    log.info("Applied %s plan to %s (%d staged rows) in one transaction", plan.mode, plan.target, rows)
