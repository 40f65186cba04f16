"""Generated hostile input at every public entry point: rejected before any SQL or request, or bound.

Hostile means quotes, semicolons, comment markers, unicode confusables (fullwidth letters,
Cyrillic ``o``), NUL and other control characters, huge strings, and negative, zero, NaN,
infinite or wrongly typed sizes. A spy connection (SQL) and the Gong simulator's request log
(HTTP) prove that nothing was sent when an input was rejected.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sophia.cortex.core import CortexService
from airflow_provider_sophia.cortex.models import build_request
from airflow_provider_sophia.cortex.utils import batch_sql
from airflow_provider_sophia.exceptions import InvalidIdentifierError
from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.gong.landing import parse_moment, resolve_window
from airflow_provider_sophia.gong.simulator import GongSimulator, Settings
from airflow_provider_sophia.identifiers import quote_column, quote_identifier, split_identifier
from airflow_provider_sophia.ingest import LoadPlan, SourceQuery
from airflow_provider_sophia.operators.gong_to_snowflake import GongToSnowflakeOperator
from airflow_provider_sophia.operators.sql_to_snowflake import ChunkedSqlToSnowflakeOperator
from airflow_provider_sophia.pool import ConnectionPool, PoolConfig

#: unicode confusables of ``orders``: fullwidth letters, and a Cyrillic o first.
FULLWIDTH, CYRILLIC = "\uff4f\uff52\uff44\uff45\uff52\uff53", "\u043erders"
FRAGMENTS = [
    "'",
    '"',
    '""',
    ";",
    "--",
    "/*",
    "*/",
    " ",
    ".",
    "\x00",
    "\n",
    "\x1b",
    "DROP TABLE users",
    FULLWIDTH,
    CYRILLIC,
    "`",
    "\\",
    "$",
    "%s",
    "%(x)s",
    "{{ 7*7 }}",
    "orders",
    "_x1",
]
HOSTILE_TEXT = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map("".join),
    st.text(min_size=1, max_size=40),
    st.sampled_from(FRAGMENTS).map(lambda piece: piece * 5000),  # huge
)
#: what a UI form or a parsed extra can hand over instead of a number.
HOSTILE_NUMBER = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["5", "", "1; DROP", None, True, False, [], 1e300, -0.0]),
)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class SpyConnection:
    """A DB-API connection that records every statement instead of running it."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.opened = 0

    def cursor(self) -> SpyConnection:
        return self

    def execute(self, sql: str, params: Any = None) -> SpyConnection:
        self.statements.append(sql)
        raise AssertionError(f"SQL was sent: {sql[:200]!r}")

    def close(self) -> None:
        """Nothing to close."""

    @contextmanager
    def lend(self) -> Iterator[SpyConnection]:
        """Count an acquisition (what a pool or hook would hand out)."""
        self.opened += 1
        yield self


def assert_only_quoted_identifiers(sql: str) -> None:
    """Assert ``sql`` is a dot-separated run of double-quoted names: nothing outside quotes."""
    outside, inside, index = [], False, 0
    while index < len(sql):
        char = sql[index]
        if char == '"':
            if inside and sql[index + 1 : index + 2] == '"':
                index += 2
                continue
            inside = not inside
        elif not inside:
            outside.append(char)
        index += 1
    assert not inside, sql
    assert set(outside) <= {"."}, sql
    assert not any(ord(char) < 0x20 or char == "\x7f" for char in sql), sql


# --- identifiers -----------------------------------------------------------------------


@SLOW
@given(name=HOSTILE_TEXT, parts=st.sampled_from([1, 3]))
def test_identifier_is_rejected_or_quoted_to_nothing_but_names(name: str, parts: int) -> None:
    try:
        quoted = quote_identifier(name, max_parts=parts)
    except InvalidIdentifierError:
        return
    assert_only_quoted_identifiers(quoted)
    assert split_identifier(quoted) == split_identifier(name)  # quoting is stable
    if parts == 1:
        assert quoted == quote_column(name)


@pytest.mark.parametrize(
    "name", ["orders\u2028", CYRILLIC, FULLWIDTH, "orders;", "orders--", "a/*b", "a\x00", "x" * 256]
)
def test_confusables_and_markers_are_never_plain_identifiers(name: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        quote_identifier(name)


# --- load plans and source queries -----------------------------------------------------


@SLOW
@given(target=HOSTILE_TEXT, key=HOSTILE_TEXT, incremental=HOSTILE_TEXT)
def test_load_plan_rejects_or_quotes_every_name(target: str, key: str, incremental: str) -> None:
    try:
        plan = LoadPlan(target=target, mode="merge", merge_keys=(key,), incremental_column=incremental)
    except (InvalidIdentifierError, ValueError):
        return
    assert_only_quoted_identifiers(plan.quoted_target)
    assert_only_quoted_identifiers(plan.staging_table("load"))


def test_merge_keys_given_as_one_string_is_rejected() -> None:
    with pytest.raises(InvalidIdentifierError, match=r"list of column names.*\['id'\]"):
        LoadPlan(target="t", mode="merge", merge_keys="id")


@SLOW
@given(table=HOSTILE_TEXT, column=HOSTILE_TEXT)
def test_source_query_rejects_or_quotes_table_and_columns(table: str, column: str) -> None:
    try:
        query = SourceQuery(table=table, incremental_column=column, window=(1, 2))
    except InvalidIdentifierError:
        return
    sql, params = query.render(lambda _: "%s")
    assert params == [1, 2]
    assert ";" not in sql.replace(quote_identifier(table, upper=False), "").replace(
        quote_column(column, upper=False), ""
    )


# --- the ingest operator, as a UI trigger renders its templates --------------------------


def ingest_operator(spy: SpyConnection, **kwargs: Any) -> ChunkedSqlToSnowflakeOperator:
    """The operator with its Snowflake and source hooks replaced by the spy."""
    operator = ChunkedSqlToSnowflakeOperator(task_id="load", source_conn_id="src", **kwargs)
    operator.__dict__["snowflake_hook"] = SimpleNamespace(pooled_connection=spy.lend)
    operator.__dict__["source_hook"] = SimpleNamespace(dialect_name="sqlite", get_conn=lambda: spy)
    return operator


CONTEXT: Any = {
    "ti": SimpleNamespace(dag_id="d", task_id="load", map_index=-1, try_number=1),
    "run_id": "manual__1",
}


@SLOW
@given(source=HOSTILE_TEXT, target=HOSTILE_TEXT)
def test_ingest_operator_rejects_hostile_tables_before_connecting(source: str, target: str) -> None:
    try:
        SourceQuery(table=source)
        LoadPlan(target=target)
    except InvalidIdentifierError:
        pass
    else:
        return  # both valid: nothing hostile left to reject
    spy = SpyConnection()
    with pytest.raises(InvalidIdentifierError):
        ingest_operator(spy, source_table=source, target_table=target).execute(CONTEXT)
    assert spy.opened == 0
    assert spy.statements == []


@pytest.mark.parametrize(
    "params",
    [
        {"source_table": "orders; DROP TABLE orders", "target_table": "T"},
        {"source_table": "orders", "target_table": "T --"},
        {"source_table": "orders", "target_table": "T", "mode": "merge", "merge_keys": ["id) OR (1=1"]},
        {"source_table": "orders", "target_table": "T", "incremental_column": "ts/*", "window_start": 1},
        {"source_table": CYRILLIC, "target_table": "T"},
    ],
)
def test_ingest_operator_ui_params_rejected_before_any_sql(params: dict[str, Any]) -> None:
    spy = SpyConnection()
    with pytest.raises(InvalidIdentifierError):
        ingest_operator(spy, **params).execute(CONTEXT)
    assert (spy.opened, spy.statements) == (0, [])


# --- Cortex --------------------------------------------------------------------------


@SLOW
@given(source=HOSTILE_TEXT, key=HOSTILE_TEXT, text=HOSTILE_TEXT, target=HOSTILE_TEXT)
def test_cortex_rejects_hostile_names_before_connecting(
    source: str, key: str, text: str, target: str
) -> None:
    names = [(source, 3), (key, 1), (text, 1), (target, 3)]
    if all(_valid(name, parts) for name, parts in names):
        return
    spy = SpyConnection()
    with pytest.raises(InvalidIdentifierError):
        CortexService(spy.lend).enrich_table(
            build_request("SUMMARIZE"),
            source_table=source,
            key_column=key,
            text_column=text,
            target_table=target,
        )
    assert (spy.opened, spy.statements) == (0, [])


def _valid(name: str, parts: int) -> bool:
    try:
        quote_identifier(name, max_parts=parts)
    except InvalidIdentifierError:
        return False
    return True


@SLOW
@given(texts=st.lists(HOSTILE_TEXT, min_size=1, max_size=5), model=HOSTILE_TEXT, instruction=HOSTILE_TEXT)
def test_cortex_texts_and_options_are_bind_parameters(texts: list[str], model: str, instruction: str) -> None:
    request = build_request("COMPLETE", {"model": model, "instruction": instruction})
    statement = batch_sql(request, texts)
    assert list(statement.params.values())[: len(texts)] == texts
    assert model in statement.params.values()
    for value in [*texts, model]:
        if len(value) > 3 and value not in ('""', "orders", "_x1"):
            assert value not in statement.sql


@pytest.mark.parametrize(
    ("function", "options"),
    [
        ("COMPLETE", {"temperature": math.nan}),
        ("COMPLETE", {"max_tokens": -1}),
        ("COMPLETE", {"max_tokens": 0}),
        ("COMPLETE", {"model; DROP": "x"}),
        ("SUMMARIZE; DROP TABLE t", {}),
        ("CLASSIFY_TEXT", {"categories": []}),
    ],
)
def test_cortex_bad_functions_and_options_are_value_errors(function: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_request(function, options)


# --- Gong ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[GongSimulator]:
    """A small simulator; its request log proves what was (not) sent."""
    with GongSimulator(seed=3, users=2, calls=5, settings=Settings(rate_limit=None)) as sim:
        yield sim


@pytest.fixture(scope="module")
def client(sim: GongSimulator) -> Iterator[GongClient]:
    with GongClient(sim.url, sim.access_key, sim.access_key_secret, rate_limit_per_second=None) as client:
        yield client


def _iso_ok(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@settings(SLOW, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=HOSTILE_TEXT)
def test_gong_dates_are_rejected_before_any_request(
    value: str, sim: GongSimulator, client: GongClient
) -> None:
    if _iso_ok(value):
        return
    before = len(sim.requests())
    for stream in ("calls", "calls_extensive", "transcripts"):
        with pytest.raises(ValueError, match="ISO-8601"):
            client.iter_pages(stream, value, None)
        with pytest.raises(ValueError, match="ISO-8601"):
            client.iter_pages(stream, None, value)
    assert len(sim.requests()) == before


@settings(SLOW, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    call_id=st.one_of(
        HOSTILE_TEXT, st.sampled_from([None, True, 1.5, "", "\uff11\uff12\uff13", "12 3", "1" * 33])
    )
)
def test_gong_call_ids_are_rejected_before_any_request(
    call_id: Any, sim: GongSimulator, client: GongClient
) -> None:
    if isinstance(call_id, str) and call_id.isascii() and call_id.isdigit() and len(call_id) <= 32:
        return
    before = len(sim.requests())
    with pytest.raises(ValueError, match="call id"):
        list(client.iter_transcripts(call_ids=["123", call_id]))
    assert len(sim.requests()) == before


def test_gong_call_ids_as_one_string_are_rejected(sim: GongSimulator, client: GongClient) -> None:
    before = len(sim.requests())
    with pytest.raises(ValueError, match="list of call ids"):
        client.iter_transcripts(call_ids="12345")
    assert len(sim.requests()) == before


@SLOW
@given(
    value=st.one_of(HOSTILE_TEXT, st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59-01:00"]))
)
def test_landing_dates_parse_or_raise_value_error(value: str) -> None:
    try:
        moment = parse_moment(value, "from_datetime")
    except ValueError as error:
        message = str(error)
    else:
        assert moment is None or moment.tzinfo is not None
        return
    assert "from_datetime" in message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval_start": "0001-01-02", "interval_end": "2024-01-01"},  # minus lookback: before year 1
        {"interval_start": None, "interval_end": "0001-01-02"},
        {
            "from_datetime": "2024-01-02",
            "to_datetime": "2024-01-01",
            "interval_start": None,
            "interval_end": None,
        },
    ],
)
def test_landing_windows_out_of_range_are_value_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"lookback|empty"):
        resolve_window("transcripts", **kwargs)


@settings(SLOW, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(start=HOSTILE_TEXT, table=HOSTILE_TEXT)
def test_gong_operator_rejects_ui_params_before_any_request(
    start: str, table: str, sim: GongSimulator
) -> None:
    if _valid(table, 3) and _iso_ok(start.strip()):
        return
    operator = GongToSnowflakeOperator(
        task_id="land", stream="calls", target_table="{{ params.table }}", from_datetime=start
    )
    operator.target_table = table  # as rendered from a UI trigger's params
    spy = SpyConnection()
    operator.__dict__["gong_hook"] = SimpleNamespace(get_client=lambda: pytest.fail("client built"))
    operator.__dict__["snowflake_hook"] = SimpleNamespace(pooled_connection=spy.lend)
    before = len(sim.requests())
    context = {**CONTEXT, "data_interval_start": None, "data_interval_end": None}
    with pytest.raises(ValueError):
        operator.execute(context)
    assert (spy.opened, spy.statements, len(sim.requests())) == (0, [], before)


# --- pool sizes and timeouts -------------------------------------------------------------


@SLOW
@given(size=HOSTILE_NUMBER, seconds=HOSTILE_NUMBER, field=st.sampled_from(["acquire_timeout", "max_idle"]))
def test_pool_config_rejects_or_holds_usable_numbers(size: Any, seconds: Any, field: str) -> None:
    try:
        config = PoolConfig(min_size=0, max_size=size, **{field: seconds})
    except ValueError as error:
        message = str(error)
    else:
        assert isinstance(config.max_size, int)
        assert config.max_size >= 1
        assert math.isfinite(getattr(config, field))
        assert getattr(config, field) <= threading.TIMEOUT_MAX
        return
    assert message.startswith("Pool")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"acquire_timeout": math.inf},
        {"acquire_timeout": 1e300},
        {"health_check_interval": math.inf, "max_idle": math.inf, "max_lifetime": math.inf},
        {"max_size": math.inf},
        {"max_size": "5"},
        {"min_size": True},
        {"connect_backoff_max": math.nan},
    ],
)
def test_pool_config_rejects_values_a_lock_cannot_wait_for(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Pool"):
        PoolConfig(**kwargs)


def test_pool_huge_explicit_acquire_timeout_waits_instead_of_overflowing() -> None:
    def connect() -> sqlite3.Connection:
        return sqlite3.connect(":memory:", check_same_thread=False)

    pool = ConnectionPool(connect, PoolConfig(min_size=0, max_size=1))
    with pool, pool.connection(timeout=1e300) as conn:  # queued: the connection is opened for it
        assert conn.execute("SELECT 1").fetchone() == (1,)
