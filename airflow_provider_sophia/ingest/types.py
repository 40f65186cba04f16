"""Map source column types to Arrow (staged parquet) and Snowflake types, and convert values.

Every column of a load becomes a :class:`ColumnSpec`: one :class:`Kind`, from which its
Arrow type, its Snowflake target type and its staging type follow. The fidelity rules:

=============================  ====================  ===========================
source                         Arrow (parquet)       Snowflake
=============================  ====================  ===========================
integers (any width, signed)   int64                 NUMBER(38,0)
unsigned 64-bit integers       decimal128(20, 0)     NUMBER(20,0)
numeric / decimal (p, s)       decimal128(p, s)      NUMBER(p,s)
numeric without (p, s)         decimal128(38, 9)     NUMBER(38,9), rounded half-even like Snowflake
real / double                  float64               FLOAT
boolean (MySQL TINYINT(1))     bool                  BOOLEAN
text of any length             string                VARCHAR
bytes                          binary                BINARY
date                           date32                DATE
timestamp without time zone    timestamp[us]         TIMESTAMP_NTZ
timestamp with time zone       timestamp[us, UTC]    TIMESTAMP_TZ
json / jsonb                   string (JSON text)    VARIANT (staged as VARCHAR, PARSE_JSON on load)
uuid                           string                VARCHAR(36)
time                           time64[us]            TIME
=============================  ====================  ===========================

Anything else (intervals, arrays, geometry, ...) raises :class:`UnsupportedTypeError`
naming the column and its type: cast it in the source query to one of the above.
"""

from __future__ import annotations

import binascii
import datetime as dt
import decimal
import enum
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_sophia.exceptions import IngestError, InvalidIdentifierError, UnsupportedTypeError
from airflow_provider_sophia.identifiers import normalize_part, quote_name

#: precision and scale used for numerics declared without them.
DEFAULT_DECIMAL = (38, 9)
MAX_PRECISION = 38


class Kind(str, enum.Enum):
    """The logical type of a column, independent of source and target."""

    INTEGER = "integer"
    UNSIGNED_BIGINT = "unsigned_bigint"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TEXT = "text"
    BINARY = "binary"
    DATE = "date"
    TIMESTAMP = "timestamp"
    TIMESTAMP_TZ = "timestamp_tz"
    JSON = "json"
    UUID = "uuid"
    TIME = "time"


#: lower-case source type names (PostgreSQL, MySQL/MariaDB, SQLite declared types) -> kind.
TYPE_NAMES: dict[str, Kind] = {
    **dict.fromkeys(
        [
            "smallint",
            "int2",
            "integer",
            "int",
            "int4",
            "bigint",
            "int8",
            "tinyint",
            "mediumint",
            "int1",
            "int3",
            "serial",
            "bigserial",
            "smallserial",
            "year",
            "oid",
        ],
        Kind.INTEGER,
    ),
    **dict.fromkeys(["numeric", "decimal", "dec", "fixed", "number"], Kind.DECIMAL),
    **dict.fromkeys(["real", "float4", "float8", "double precision", "double", "float"], Kind.FLOAT),
    **dict.fromkeys(["bool", "boolean"], Kind.BOOLEAN),
    **dict.fromkeys(
        [
            "text",
            "varchar",
            "character varying",
            "char",
            "character",
            "bpchar",
            "name",
            "citext",
            "string",
            "enum",
            "set",
            "tinytext",
            "mediumtext",
            "longtext",
            "clob",
            "nvarchar",
            "nchar",
            "native character",
            "varying character",
            "nvarchar2",
            "varchar2",
        ],
        Kind.TEXT,
    ),
    **dict.fromkeys(
        ["bytea", "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary"], Kind.BINARY
    ),
    "date": Kind.DATE,
    **dict.fromkeys(["timestamp", "timestamp without time zone", "datetime"], Kind.TIMESTAMP),
    **dict.fromkeys(["timestamptz", "timestamp with time zone"], Kind.TIMESTAMP_TZ),
    **dict.fromkeys(["json", "jsonb"], Kind.JSON),
    "uuid": Kind.UUID,
    **dict.fromkeys(["time", "time without time zone"], Kind.TIME),
}

_DECLARED = re.compile(
    r"\s*(?P<name>[a-z][a-z0-9 ]*?)\s*(?:\(\s*(?P<p>\d+)\s*(?:,\s*(?P<s>\d+)\s*)?\))?"
    r"\s*(?P<zone>with(?:out)? time zone)?\s*(?P<unsigned>unsigned)?\s*\Z"
)


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a load: its source name and type, its Snowflake name, its kind.

    :param name: exact column name in the source result.
    :param kind: the logical type.
    :param source_type: the type as the source names it (for messages).
    :param precision: decimal precision, ``None`` for other kinds.
    :param scale: decimal scale, ``None`` for other kinds.
    """

    name: str
    kind: Kind
    source_type: str
    precision: int | None = None
    scale: int | None = None

    @property
    def target(self) -> str:
        """Exact Snowflake column name: plain names upper-cased, others kept verbatim."""
        return snowflake_column_name(self.name)

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type of the column in staged parquet files."""
        return _ARROW[self.kind](self)

    @property
    def snowflake_type(self) -> str:
        """Type of the column in the target table."""
        if self.kind is Kind.DECIMAL:
            return f"NUMBER({self.precision},{self.scale})"
        return _SNOWFLAKE[self.kind]

    @property
    def staging_type(self) -> str:
        """Type of the column in the transient staging table (JSON stays text until loaded)."""
        return "VARCHAR" if self.kind is Kind.JSON else self.snowflake_type

    def load_expression(self, relation: str) -> str:
        """Return the SQL that turns the staged column of ``relation`` into the target value."""
        column = f"{relation}.{quote_name(self.target)}"
        return f"PARSE_JSON({column})" if self.kind is Kind.JSON else column

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form (for XCom between scale-out steps)."""
        return asdict(self) | {"kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        """Rebuild a spec from :meth:`to_dict` output."""
        return cls(**(data | {"kind": Kind(data["kind"])}))


_ARROW: dict[Kind, Callable[[ColumnSpec], pa.DataType]] = {
    Kind.INTEGER: lambda _: pa.int64(),
    Kind.UNSIGNED_BIGINT: lambda _: pa.decimal128(20, 0),
    Kind.DECIMAL: lambda spec: pa.decimal128(spec.precision or MAX_PRECISION, spec.scale or 0),
    Kind.FLOAT: lambda _: pa.float64(),
    Kind.BOOLEAN: lambda _: pa.bool_(),
    Kind.TEXT: lambda _: pa.string(),
    Kind.BINARY: lambda _: pa.binary(),
    Kind.DATE: lambda _: pa.date32(),
    Kind.TIMESTAMP: lambda _: pa.timestamp("us"),
    Kind.TIMESTAMP_TZ: lambda _: pa.timestamp("us", tz="UTC"),
    Kind.JSON: lambda _: pa.string(),
    Kind.UUID: lambda _: pa.string(),
    Kind.TIME: lambda _: pa.time64("us"),
}

_SNOWFLAKE: dict[Kind, str] = {
    Kind.INTEGER: "NUMBER(38,0)",
    Kind.UNSIGNED_BIGINT: "NUMBER(20,0)",
    Kind.FLOAT: "FLOAT",
    Kind.BOOLEAN: "BOOLEAN",
    Kind.TEXT: "VARCHAR",
    Kind.BINARY: "BINARY",
    Kind.DATE: "DATE",
    Kind.TIMESTAMP: "TIMESTAMP_NTZ",
    Kind.TIMESTAMP_TZ: "TIMESTAMP_TZ",
    Kind.JSON: "VARIANT",
    Kind.UUID: "VARCHAR(36)",
    Kind.TIME: "TIME",
}


def snowflake_column_name(source_name: str) -> str:
    """Return the exact Snowflake name of a source column (``created_at`` -> ``CREATED_AT``).

    :param source_name: exact column name as the source reports it.
    :raises InvalidIdentifierError: when the name cannot be a Snowflake identifier.
    """
    try:
        return normalize_part(source_name, upper=True)
    except InvalidIdentifierError:
        return normalize_part(quote_name(source_name))


def column_spec(
    name: str, type_name: str, precision: int | None = None, scale: int | None = None
) -> ColumnSpec:
    """Map a declared source type such as ``numeric(12,2)`` or ``timestamptz`` to a spec.

    :param name: exact column name.
    :param type_name: the source type, with or without ``(precision, scale)``.
    :param precision: precision reported apart from the name (overrides the name's).
    :param scale: scale reported apart from the name (overrides the name's).
    :raises UnsupportedTypeError: when the type has no faithful Snowflake equivalent.
    """
    match = _DECLARED.match(type_name.lower())
    base = match and (match["name"] + (f" {match['zone']}" if match["zone"] else ""))
    kind = TYPE_NAMES.get(base or "")
    if match is None or kind is None:
        raise UnsupportedTypeError(
            f"Column {name!r} has source type {type_name!r}, which cannot be mapped to Snowflake. "
            "Cast it in the source query (e.g. to text, numeric(p,s) or timestamp)."
        )
    if kind is Kind.INTEGER and match["unsigned"] and base in ("bigint", "int8"):
        kind = Kind.UNSIGNED_BIGINT
    if kind is not Kind.DECIMAL:
        return ColumnSpec(name, kind, type_name)
    precision = precision if precision is not None else (int(match["p"]) if match["p"] else None)
    scale = scale if scale is not None else (int(match["s"]) if match["s"] else 0)
    return decimal_spec(name, type_name, precision, scale)


def decimal_spec(name: str, source_type: str, precision: int | None, scale: int | None) -> ColumnSpec:
    """Return the spec of a decimal column; ``precision=None`` means declared without (p, s).

    :raises UnsupportedTypeError: when the precision exceeds Snowflake's 38 digits.
    """
    if precision is None or precision <= 0:
        precision, scale = DEFAULT_DECIMAL
    if precision > MAX_PRECISION:
        raise UnsupportedTypeError(
            f"Column {name!r} has source type {source_type!r} with precision {precision}; Snowflake "
            f"NUMBER holds at most {MAX_PRECISION} digits. Cast it to numeric(38,s) or text in the query."
        )
    return ColumnSpec(name, Kind.DECIMAL, source_type, precision, scale or 0)


def arrow_column_spec(field: pa.Field) -> ColumnSpec:
    """Map an Arrow field (an ADBC stream, or a caller-declared schema) to a spec.

    PostgreSQL numerics arriving from ADBC as opaque strings take their precision and
    scale from the ``POSTGRESQL:typmod`` field metadata.

    :raises UnsupportedTypeError: when the Arrow type has no faithful Snowflake equivalent.
    """
    kind = _arrow_kind(field.type)
    metadata = field.metadata or {}
    source_type = metadata.get(b"POSTGRESQL:type", str(field.type).encode()).decode()
    if kind is Kind.DECIMAL:
        if pa.types.is_decimal(field.type):
            return decimal_spec(field.name, source_type, field.type.precision, field.type.scale)
        typmod = int(metadata.get(b"POSTGRESQL:typmod", b"-1"))
        if typmod < 4:
            return decimal_spec(field.name, source_type, None, None)
        return decimal_spec(field.name, source_type, (typmod - 4) >> 16, (typmod - 4) & 0xFFFF)
    if kind is None:
        raise UnsupportedTypeError(
            f"Column {field.name!r} has source type {source_type!r} (Arrow {field.type}), which cannot be "
            "mapped to Snowflake. Cast it in the source query (e.g. to text, numeric(p,s) or timestamp)."
        )
    return ColumnSpec(field.name, kind, source_type)


def _arrow_kind(arrow_type: pa.DataType) -> Kind | None:
    if isinstance(arrow_type, pa.BaseExtensionType):
        extension = arrow_type.extension_name
        if extension == "arrow.json":
            return Kind.JSON
        if extension == "arrow.uuid":
            return Kind.UUID
        if extension == "arrow.opaque" and getattr(arrow_type, "type_name", "") == "numeric":
            return Kind.DECIMAL
        return None
    checks: list[tuple[Callable[[pa.DataType], bool], Kind]] = [
        (pa.types.is_uint64, Kind.UNSIGNED_BIGINT),
        (pa.types.is_integer, Kind.INTEGER),
        (pa.types.is_decimal, Kind.DECIMAL),
        (pa.types.is_floating, Kind.FLOAT),
        (pa.types.is_boolean, Kind.BOOLEAN),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), Kind.TEXT),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), Kind.BINARY),
        (pa.types.is_date, Kind.DATE),
        (lambda t: pa.types.is_timestamp(t) and t.tz is None, Kind.TIMESTAMP),
        (pa.types.is_timestamp, Kind.TIMESTAMP_TZ),
        (pa.types.is_time, Kind.TIME),
    ]
    return next((kind for check, kind in checks if check(arrow_type)), None)


def infer_spec(name: str, values: Sequence[Any]) -> ColumnSpec:
    """Infer a spec from Python values (for drivers that report no column types, e.g. SQLite).

    The first non-NULL value decides; a column of only NULLs becomes text.

    :raises UnsupportedTypeError: when the values have a type that cannot be mapped.
    """
    sample = next((value for value in values if value is not None), "")
    inferred: list[tuple[type | tuple[type, ...], Kind]] = [
        (bool, Kind.BOOLEAN),
        (int, Kind.INTEGER),
        (float, Kind.FLOAT),
        (decimal.Decimal, Kind.DECIMAL),
        (str, Kind.TEXT),
        ((bytes, bytearray, memoryview), Kind.BINARY),
        (dt.datetime, Kind.TIMESTAMP_TZ if getattr(sample, "tzinfo", None) else Kind.TIMESTAMP),
        (dt.date, Kind.DATE),
        (dt.time, Kind.TIME),
        (uuid.UUID, Kind.UUID),
        ((dict, list), Kind.JSON),
    ]
    kind = next((kind for types, kind in inferred if isinstance(sample, types)), None)
    source_type = f"python {type(sample).__name__}"
    if kind is None:
        raise UnsupportedTypeError(
            f"Column {name!r} holds values of type {type(sample).__name__!r}, which cannot be mapped to "
            "Snowflake. Cast it in the source query."
        )
    if kind is Kind.DECIMAL:
        return decimal_spec(name, source_type, None, None)
    return ColumnSpec(name, kind, source_type)


def check_unique_targets(specs: Sequence[ColumnSpec]) -> None:
    """Refuse two source columns that land in the same Snowflake column (``a`` and ``A``).

    :raises InvalidIdentifierError: naming the colliding columns.
    """
    seen: dict[str, str] = {}
    for spec in specs:
        if (other := seen.setdefault(spec.target.upper(), spec.name)) != spec.name:
            raise InvalidIdentifierError(
                f"Columns {other!r} and {spec.name!r} both map to Snowflake column {spec.target!r}; "
                "alias one of them in the source query."
            )


# --- value conversion ----------------------------------------------------------------


def arrow_schema(specs: Sequence[ColumnSpec]) -> pa.Schema:
    """Return the Arrow schema of staged files: one field per column, named as in Snowflake."""
    return pa.schema([pa.field(spec.target, spec.arrow_type) for spec in specs])


def rows_to_batch(
    rows: Sequence[Sequence[Any]], specs: Sequence[ColumnSpec], schema: pa.Schema
) -> pa.RecordBatch:
    """Turn DB-API rows into a record batch of ``schema`` (see :func:`arrow_schema`).

    :raises IngestError: naming the column when a value does not fit its column's type.
    """
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in specs]
    arrays = [values_to_array(list(values), spec) for values, spec in zip(columns, specs, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def values_to_array(values: list[Any], spec: ColumnSpec) -> pa.Array:
    """Convert one column of Python values, coercing driver-specific value types when needed."""
    arrow_type = spec.arrow_type
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        pass
    try:
        if spec.kind in (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMP_TZ):
            return _temporal_from_values(values, arrow_type)
        coerce = _COERCE[spec.kind]
        return pa.array([None if value is None else coerce(value, spec) for value in values], type=arrow_type)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        OverflowError,
        TypeError,
        ValueError,
        ArithmeticError,
    ) as error:
        sample = next((value for value in values if value is not None), None)
        raise IngestError(
            f"Column {spec.name!r} ({spec.source_type} -> {spec.snowflake_type}) holds a value that does not "
            f"fit, e.g. {sample!r:.80}: {error}. Cast the column in the source query."
        ) from error


def _temporal_from_values(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    """Parse ISO strings (SQLite stores dates as text) or re-read mixed values."""
    if any(isinstance(value, str) for value in values):
        text = pc.utf8_replace_slice(pa.array(values, type=pa.string()), 10, 11, "T")
        if pa.types.is_date(arrow_type):
            return pc.cast(pc.utf8_slice_codeunits(text, 0, 10), arrow_type)
        if arrow_type.tz is not None:
            return pc.cast(pc.strptime(text, "%Y-%m-%dT%H:%M:%S%z", unit="us"), arrow_type)
        return pc.cast(text, arrow_type)
    return pc.cast(pa.array(values), arrow_type)


def _to_int(value: Any, _: ColumnSpec) -> int:
    return int.from_bytes(value, "big") if isinstance(value, bytes | bytearray) else int(value)


def _to_decimal(value: Any, spec: ColumnSpec) -> decimal.Decimal:
    exponent = decimal.Decimal(1).scaleb(-(spec.scale or 0))
    return decimal.Decimal(str(value)).quantize(exponent, rounding=decimal.ROUND_HALF_EVEN)


def _to_time(value: Any, _: ColumnSpec) -> dt.time:
    if isinstance(value, dt.timedelta):  # MySQL TIME arrives as a duration
        if not dt.timedelta(0) <= value < dt.timedelta(days=1):
            raise ValueError(f"TIME value {value} is outside 00:00:00-23:59:59")
        return (dt.datetime.min + value).time()
    return dt.time.fromisoformat(str(value))


_COERCE: dict[Kind, Callable[[Any, ColumnSpec], Any]] = {
    Kind.INTEGER: _to_int,
    Kind.UNSIGNED_BIGINT: lambda value, spec: decimal.Decimal(_to_int(value, spec)),
    Kind.DECIMAL: _to_decimal,
    Kind.FLOAT: lambda value, _: float(value),
    Kind.BOOLEAN: lambda value, spec: bool(_to_int(value, spec)),
    Kind.TEXT: lambda value, _: value if isinstance(value, str) else str(value),
    Kind.BINARY: lambda value, _: bytes(value),
    Kind.JSON: lambda value, _: value if isinstance(value, str) else json.dumps(value),
    Kind.UUID: lambda value, _: str(value),
    Kind.TIME: _to_time,
}


def conform_batch(batch: pa.RecordBatch, specs: Sequence[ColumnSpec], schema: pa.Schema) -> pa.RecordBatch:
    """Cast an Arrow batch (ADBC stream, declared schema) to the staged schema.

    :raises IngestError: naming the column when a value does not fit its column's type.
    """
    arrays = [_conform_array(column, spec) for column, spec in zip(batch.columns, specs, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _conform_array(array: pa.Array, spec: ColumnSpec) -> pa.Array:
    target = spec.arrow_type
    if array.type == target:
        return array
    if isinstance(array.type, pa.BaseExtensionType):
        if spec.kind is Kind.UUID:
            return _uuid_strings(array.storage)
        array = array.storage
    try:
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return values_to_array(array.to_pylist(), spec)


#: where the 32 hex digits of a UUID go in its 36-character canonical form.
_UUID_HEX_AT = np.array([index for index in range(36) if index not in (8, 13, 18, 23)])


def _uuid_strings(storage: pa.FixedSizeBinaryArray) -> pa.Array:
    """Format 16-byte UUIDs as canonical strings with numpy, without a Python object per value."""
    count = len(storage)
    raw = np.frombuffer(storage.buffers()[1] or b"", np.uint8, 16 * count, storage.offset * 16)
    text = np.full((count, 36), ord("-"), np.uint8)
    text[:, _UUID_HEX_AT] = np.frombuffer(binascii.hexlify(raw.data), np.uint8).reshape(count, 32)
    offsets = np.arange(0, 36 * (count + 1), 36, dtype=np.int32)
    validity = storage.is_valid().buffers()[1] if storage.null_count else None
    return pa.Array.from_buffers(pa.string(), count, [validity, pa.py_buffer(offsets), pa.py_buffer(text)])
