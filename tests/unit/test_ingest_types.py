from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pyarrow as pa
import pytest

from airflow_provider_sophia.exceptions import IngestError, InvalidIdentifierError, UnsupportedTypeError
from airflow_provider_sophia.ingest.types import (
    ColumnSpec,
    Kind,
    arrow_column_spec,
    arrow_schema,
    check_unique_targets,
    column_spec,
    conform_batch,
    infer_spec,
    rows_to_batch,
    snowflake_column_name,
    values_to_array,
)


@pytest.mark.parametrize(
    ("type_name", "snowflake", "arrow"),
    [
        ("int4", "NUMBER(38,0)", pa.int64()),
        ("bigint unsigned", "NUMBER(20,0)", pa.decimal128(20, 0)),
        ("numeric(12,2)", "NUMBER(12,2)", pa.decimal128(12, 2)),
        ("NUMERIC", "NUMBER(38,9)", pa.decimal128(38, 9)),
        ("double precision", "FLOAT", pa.float64()),
        ("boolean", "BOOLEAN", pa.bool_()),
        ("character varying(10)", "VARCHAR", pa.string()),
        ("bytea", "BINARY", pa.binary()),
        ("date", "DATE", pa.date32()),
        ("timestamp(6) without time zone", "TIMESTAMP_NTZ", pa.timestamp("us")),
        ("timestamp with time zone", "TIMESTAMP_TZ", pa.timestamp("us", "UTC")),
        ("jsonb", "VARIANT", pa.string()),
        ("uuid", "VARCHAR(36)", pa.string()),
        ("time", "TIME", pa.time64("us")),
    ],
)
def test_declared_types_map_with_fidelity(type_name: str, snowflake: str, arrow: pa.DataType) -> None:
    spec = column_spec("col", type_name)
    assert spec.snowflake_type == snowflake
    assert spec.arrow_type == arrow


def test_json_is_staged_as_text_and_parsed_on_load() -> None:
    spec = column_spec("doc", "json")
    assert spec.staging_type == "VARCHAR"
    assert spec.load_expression('"SRC"') == 'PARSE_JSON("SRC"."DOC")'


@pytest.mark.parametrize("type_name", ["interval", "point", "integer[]", "geometry"])
def test_unmappable_type_names_the_column_and_type(type_name: str) -> None:
    with pytest.raises(
        UnsupportedTypeError, match=rf"'span'.*{type_name.replace('[', '.').replace(']', '.')}"
    ):
        column_spec("span", type_name)


def test_too_wide_numeric_is_refused() -> None:
    with pytest.raises(UnsupportedTypeError, match="precision 50"):
        column_spec("big", "numeric(50,2)")


def test_adbc_fields_map_including_postgres_numeric_typmod() -> None:
    numeric = pa.field(
        "amount", pa.string(), metadata={"POSTGRESQL:type": "numeric", "POSTGRESQL:typmod": "786438"}
    )
    opaque = pa.opaque(pa.string(), "numeric", "PostgreSQL")
    spec = arrow_column_spec(pa.field(numeric.name, opaque, metadata=numeric.metadata))
    assert (spec.kind, spec.precision, spec.scale) == (Kind.DECIMAL, 12, 2)
    assert arrow_column_spec(pa.field("doc", pa.json_())).kind is Kind.JSON
    assert arrow_column_spec(pa.field("id", pa.uuid())).kind is Kind.UUID
    with pytest.raises(UnsupportedTypeError, match=r"'span'.*interval"):
        arrow_column_spec(
            pa.field("span", pa.month_day_nano_interval(), metadata={"POSTGRESQL:type": "interval"})
        )


def test_driver_values_are_coerced() -> None:
    assert values_to_array([{"a": 1}, None], column_spec("j", "json")).to_pylist() == ['{"a": 1}', None]
    value = uuid.uuid4()
    assert values_to_array([value], column_spec("u", "uuid")).to_pylist() == [str(value)]
    assert values_to_array([dt.timedelta(hours=1, seconds=2)], column_spec("t", "time")).to_pylist() == [
        dt.time(1, 0, 2)
    ]
    assert values_to_array([b"\x01", b"\x00"], column_spec("b", "boolean")).to_pylist() == [True, False]
    assert values_to_array([memoryview(b"ab")], column_spec("b", "bytea")).to_pylist() == [b"ab"]
    assert values_to_array(["2024-01-02 03:04:05"], column_spec("ts", "timestamp")).to_pylist() == [
        dt.datetime(2024, 1, 2, 3, 4, 5)
    ]
    assert values_to_array(["2024-01-02"], column_spec("d", "date")).to_pylist() == [dt.date(2024, 1, 2)]


def test_unconstrained_numeric_rounds_half_even_like_snowflake() -> None:
    array = values_to_array(
        [decimal.Decimal("0.1234567895"), decimal.Decimal("2")], column_spec("r", "numeric")
    )
    assert array.to_pylist() == [decimal.Decimal("0.123456790"), decimal.Decimal("2.000000000")]


def test_value_that_does_not_fit_names_the_column() -> None:
    with pytest.raises(IngestError, match=r"'n'.*Cast"):
        values_to_array(["not a number"], column_spec("n", "int"))


def test_uuid_extension_arrays_become_canonical_strings() -> None:
    values = [uuid.uuid4(), None, uuid.uuid4()]
    storage = pa.array([None if v is None else v.bytes for v in values], pa.binary(16))
    batch = pa.RecordBatch.from_arrays([pa.ExtensionArray.from_storage(pa.uuid(), storage).slice(1)], ["u"])
    spec = ColumnSpec("u", Kind.UUID, "uuid")
    out = conform_batch(batch, [spec], arrow_schema([spec]))
    assert out.column(0).to_pylist() == [None, str(values[2])]


def test_rows_become_a_batch_of_the_staged_schema() -> None:
    specs = [column_spec("id", "int8"), column_spec("name", "text")]
    batch = rows_to_batch([(1, "a"), (2, None)], specs, arrow_schema(specs))
    assert batch.schema.names == ["ID", "NAME"]
    assert batch.to_pylist() == [{"ID": 1, "NAME": "a"}, {"ID": 2, "NAME": None}]


def test_inference_from_values() -> None:
    assert infer_spec("x", [None, 1.5]).kind is Kind.FLOAT
    assert infer_spec("x", [None, None]).kind is Kind.TEXT
    assert infer_spec("x", [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)]).kind is Kind.TIMESTAMP_TZ
    with pytest.raises(UnsupportedTypeError, match="'x'"):
        infer_spec("x", [object()])


def test_column_names_and_collisions() -> None:
    assert snowflake_column_name("created_at") == "CREATED_AT"
    assert snowflake_column_name("Order Total") == "Order Total"
    with pytest.raises(InvalidIdentifierError):
        snowflake_column_name("bad\x00name")
    with pytest.raises(InvalidIdentifierError, match="'a' and 'A'"):
        check_unique_targets([column_spec("a", "int"), column_spec("A", "int")])


def test_spec_round_trips_through_dict() -> None:
    spec = column_spec("amount", "numeric(10,3)")
    assert ColumnSpec.from_dict(spec.to_dict()) == spec
