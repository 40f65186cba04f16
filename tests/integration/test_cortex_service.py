"""CortexService and SnowflakeCortexOperator against a fakesnow server with the Cortex emulation.

The server runs in this process (fakesnow's HTTP server on loopback, reached through the real
``snowflake.connector``) so that the tests can read the emulation's call counters and swap in
a failing function; the SQL is what a real Snowflake would receive.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
import snowflake.connector
from snowflake.connector.errors import OperationalError, ProgrammingError

from airflow_provider_sophia.cortex import utils
from airflow_provider_sophia.cortex.core import CortexService
from airflow_provider_sophia.cortex.models import ErrorMode, ServiceConfig, build_request
from airflow_provider_sophia.exceptions import CortexPermanentError, CortexTransientError
from airflow_provider_sophia.local import cortex_emulation
from airflow_provider_sophia.resilience import RetryPolicy
from tests.conftest import unique_name

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning:fakesnow.*")]

SENTIMENT = build_request("sentiment")
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    """A fakesnow HTTP server on loopback with the Cortex emulation; yields connect kwargs."""
    import uvicorn

    from airflow_provider_sophia.local.warehouse import connect_kwargs

    module = importlib.import_module("fakesnow.server")  # ``fakesnow.server`` is also a function
    cortex_emulation.install(module.shared_fs)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(module.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="cortex-test-warehouse", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the fakesnow server did not start"
    try:
        yield connect_kwargs(port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class CountingConnection:
    """Wrap a DB-API connection: record every executed statement, raise injected faults first."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.executed: list[str] = []
        self.faults: dict[str, list[Exception]] = {}

    def cursor(self) -> _CountingCursor:
        return _CountingCursor(self)

    def commit(self) -> None:
        self.connection.commit()


class _CountingCursor:
    def __init__(self, owner: CountingConnection) -> None:
        self._owner = owner
        self._cursor = owner.connection.cursor()

    @property
    def description(self) -> Any:
        return self._cursor.description

    def execute(self, sql: str, params: Any = None) -> _CountingCursor:
        self._owner.executed.append(sql)
        for prefix, errors in self._owner.faults.items():
            if sql.startswith(prefix) and errors:
                raise errors.pop(0)
        self._cursor.execute(sql, params)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def close(self) -> None:
        self._cursor.close()


@pytest.fixture
def connection(server: dict[str, Any]) -> Iterator[CountingConnection]:
    with snowflake.connector.connect(**server) as raw:
        yield CountingConnection(raw)


def service(connection: CountingConnection, **config: Any) -> CortexService:
    return CortexService(
        lambda: contextlib.nullcontext(connection),
        ServiceConfig(retry=NO_WAIT, **config),
        sleep=lambda _: None,
    )


def make_source(connection: CountingConnection, rows: int) -> str:
    table = unique_name("calls")
    cursor = connection.connection.cursor()
    cursor.execute(f'CREATE TABLE "{table}" (id INT, transcript VARCHAR)')
    values = [(i, f"Call {i}: the customer was happy with the demo.") for i in range(rows)]
    cursor.executemany(f'INSERT INTO "{table}" VALUES (%s, %s)', values)
    return table


def enrich(svc: CortexService, source: str, target: str, request: Any = SENTIMENT, **kwargs: Any) -> Any:
    return svc.enrich_table(
        request, source_table=source, key_column="id", text_column="transcript", target_table=target, **kwargs
    )


def test_unchanged_rows_are_not_sent_again_and_a_changed_row_alone_is(connection: CountingConnection) -> None:
    source, target = make_source(connection, 20), unique_name("sentiment")
    svc = service(connection)

    first = enrich(svc, source, target)
    assert (first.rows_enriched, first.rows_skipped_unchanged, first.rows_failed) == (20, 0, 0)

    before = cortex_emulation.CALLS["SENTIMENT"]
    second = enrich(svc, source, target)
    assert cortex_emulation.CALLS["SENTIMENT"] == before, "a run over unchanged rows sends nothing to Cortex"
    assert (second.rows_enriched, second.rows_skipped_unchanged) == (0, 20)

    cursor = connection.connection.cursor()
    cursor.execute(f"UPDATE \"{source}\" SET transcript = 'Terrible call, the export failed.' WHERE id = 7")
    third = enrich(svc, source, target)
    assert cortex_emulation.CALLS["SENTIMENT"] == before + 1
    assert (third.rows_enriched, third.rows_skipped_unchanged) == (1, 19)
    score, run_ids = cursor.execute(
        f'SELECT "RESULT", (SELECT COUNT(DISTINCT "RUN_ID") FROM "{target}") '
        f'FROM "{target}" WHERE "KEY" = \'7\''
    ).fetchone()
    assert float(score) < 0
    assert run_ids == 2


def test_statements_per_run_do_not_grow_with_rows(connection: CountingConnection) -> None:
    svc = service(connection)
    counts = []
    for rows in (3, 150):
        source, target = make_source(connection, rows), unique_name("sentiment")
        connection.executed.clear()
        summary = enrich(svc, source, target)
        assert summary.rows_enriched == rows
        counts.append(len(connection.executed))
        assert summary.statements == len(connection.executed)
    assert counts == [4, 4]


def test_max_rows_caps_each_run(connection: CountingConnection) -> None:
    source, target = make_source(connection, 10), unique_name("sentiment")
    svc = service(connection)
    first = enrich(svc, source, target, max_rows=4)
    assert (first.rows_enriched, first.rows_deferred) == (4, 6)
    second = enrich(svc, source, target, max_rows=4)
    assert (second.rows_enriched, second.rows_deferred, second.rows_skipped_unchanged) == (4, 2, 4)


def test_content_hash_in_python_matches_snowflake(connection: CountingConnection) -> None:
    source, target = make_source(connection, 1), unique_name("sentiment")
    enrich(service(connection), source, target)
    stored = connection.connection.cursor().execute(f'SELECT "CONTENT_HASH" FROM "{target}"').fetchone()[0]
    text = "Call 0: the customer was happy with the demo."
    assert stored == utils.content_hash(text, utils.request_fingerprint(SENTIMENT))


def test_transient_errors_are_retried_within_bounds(connection: CountingConnection) -> None:
    source, target = make_source(connection, 5), unique_name("sentiment")
    suspended = OperationalError(msg="Warehouse 'LOCAL' was suspended.", errno=608, sqlstate="57P03")
    connection.faults["MERGE"] = [suspended, suspended]
    summary = enrich(service(connection), source, target)
    assert summary.rows_enriched == 5
    assert summary.attempts == summary.statements + 2

    source, target = make_source(connection, 5), unique_name("sentiment")
    connection.faults["MERGE"] = [suspended] * 10
    connection.executed.clear()
    with pytest.raises(CortexTransientError) as raised:
        enrich(service(connection), source, target)
    assert raised.value.attempts == NO_WAIT.max_attempts
    assert sum(sql.startswith("MERGE") for sql in connection.executed) == NO_WAIT.max_attempts


def test_permanent_statement_error_fails_without_retry(connection: CountingConnection) -> None:
    source, target = make_source(connection, 5), unique_name("sentiment")
    connection.faults["MERGE"] = [ProgrammingError(msg="Unknown function", errno=2140, sqlstate="42601")]
    connection.executed.clear()
    with pytest.raises(CortexPermanentError, match="errno=2140"):
        enrich(service(connection), source, target)
    assert sum(sql.startswith("MERGE") for sql in connection.executed) == 1


@pytest.fixture
def failing_ai_sentiment() -> Iterator[None]:
    """Replace the emulated AI_SENTIMENT by one that cannot process texts containing 'BOOM'."""
    duck = importlib.import_module("fakesnow.server").shared_fs.duck_conn

    def sentiment(text: str) -> str:
        if "BOOM" in text:
            raise ValueError("cannot process")
        return json.dumps({"categories": [{"name": "overall", "sentiment": "neutral"}]})

    duck.remove_function("AI_SENTIMENT")
    duck.create_function(
        "AI_SENTIMENT",
        sentiment,
        [duckdb.sqltypes.VARCHAR],
        duckdb.sqltype("JSON"),
        exception_handling=duckdb.PythonExceptionHandling.RETURN_NULL,
    )
    try:
        yield
    finally:
        cortex_emulation.install(duck)


def test_permanent_row_errors_are_reported_with_the_row_key(
    connection: CountingConnection, failing_ai_sentiment: None
) -> None:
    source, target = make_source(connection, 6), unique_name("ai_sentiment")
    connection.connection.cursor().execute(f"UPDATE \"{source}\" SET transcript = 'BOOM' WHERE id IN (2, 4)")
    request = build_request("ai_sentiment")

    summary = enrich(service(connection), source, target, request)
    assert (summary.rows_enriched, summary.rows_failed) == (4, 2)
    assert [error.key for error in summary.errors] == ["2", "4"]
    assert "AI_SENTIMENT returned NULL" in summary.errors[0].error

    results = service(connection).enrich_texts(request, {"ok": "fine", "bad": "BOOM"})
    assert [(result.key, result.ok) for result in results] == [("ok", True), ("bad", False)]

    source, target = make_source(connection, 3), unique_name("ai_sentiment")
    connection.connection.cursor().execute(f"UPDATE \"{source}\" SET transcript = 'BOOM' WHERE id = 1")
    with pytest.raises(CortexPermanentError) as raised:
        enrich(service(connection, on_error=ErrorMode.FAIL), source, target, request)
    assert raised.value.keys == ("1",)


def test_small_batches_are_one_statement_each(connection: CountingConnection) -> None:
    texts = {f"k{i}": f"Great call number {i % 7}." for i in range(250)}
    connection.executed.clear()
    results = service(connection, batch_size=100).enrich_texts(build_request("ai_embed"), texts)
    assert len(connection.executed) == 3
    assert [result.key for result in results] == list(texts)
    assert all(len(result.value) == 1024 for result in results)
    assert results[0].value == results[7].value, "the emulation is deterministic"


def test_operator_run(server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
    from airflow_provider_sophia.local.warehouse import airflow_connection
    from airflow_provider_sophia.operators.cortex import SnowflakeCortexOperator

    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps(airflow_connection(server["port"])))
    with snowflake.connector.connect(**server) as raw:
        source, target = make_source(CountingConnection(raw), 8), unique_name("summary")
    operator = SnowflakeCortexOperator(
        task_id="summarize_calls",
        snowflake_conn_id="snowflake_default",
        function="SNOWFLAKE.CORTEX.SUMMARIZE",
        source_table=source,
        key_column="id",
        text_column="transcript",
        target_table=target,
        max_rows=5,
    )
    try:
        summary = operator.execute(context={})
    finally:
        SnowflakePoolHook.close_all_pools()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["rows_enriched"] == 5
    assert summary["rows_deferred"] == 3
    assert summary["statements"] == 4
