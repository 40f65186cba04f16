"""Chunk readers: stream a query's result as Arrow record batches with bounded memory.

Every reader yields batches of ``chunk_size`` rows (the last one shorter) and holds at
most about one chunk in memory, whatever the size of the result:

* :class:`AdbcPostgresReader` -- PostgreSQL through ADBC's Arrow stream (binary ``COPY``
  under the hood), the fastest path measured (see ``bench/ingest_bench.py``);
* :class:`PostgresCursorReader` -- PostgreSQL through a psycopg 2/3 named (server-side)
  cursor, ``FETCH batch_size`` per round trip;
* :class:`MySqlReader` -- MySQL / MariaDB through an unbuffered cursor (PyMySQL,
  mysqlclient or mysql-connector);
* :class:`SqliteReader` -- SQLite, types from the declared column types;
* :class:`CursorReader` -- any other DB-API connection through ``fetchmany``; column
  types come from the cursor description when it names them, else from the values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from airflow_provider_sophia.exceptions import IngestError
from airflow_provider_sophia.identifiers import quote_column, quote_identifier, quote_name
from airflow_provider_sophia.ingest.types import (
    ColumnSpec,
    Kind,
    arrow_column_spec,
    arrow_schema,
    check_unique_targets,
    column_spec,
    conform_batch,
    decimal_spec,
    infer_spec,
    rows_to_batch,
)

log = logging.getLogger(__name__)

Placeholder = Callable[[int], str]
#: ADBC PostgreSQL statement option: the (estimated) size of each streamed batch.
ADBC_BATCH_HINT = "adbc.postgresql.batch_size_hint_bytes"


@dataclass(frozen=True)
class SourceQuery:
    """What to read: a table or a query, optionally limited to a window and a key range.

    :param sql: a SELECT statement (exclusive with ``table``).
    :param table: a table name, validated and quoted (exclusive with ``sql``).
    :param incremental_column: column the ``window`` applies to.
    :param window: ``(start, end)``: rows with ``start <= incremental_column < end``.
    :param key_column: column the ``key_range`` applies to.
    :param key_range: ``(low, high)``: rows with ``low <= key_column < high``; ``None`` ends are open.
    :raises InvalidIdentifierError: when ``table`` or a column is not a valid identifier.
    """

    sql: str | None = None
    table: str | None = None
    incremental_column: str | None = None
    window: tuple[Any, Any] | None = None
    key_column: str | None = None
    key_range: tuple[Any, Any] | None = None

    def __post_init__(self) -> None:
        if self.table is not None:
            quote_identifier(self.table, upper=False)
        for column in (self.incremental_column, self.key_column):
            if column is not None:
                quote_column(column, upper=False)

    def base_sql(self) -> str:
        """Return the unfiltered statement.

        :raises ValueError: unless exactly one of ``sql`` and ``table`` is given.
        :raises InvalidIdentifierError: when ``table`` is not a valid identifier.
        """
        if (self.sql is None) == (self.table is None):
            raise ValueError(
                f"Give exactly one of sql and table, got sql={self.sql!r}, table={self.table!r}."
            )
        if self.sql is not None:
            return self.sql.strip().rstrip(";")
        return f"SELECT * FROM {quote_identifier(self.table or '', upper=False)}"  # noqa: S608 - quoted

    def render(self, placeholder: Placeholder, percent_escaped: bool = False) -> tuple[str, list[Any]]:
        """Return the statement and its bind parameters.

        :param placeholder: makes the marker of the n-th parameter (1-based), e.g. ``%s`` or ``$1``.
        :param percent_escaped: double ``%`` in user SQL (pyformat drivers, when parameters are bound).
        """
        conditions: list[str] = []
        params: list[Any] = []
        bounds = [(self.incremental_column, self.window), (self.key_column, self.key_range)]
        for column, limits in bounds:
            if column is None or limits is None:
                continue
            quoted = quote_column(column, upper=False)
            for operator, value in zip((">=", "<"), limits, strict=True):
                if value is not None:
                    params.append(value)
                    conditions.append(f"{quoted} {operator} {placeholder(len(params))}")
        base = self.base_sql()
        if not conditions:
            return base, []
        if percent_escaped:
            base = base.replace("%", "%%")
        where = " AND ".join(conditions)
        return f"SELECT * FROM ({base}) AS {quote_name('_sophia_q')} WHERE {where}", params  # noqa: S608


def split_key_range(low: int, high: int, parts: int) -> list[tuple[int | None, int | None]]:
    """Split ``[low, high]`` into ``parts`` contiguous ranges; the first and last are open-ended.

    Open ends make sure rows outside the observed bounds (inserted after they were read)
    still belong to exactly one part.

    :param low: smallest key.
    :param high: largest key.
    :param parts: number of ranges, at least 1.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    step = max((high - low + 1) / parts, 1)
    cuts = [low + round(step * index) for index in range(1, parts)]
    starts: list[int | None] = [None, *cuts]
    ends: list[int | None] = [*cuts, None]
    return list(zip(starts, ends, strict=True))


class ChunkReader:
    """Base of all readers: open a query, then iterate its record batches.

    :param connection: an open DB-API connection; the reader never closes it.
    :param chunk_size: rows per yielded batch.
    :param batch_size: rows fetched from the source per round trip.
    """

    #: how the n-th bind parameter is written in SQL.
    placeholder: Placeholder = staticmethod(lambda _: "%s")
    #: whether user SQL needs ``%`` doubled when parameters are bound.
    percent_escaped = True

    def __init__(self, connection: Any, *, chunk_size: int = 5000, batch_size: int = 1000) -> None:
        if chunk_size < 1 or batch_size < 1:
            raise ValueError(f"chunk_size and batch_size must be positive, got {chunk_size} and {batch_size}")
        self.connection = connection
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.specs: list[ColumnSpec] = []
        self.schema = pa.schema([])
        self._cursor: Any = None
        self._cancelled = threading.Event()

    def open(self, query: SourceQuery) -> list[ColumnSpec]:
        """Run ``query`` and return its column specs; batches follow from :meth:`chunks`.

        :raises UnsupportedTypeError: when a column cannot be mapped to Snowflake.
        """
        raise NotImplementedError

    def chunks(self) -> Iterator[pa.RecordBatch]:
        """Yield the result of the opened query in batches of ``chunk_size`` rows."""
        raise NotImplementedError

    def key_bounds(self, table: str, column: str) -> tuple[Any, Any]:
        """Return ``(MIN(column), MAX(column))`` of ``table`` (for splitting into key ranges)."""
        quoted = quote_column(column, upper=False)
        sql = f"SELECT MIN({quoted}), MAX({quoted}) FROM {quote_identifier(table, upper=False)}"  # noqa: S608
        cursor = self.connection.cursor()
        try:
            self._prepare_session(cursor)
            cursor.execute(sql)
            low, high = cursor.fetchone()
        finally:
            cursor.close()
        return low, high

    def cancel(self) -> None:
        """Stop reading: the running fetch is cancelled where the driver can, the next one refused."""
        self._cancelled.set()
        cancel = getattr(self.connection, "cancel", None)
        if callable(cancel):
            with contextlib.suppress(Exception):
                cancel()

    def close(self) -> None:
        """Close the cursor (the connection stays open: it belongs to the caller)."""
        if self._cursor is not None:
            with contextlib.suppress(Exception):
                self._cursor.close()
            self._cursor = None

    def _prepare_session(self, cursor: Any) -> None:
        """Set session options the reader relies on (e.g. ANSI quotes in MySQL)."""

    def _bind(self, value: Any) -> Any:
        """Return a parameter as the driver should bind it: aware datetimes as plain UTC ``datetime``."""
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.timezone.utc)
        return value

    def _render(self, query: SourceQuery) -> tuple[str, list[Any]]:
        sql, params = query.render(self.placeholder, self.percent_escaped)
        return sql, [self._bind(param) for param in params]

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise IngestError("The load was cancelled while reading the source; the target was not changed.")

    def _set_specs(self, specs: list[ColumnSpec]) -> list[ColumnSpec]:
        check_unique_targets(specs)
        self.specs = specs
        self.schema = arrow_schema(specs)
        return specs


class AdbcPostgresReader(ChunkReader):
    """PostgreSQL through an ADBC connection's Arrow record-batch stream.

    ``batch_size`` does not apply (the stream is binary ``COPY``); batches are re-cut to
    ``chunk_size`` rows. Numeric columns are read as text (see :func:`_numerics_as_text`).

    :param connection: an ``adbc_driver_postgresql.dbapi`` connection.
    """

    placeholder = staticmethod(lambda index: f"${index}")
    percent_escaped = False
    #: size of the stream's batches: small enough to keep memory low and staging busy early.
    stream_batch_bytes = 4 * 1024 * 1024

    def __init__(self, connection: Any, *, chunk_size: int = 5000, batch_size: int = 1000) -> None:
        super().__init__(connection, chunk_size=chunk_size, batch_size=batch_size)
        self._stream: pa.RecordBatchReader | None = None

    def open(self, query: SourceQuery) -> list[ColumnSpec]:
        sql, params = self._render(query)
        self._cursor = self.connection.cursor()
        self._cursor.adbc_statement.set_options(**{ADBC_BATCH_HINT: str(self.stream_batch_bytes)})
        specs = self._set_specs([arrow_column_spec(field) for field in self._cursor.adbc_execute_schema(sql)])
        self._cursor.execute(_numerics_as_text(sql, specs), params or None)
        self._stream = self._cursor.fetch_record_batch()
        return specs

    def chunks(self) -> Iterator[pa.RecordBatch]:
        assert self._stream is not None, "open() first"
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in self._stream:
            self._check_cancelled()
            pending.append(conform_batch(batch, self.specs, self.schema))
            pending_rows += batch.num_rows
            while pending_rows >= self.chunk_size:
                table = pa.Table.from_batches(pending, self.schema)
                yield table.slice(0, self.chunk_size).combine_chunks().to_batches()[0]
                rest = table.slice(self.chunk_size)
                pending, pending_rows = rest.to_batches(), rest.num_rows
        if pending_rows:
            yield pa.Table.from_batches(pending, self.schema).combine_chunks().to_batches()[0]

    def cancel(self) -> None:
        self._cancelled.set()
        if self._cursor is not None:
            with contextlib.suppress(Exception):
                self._cursor.adbc_cancel()


def _numerics_as_text(sql: str, specs: Sequence[ColumnSpec]) -> str:
    """Return ``sql`` with its numeric columns cast to text, or ``sql`` itself when it has none.

    PostgreSQL formats numerics on its own core for less than ADBC takes to decode their binary
    form (a third of the client's time on a mixed table); the text parses to decimals exactly.
    """
    if all(spec.kind is not Kind.DECIMAL for spec in specs):
        return sql
    columns = ", ".join(
        f"{quote_name(spec.name)}::text AS {quote_name(spec.name)}"
        if spec.kind is Kind.DECIMAL
        else quote_name(spec.name)
        for spec in specs
    )
    return f"SELECT {columns} FROM ({sql}) AS {quote_name('_sophia_n')}"  # noqa: S608 - quoted


class CursorReader(ChunkReader):
    """Any DB-API connection through ``fetchmany(batch_size)``.

    Column types come from :meth:`_describe` (``None`` where the driver does not say) and
    otherwise from the values of the first chunk.
    """

    def open(self, query: SourceQuery) -> list[ColumnSpec]:
        sql, params = self._render(query)
        self._cursor = self._new_cursor()
        self._prepare_session(self._cursor)
        if params:
            self._cursor.execute(sql, params)
        else:
            self._cursor.execute(sql)
        self._first = self._fetch_chunk()
        names = [str(column[0]) for column in self._cursor.description]
        described = self._describe(self._cursor, query)
        specs = [
            spec or infer_spec(name, [row[index] for row in self._first])
            for index, (name, spec) in enumerate(zip(names, described, strict=True))
        ]
        return self._set_specs(specs)

    def chunks(self) -> Iterator[pa.RecordBatch]:
        rows = self._first
        self._first = []
        while rows:
            yield rows_to_batch(rows, self.specs, self.schema)
            if len(rows) < self.chunk_size:
                return
            rows = self._fetch_chunk()

    def _new_cursor(self) -> Any:
        return self.connection.cursor()

    def _fetch_chunk(self) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = []
        while len(rows) < self.chunk_size:
            self._check_cancelled()
            fetched = self._cursor.fetchmany(min(self.batch_size, self.chunk_size - len(rows)))
            if not fetched:
                break
            rows.extend(fetched)
        return rows

    def _describe(self, cursor: Any, query: SourceQuery) -> list[ColumnSpec | None]:
        """Return a spec per result column where the driver names the type as a string."""
        return [
            column_spec(str(column[0]), column[1]) if isinstance(column[1], str) else None
            for column in cursor.description
        ]


#: PostgreSQL type OIDs -> type names (see ``pg_type``).
PG_TYPE_OIDS: dict[int, str] = {
    16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4", 25: "text",
    26: "oid", 114: "json", 700: "float4", 701: "float8", 1042: "bpchar", 1043: "varchar",
    1082: "date", 1083: "time", 1114: "timestamp", 1184: "timestamptz", 1700: "numeric",
    2950: "uuid", 3802: "jsonb",
}  # fmt: skip


class PostgresCursorReader(CursorReader):
    """PostgreSQL through a psycopg 2 or 3 named (server-side) cursor.

    JSON arrives as text (the connection's JSON loaders are set to keep it), so it lands
    verbatim in VARIANT.

    :param connection: a psycopg2 or psycopg connection, not in autocommit mode.
    """

    def _new_cursor(self) -> Any:
        _keep_json_as_text(self.connection)
        cursor = self.connection.cursor(name=f"sophia_{uuid.uuid4().hex[:12]}")
        cursor.itersize = self.batch_size
        return cursor

    def _describe(self, cursor: Any, query: SourceQuery) -> list[ColumnSpec | None]:
        specs: list[ColumnSpec | None] = []
        for column in cursor.description:
            name, oid = str(column[0]), int(column[1])
            type_name = PG_TYPE_OIDS.get(oid, f"pg type oid {oid}")
            precision, scale = getattr(column, "precision", None), getattr(column, "scale", None)
            if type_name == "numeric":
                specs.append(decimal_spec(name, type_name, precision, scale))
            else:
                specs.append(column_spec(name, type_name))
        return specs


def _keep_json_as_text(connection: Any) -> None:
    """Make ``json``/``jsonb`` values arrive as their text (psycopg parses them by default)."""
    module = type(connection).__module__
    if module.startswith("psycopg2"):
        import psycopg2.extras

        psycopg2.extras.register_default_json(connection, loads=lambda text: text)
        psycopg2.extras.register_default_jsonb(connection, loads=lambda text: text)
    elif module.startswith("psycopg"):
        from psycopg.types.string import TextLoader

        for name in ("json", "jsonb"):
            connection.adapters.register_loader(name, TextLoader)


#: MySQL protocol type codes -> type names; blobs and strings are resolved by their values.
MYSQL_TYPE_CODES: dict[int, str] = {
    0: "decimal", 1: "tinyint", 2: "smallint", 3: "int", 4: "float", 5: "double", 7: "timestamptz",
    8: "bigint", 9: "mediumint", 10: "date", 11: "time", 12: "datetime", 13: "year", 15: "varchar",
    16: "bit", 245: "json", 246: "decimal", 247: "enum", 248: "set",
}  # fmt: skip
MYSQL_BYTES_OR_TEXT = frozenset({249, 250, 251, 252, 253, 254})
MYSQL_UNSIGNED_FLAG = 32


class MySqlReader(CursorReader):
    """MySQL / MariaDB through an unbuffered (server-side streaming) cursor.

    The session is switched to UTC (``TIMESTAMP`` columns land as TIMESTAMP_TZ) and ANSI
    quotes (identifiers are double-quoted). ``TINYINT(1)``/``BOOLEAN`` and ``BIT(1)`` become
    BOOLEAN. MariaDB's ``JSON`` is an alias of ``LONGTEXT`` and lands as VARCHAR.

    :param connection: a PyMySQL, mysqlclient (MySQLdb) or mysql-connector connection.
    """

    def _new_cursor(self) -> Any:
        module = type(self.connection).__module__
        if module.startswith("pymysql"):
            import pymysql.cursors

            return self.connection.cursor(pymysql.cursors.SSCursor)
        if module.startswith("MySQLdb"):
            import MySQLdb.cursors

            return self.connection.cursor(MySQLdb.cursors.SSCursor)
        return self.connection.cursor(buffered=False)

    def _prepare_session(self, cursor: Any) -> None:
        cursor.execute("SET SESSION time_zone = '+00:00'")
        cursor.execute("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'ANSI_QUOTES')")

    def _bind(self, value: Any) -> Any:
        value = super()._bind(value)  # the session runs in UTC
        return value.replace(tzinfo=None) if isinstance(value, dt.datetime) else value

    def _describe(self, cursor: Any, query: SourceQuery) -> list[ColumnSpec | None]:
        flags = _mysql_flags(cursor)
        specs: list[ColumnSpec | None] = []
        for index, column in enumerate(cursor.description):
            name, code, size, scale = str(column[0]), int(column[1]), column[3], column[5]
            unsigned = bool(flags[index] & MYSQL_UNSIGNED_FLAG)
            if code in MYSQL_BYTES_OR_TEXT:
                specs.append(None)  # bytes or text: decided by the values
            elif code in (1, 16) and size == 1:
                specs.append(ColumnSpec(name, Kind.BOOLEAN, "tinyint(1)" if code == 1 else "bit(1)"))
            elif code == 16:
                specs.append(ColumnSpec(name, Kind.INTEGER, f"bit({size})"))
            elif code in (0, 246):
                precision = size - (1 if scale else 0) - (0 if unsigned else 1) if size else None
                specs.append(decimal_spec(name, "decimal", precision, scale))
            elif code == 8 and unsigned:
                specs.append(ColumnSpec(name, Kind.UNSIGNED_BIGINT, "bigint unsigned"))
            else:
                specs.append(column_spec(name, MYSQL_TYPE_CODES.get(code, f"mysql type code {code}")))
        return specs


def _mysql_flags(cursor: Any) -> list[int]:
    """Return the column flags (UNSIGNED, ...) whichever MySQL driver made the cursor."""
    if flags := getattr(cursor, "description_flags", None):  # mysqlclient
        return [int(flag) for flag in flags]
    result = getattr(cursor, "_result", None)  # PyMySQL
    if result is not None and getattr(result, "fields", None):
        return [int(field.flags) for field in result.fields]
    return [int(column[7]) if len(column) > 7 else 0 for column in cursor.description]  # mysql-connector


class SqliteReader(CursorReader):
    """SQLite: declared column types where the result columns have them, values otherwise.

    Dates and timestamps stored as ISO text are parsed; declared ``JSON`` lands in VARIANT.
    """

    placeholder = staticmethod(lambda _: "?")
    percent_escaped = False

    def _bind(self, value: Any) -> Any:
        value = super()._bind(value)  # compared with ISO text as SQLite stores it
        return value.replace(tzinfo=None).isoformat(sep=" ") if isinstance(value, dt.datetime) else value

    def _describe(self, cursor: Any, query: SourceQuery) -> list[ColumnSpec | None]:
        view = quote_name(f"_sophia_describe_{uuid.uuid4().hex[:12]}")
        helper = self.connection.cursor()
        try:
            helper.execute(f"CREATE TEMP VIEW {view} AS {query.base_sql()}")
            declared = {row[1]: row[2] for row in helper.execute(f"PRAGMA table_info({view})")}
        finally:
            helper.execute(f"DROP VIEW IF EXISTS {view}")
            helper.close()
        return [
            column_spec(str(column[0]), declared[column[0]]) if declared.get(column[0]) else None
            for column in cursor.description
        ]


def connect_adbc_postgres(uri: str) -> Any:
    """Open an ADBC PostgreSQL connection in autocommit mode (for :class:`AdbcPostgresReader`).

    :param uri: a libpq URI, ``postgresql://user:password@host:port/db``.
    :raises ImportError: when ``adbc-driver-postgresql`` is not installed.
    """
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(uri, autocommit=True)


def reader_for(connection: Any, dialect: str, *, chunk_size: int, batch_size: int) -> ChunkReader:
    """Return the reader for a DB-API ``connection`` of ``dialect`` (``postgresql``, ``mysql``, ...).

    :param connection: an open driver connection.
    :param dialect: SQLAlchemy-style dialect name; unknown ones get the generic reader.
    """
    module = type(connection).__module__
    if module.startswith("adbc_driver"):
        cls: type[ChunkReader] = AdbcPostgresReader
    elif dialect.startswith("postgres"):
        cls = PostgresCursorReader
    elif dialect in ("mysql", "mariadb"):
        cls = MySqlReader
    elif dialect == "sqlite":
        cls = SqliteReader
    else:
        cls = CursorReader
    return cls(connection, chunk_size=chunk_size, batch_size=batch_size)
