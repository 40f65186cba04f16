from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_sophia.exceptions import InvalidIdentifierError
from airflow_provider_sophia.ingest.plans import LoadPlan, load_key, resolve_column
from airflow_provider_sophia.ingest.readers import SourceQuery, split_key_range
from airflow_provider_sophia.ingest.types import column_spec

SPECS = [
    column_spec("id", "int8"),
    column_spec("doc", "jsonb"),
    column_spec("updated_at", "timestamp"),
    column_spec("hash", "text"),
]
WINDOW = (dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc))


def test_append_inserts_from_the_staging_table() -> None:
    plan = LoadPlan("db.sch.orders")
    [(sql, params)] = plan.statements(SPECS, "run-1")
    staging = plan.staging_table("run-1")
    assert staging == f'"DB"."SCH"."_SOPHIA_STG_{load_key("run-1").upper()}"'
    assert sql == (
        'INSERT INTO "DB"."SCH"."ORDERS" ("ID", "DOC", "UPDATED_AT", "HASH") SELECT "SRC"."ID" AS "ID", '
        'PARSE_JSON("SRC"."DOC") AS "DOC", "SRC"."UPDATED_AT" AS "UPDATED_AT", "SRC"."HASH" AS "HASH" '
        f'FROM {staging} AS "SRC"'
    )
    assert params == ()
    assert plan.uses_ledger


def test_windowed_append_replaces_the_window_with_bound_values() -> None:
    plan = LoadPlan("orders", incremental_column="updated_at", window=WINDOW)
    (delete, params), (insert, _) = plan.statements(SPECS, "run-1")
    assert delete == 'DELETE FROM "ORDERS" WHERE "UPDATED_AT" >= %s AND "UPDATED_AT" < %s'
    assert params == (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))  # naive UTC for TIMESTAMP_NTZ
    assert insert.startswith('INSERT INTO "ORDERS"')
    assert not plan.uses_ledger


def test_replace_deletes_then_inserts() -> None:
    (delete, _), (insert, _) = LoadPlan("orders", mode="replace").statements(SPECS, "r")
    assert delete == 'DELETE FROM "ORDERS"'
    assert insert.startswith('INSERT INTO "ORDERS"')


def test_merge_keeps_latest_row_per_key_and_skips_unchanged() -> None:
    plan = LoadPlan(
        "orders", mode="merge", merge_keys=["id"], incremental_column="updated_at", compare_columns=["hash"]
    )
    (delete, _), (insert, _) = plan.statements(SPECS, "r")
    latest = (
        'QUALIFY ROW_NUMBER() OVER (PARTITION BY "SRC"."ID" ORDER BY "SRC"."UPDATED_AT" DESC NULLS LAST, '
        '"SRC"."_SOPHIA_ROW" DESC) = 1'
    )
    assert latest in delete
    assert latest in insert
    assert delete.startswith('DELETE FROM "ORDERS" AS "T" WHERE EXISTS')
    assert delete.endswith(
        'WHERE "S"."ID" = "T"."ID" AND ("T"."HASH" IS DISTINCT FROM "S"."HASH") '
        'AND NOT COALESCE("T"."UPDATED_AT" > "S"."UPDATED_AT", FALSE))'
    )
    assert insert.endswith('WHERE NOT EXISTS (SELECT 1 FROM "ORDERS" AS "T" WHERE "S"."ID" = "T"."ID")')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "upsert"}, "mode must be one of"),
        ({"mode": "merge"}, "needs merge_keys"),
        ({"mode": "replace", "incremental_column": "u", "window": WINDOW}, "takes no incremental window"),
        ({"window": WINDOW}, "needs incremental_column"),
    ],
)
def test_invalid_plans_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadPlan("orders", **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": 'orders"; DROP TABLE x; --'},
        {"target": "a.b.c.d"},
        {"target": "t", "mode": "merge", "merge_keys": ["id; drop"]},
        {"target": "t", "incremental_column": "1col"},
    ],
)
def test_invalid_identifiers_are_rejected_before_sql_is_built(kwargs: dict) -> None:
    with pytest.raises(InvalidIdentifierError):
        LoadPlan(**kwargs)


def test_unknown_merge_key_names_the_columns() -> None:
    with pytest.raises(InvalidIdentifierError, match="'nope' is not in the source result"):
        LoadPlan("t", mode="merge", merge_keys=["nope"]).statements(SPECS, "r")
    assert resolve_column(SPECS, "ID").name == "id"


def test_staging_ddl_uses_staging_types() -> None:
    ddl = LoadPlan("t").create_staging_sql(SPECS, "r")
    assert ddl.startswith('CREATE OR REPLACE TRANSIENT TABLE "_SOPHIA_STG_')
    assert '"DOC" VARCHAR' in ddl
    assert '"_SOPHIA_ROW" NUMBER(38,0)' in ddl
    assert '"DOC" VARIANT' in LoadPlan("t").create_target_sql(SPECS)


def test_source_query_renders_windows_and_ranges_as_bind_parameters() -> None:
    query = SourceQuery(
        sql="select * from t where name like 'a%'",
        incremental_column="updatedAt",
        window=("s", "e"),
        key_column="id",
        key_range=(None, 10),
    )
    sql, params = query.render(lambda n: f"${n}")
    assert sql == (
        "SELECT * FROM (select * from t where name like 'a%') AS \"_sophia_q\" "
        'WHERE "updatedAt" >= $1 AND "updatedAt" < $2 AND "id" < $3'
    )
    assert params == ["s", "e", 10]
    escaped, _ = query.render(lambda _: "%s", percent_escaped=True)
    assert "like 'a%%'" in escaped
    assert SourceQuery(table="public.orders").render(lambda _: "?") == ('SELECT * FROM "public"."orders"', [])
    with pytest.raises(InvalidIdentifierError):
        SourceQuery(table="orders; drop").base_sql()
    with pytest.raises(ValueError, match="exactly one"):
        SourceQuery().base_sql()


def test_key_ranges_cover_everything_once() -> None:
    ranges = split_key_range(1, 100, 4)
    assert ranges == [(None, 26), (26, 51), (51, 76), (76, None)]
    assert split_key_range(5, 5, 3)[0] == (None, 6)
    with pytest.raises(ValueError, match="at least 1"):
        split_key_range(1, 2, 0)
