"""Golden SQL of the Cortex builders, parsed as Snowflake SQL; hostile values stay data."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from airflow_provider_sophia.cortex import handlers, utils
from airflow_provider_sophia.cortex.core import CortexService
from airflow_provider_sophia.cortex.models import ErrorMode, ServiceConfig, build_request
from airflow_provider_sophia.exceptions import (
    CortexPermanentError,
    CortexResultError,
    CortexTransientError,
    InvalidIdentifierError,
)
from airflow_provider_sophia.resilience import RetryPolicy

HOSTILE_TEXT = "'); DROP TABLE x; --"
HOSTILE_KEY = '"; --'

#: function, options, the call over c."TEXT" that Snowflake receives.
GOLDEN_CALLS = [
    (
        "AI_COMPLETE",
        {"model": "mistral-7b"},
        "AI_COMPLETE(%(model)s, c.\"TEXT\", OBJECT_CONSTRUCT('temperature', %(temperature)s, "
        "'max_tokens', %(max_tokens)s))",
    ),
    (
        "AI_CLASSIFY",
        {"categories": ["pricing", "bug"]},
        'AI_CLASSIFY(c."TEXT", ARRAY_CONSTRUCT(%(category_0)s, %(category_1)s))',
    ),
    ("AI_FILTER", {"predicate": "Does this mention pricing?"}, 'AI_FILTER(PROMPT(%(predicate)s, c."TEXT"))'),
    ("AI_SENTIMENT", None, 'AI_SENTIMENT(c."TEXT")'),
    ("AI_EMBED", {}, 'AI_EMBED(%(model)s, c."TEXT")::ARRAY'),
    (
        "AI_TRANSLATE",
        {"target_language": "de"},
        'AI_TRANSLATE(c."TEXT", %(source_language)s, %(target_language)s)',
    ),
    (
        "AI_EXTRACT",
        {"question": "Which competitor?"},
        "AI_EXTRACT(c.\"TEXT\", OBJECT_CONSTRUCT('answer', %(question)s))",
    ),
    ("SENTIMENT", None, 'SNOWFLAKE.CORTEX.SENTIMENT(c."TEXT")'),
    ("SUMMARIZE", None, 'SNOWFLAKE.CORTEX.SUMMARIZE(c."TEXT")'),
    (
        "TRANSLATE",
        {"source_language": "en", "target_language": "de"},
        'SNOWFLAKE.CORTEX.TRANSLATE(c."TEXT", %(source_language)s, %(target_language)s)',
    ),
    (
        "EXTRACT_ANSWER",
        {"question": "Which competitor?"},
        'SNOWFLAKE.CORTEX.EXTRACT_ANSWER(c."TEXT", %(question)s)',
    ),
    (
        "CLASSIFY_TEXT",
        {"categories": ["pricing", "bug"]},
        'SNOWFLAKE.CORTEX.CLASSIFY_TEXT(c."TEXT", ARRAY_CONSTRUCT(%(category_0)s, %(category_1)s))',
    ),
    (
        "COMPLETE",
        {"instruction": "Reply:"},
        "SNOWFLAKE.CORTEX.COMPLETE(%(model)s, ARRAY_CONSTRUCT(OBJECT_CONSTRUCT('role', 'user', 'content', "
        "CONCAT(%(instruction)s, c.\"TEXT\"))), OBJECT_CONSTRUCT('temperature', %(temperature)s, "
        "'max_tokens', %(max_tokens)s))",
    ),
    (
        "EMBED_TEXT_768",
        {"model": "e5-base-v2"},
        'SNOWFLAKE.CORTEX.EMBED_TEXT_768(%(model)s, c."TEXT")::ARRAY',
    ),
    ("EMBED_TEXT_1024", {}, 'SNOWFLAKE.CORTEX.EMBED_TEXT_1024(%(model)s, c."TEXT")::ARRAY'),
]

GOLDEN_MERGE = (
    'MERGE INTO "CALLS_SENTIMENT" AS t USING (SELECT r."KEY", r."CONTENT_HASH", r."RESULT", '
    'IFF(r."RESULT" IS NULL, %(null_error)s, NULL) AS "ERROR" FROM (SELECT c."KEY", c."CONTENT_HASH", '
    '{call} AS "RESULT" FROM (SELECT CAST(s."ID" AS VARCHAR) AS "KEY", '
    'SHA2(CONCAT(%(fingerprint)s, s."TRANSCRIPT"), 256) AS "CONTENT_HASH", '
    'LEFT(s."TRANSCRIPT", %(max_chars)s) AS "TEXT" FROM "CALLS" AS s LEFT JOIN "CALLS_SENTIMENT" AS p '
    'ON p."KEY" = CAST(s."ID" AS VARCHAR) WHERE s."TRANSCRIPT" IS NOT NULL AND (p."KEY" IS NULL OR '
    'p."CONTENT_HASH" <> SHA2(CONCAT(%(fingerprint)s, s."TRANSCRIPT"), 256)) ORDER BY 1 LIMIT %(max_rows)s) '
    'AS c) AS r) AS c ON t."KEY" = c."KEY" WHEN MATCHED THEN UPDATE SET "CONTENT_HASH" = c."CONTENT_HASH", '
    '"RESULT" = c."RESULT", "FUNCTION" = %(function)s, "MODEL" = %(model_column)s, "RUN_ID" = %(run_id)s, '
    '"ENRICHED_AT" = CURRENT_TIMESTAMP(), "ERROR" = c."ERROR" WHEN NOT MATCHED THEN INSERT ("KEY", '
    '"CONTENT_HASH", "RESULT", "FUNCTION", "MODEL", "RUN_ID", "ENRICHED_AT", "ERROR") VALUES (c."KEY", '
    'c."CONTENT_HASH", c."RESULT", %(function)s, %(model_column)s, %(run_id)s, CURRENT_TIMESTAMP(), '
    'c."ERROR")'
)
TABLES = utils.EnrichmentTables.of("calls", "id", "transcript", "calls_sentiment")


def parse_snowflake(statement: utils.Statement) -> exp.Expr:
    """Parse a statement as Snowflake SQL, its pyformat placeholders as named binds; check them."""
    names = re.findall(r"%\((\w+)\)s", statement.sql)
    assert set(names) == set(statement.params), "every placeholder is bound and every bind is used"
    assert "%" not in re.sub(r"%\(\w+\)s", "", statement.sql), "a stray % would break pyformat binding"
    return sqlglot.parse_one(re.sub(r"%\((\w+)\)s", r":\1", statement.sql), read="snowflake")


@pytest.mark.parametrize(("function", "options", "call"), GOLDEN_CALLS, ids=[row[0] for row in GOLDEN_CALLS])
def test_golden_merge_for_every_function(function: str, options: dict[str, Any] | None, call: str) -> None:
    statement = utils.merge_sql(TABLES, build_request(function, options), run_id="run-1", max_rows=50)
    assert statement.sql == GOLDEN_MERGE.format(call=call)
    assert isinstance(parse_snowflake(statement), exp.Merge)


@pytest.mark.parametrize(("function", "options", "call"), GOLDEN_CALLS, ids=[row[0] for row in GOLDEN_CALLS])
def test_golden_batch_select_for_every_function(
    function: str, options: dict[str, Any] | None, call: str
) -> None:
    statement = utils.batch_sql(build_request(function, options), ["first", HOSTILE_TEXT])
    expected_call = call.replace('c."TEXT"', 'b."TXT"')
    assert statement.sql == (
        f'SELECT b."IDX", {expected_call} AS "RESULT" FROM (VALUES (0, %(text_0)s), (1, %(text_1)s)) '
        'AS b ("IDX", "TXT") ORDER BY b."IDX"'
    )
    assert statement.params["text_1"] == HOSTILE_TEXT
    assert HOSTILE_TEXT not in statement.sql
    assert isinstance(parse_snowflake(statement), exp.Select)


def test_golden_bind_values_and_other_statements() -> None:
    request = build_request("complete", {"model": "mistral-7b", "instruction": "Reply:", "max_tokens": 100})
    merge = utils.merge_sql(TABLES, request, run_id="run-1")
    assert "LIMIT" not in merge.sql
    assert merge.params["model"] == "mistral-7b"
    assert merge.params["instruction"] == "Reply:\n\n"
    assert merge.params["max_tokens"] == 100
    assert merge.params["fingerprint"] == utils.request_fingerprint(request)
    stats = utils.pending_stats_sql(TABLES, request, retry_failed_rows=True)
    assert stats.sql.endswith(
        'OR p."ERROR" IS NOT NULL) AS "PENDING" FROM "CALLS" AS s LEFT JOIN "CALLS_SENTIMENT" '
        'AS p ON p."KEY" = CAST(s."ID" AS VARCHAR) WHERE s."TRANSCRIPT" IS NOT NULL'
    )
    create = utils.create_target_sql(TABLES, request)
    assert create.sql == (
        'CREATE TABLE IF NOT EXISTS "CALLS_SENTIMENT" ("KEY" VARCHAR NOT NULL, '
        '"CONTENT_HASH" VARCHAR NOT NULL, "RESULT" VARIANT, "FUNCTION" VARCHAR, "MODEL" VARCHAR, '
        '"RUN_ID" VARCHAR, "ENRICHED_AT" TIMESTAMP_NTZ, "ERROR" VARCHAR)'
    )
    errors = utils.run_errors_sql(TABLES, "run-1", 100)
    for statement in (stats, create, errors):
        parse_snowflake(statement)


def test_input_truncation_follows_documented_limits() -> None:
    assert utils.input_limit_chars(build_request("sentiment")) == 512 * 3
    assert (
        utils.input_limit_chars(build_request("embed_text_1024", {"model": "voyage-multilingual-2"}))
        == 96_000
    )
    assert utils.input_limit_chars(build_request("ai_complete", {"instruction": "abc"})) == 32_000 * 3 - 5
    assert utils.input_limit_chars(build_request("summarize"), override=10) == 10
    assert utils.truncate("abcdef", 4) == "abcd"


def test_content_hash_is_sha2_of_fingerprint_and_text() -> None:
    fingerprint = utils.request_fingerprint(build_request("sentiment"))
    assert utils.content_hash("é", fingerprint) == utils.content_hash("é", fingerprint)
    assert utils.content_hash("a", fingerprint) != utils.content_hash("b", fingerprint)
    assert fingerprint != utils.request_fingerprint(build_request("ai_translate", {"target_language": "de"}))


@pytest.mark.parametrize(
    ("function", "options", "message"),
    [
        ("nope", None, "Unknown Cortex function"),
        ("sentiment", {"model": "x"}, "Unknown option"),
        ("ai_classify", {"categories": ["only"]}, "at least two"),
        ("embed_text_768", {"model": "snowflake-arctic-embed-l-v2.0"}, "768-dimension"),
        ("ai_complete", {"temperature": 2}, "temperature"),
        ("ai_filter", {"predicate": " "}, "predicate"),
        ("extract_answer", {}, "question"),
    ],
)
def test_invalid_requests_are_rejected(function: str, options: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_request(function, options)


@pytest.mark.parametrize(
    ("source", "key", "text", "target"),
    [
        ("calls; DROP TABLE x", "id", "t", "out"),
        ("calls", 'id"; --', "t", "out"),
        ("calls", "id", "t t", "out"),
        ("calls", "id", "t", "a.b.c.d"),
    ],
)
def test_invalid_identifiers_are_rejected_before_any_sql(
    source: str, key: str, text: str, target: str
) -> None:
    def connect() -> contextlib.AbstractContextManager[Any]:
        raise AssertionError("no connection may be opened for invalid identifiers")

    with pytest.raises(InvalidIdentifierError):
        CortexService(connect).enrich_table(
            build_request("sentiment"),
            source_table=source,
            key_column=key,
            text_column=text,
            target_table=target,
        )


class _Fault(Exception):
    def __init__(self, errno: int | None = None, sqlstate: str | None = None) -> None:
        super().__init__(f"fault {errno} {sqlstate}")
        self.errno = errno
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_Fault(608, "57P03"), handlers.ErrorKind.TRANSIENT),
        (_Fault(630, "57014"), handlers.ErrorKind.TRANSIENT),
        (_Fault(None, "08001"), handlers.ErrorKind.TRANSIENT),
        (TimeoutError("pool"), handlers.ErrorKind.TRANSIENT),
        (ConnectionResetError(), handlers.ErrorKind.TRANSIENT),
        (_Fault(1003, "42000"), handlers.ErrorKind.PERMANENT),
        (_Fault(2140, "42601"), handlers.ErrorKind.PERMANENT),
        (_Fault(3001, "42501"), handlers.ErrorKind.PERMANENT),
        (_Fault(2003, "02000"), handlers.ErrorKind.PERMANENT),
        (ValueError("bug"), handlers.ErrorKind.PERMANENT),
    ],
)
def test_error_classification(error: BaseException, kind: handlers.ErrorKind) -> None:
    assert handlers.classify_error(error) is kind


def test_retry_is_bounded_and_permanent_errors_are_not_retried() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.0)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _Fault(608, "57P03")
        return "ok"

    assert handlers.run_with_retry(flaky, policy, what="test", sleep=lambda _: None) == ("ok", 3)

    def down() -> None:
        raise _Fault(630, "57014")

    with pytest.raises(CortexTransientError) as raised:
        handlers.run_with_retry(down, policy, what="test", sleep=lambda _: None)
    assert raised.value.attempts == 3

    calls.clear()

    def broken() -> None:
        calls.append(1)
        raise _Fault(2140, "42601")

    with pytest.raises(CortexPermanentError):
        handlers.run_with_retry(broken, policy, what="test", sleep=lambda _: None)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("function", "options", "raw", "value"),
    [
        ("sentiment", None, 0.25, 0.25),
        ("ai_sentiment", None, '{"categories": [{"name": "overall", "sentiment": "mixed"}]}', "mixed"),
        ("ai_classify", {"categories": ["a", "b"]}, '{"labels": ["b"]}', ["b"]),
        ("classify_text", {"categories": ["a", "b"]}, '{"label": "a"}', "a"),
        ("ai_filter", {"predicate": "p"}, True, True),
        ("summarize", None, "short", "short"),
        (
            "extract_answer",
            {"question": "q"},
            '[{"answer": "x", "score": 0.2}, {"answer": "y", "score": 0.9}]',
            "y",
        ),
        ("ai_extract", {"question": "q"}, '{"error": null, "response": {"answer": "z"}}', "z"),
        ("embed_text_768", {"model": "e5-base-v2"}, "[" + ", ".join(["0.5"] * 768) + "]", [0.5] * 768),
    ],
)
def test_results_are_parsed_per_function(
    function: str, options: dict[str, Any] | None, raw: Any, value: Any
) -> None:
    assert handlers.parse_result(build_request(function, options), raw).value == value


def test_complete_result_carries_usage() -> None:
    usage = '{"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}'
    raw = '{"choices": [{"messages": "hi"}], "usage": ' + usage + "}"
    parsed = handlers.parse_result(build_request("complete"), raw)
    assert parsed.value == "hi"
    assert parsed.usage is not None
    assert parsed.usage.total_tokens == 4


@pytest.mark.parametrize(
    ("function", "raw"),
    [
        ("ai_embed", None),
        ("ai_embed", "[0.1, 0.2]"),
        ("embed_text_1024", '["a"]'),
        ("sentiment", 3.0),
        ("complete", '{"choices": []}'),
        ("ai_sentiment", '{"categories": []}'),
    ],
)
def test_malformed_results_are_errors_never_fallbacks(function: str, raw: Any) -> None:
    with pytest.raises(CortexResultError):
        handlers.parse_result(build_request(function), raw)


@pytest.fixture
def emulated_connection(fakesnow_patched: None) -> Iterator[Any]:
    """A fakesnow (patch mode) connection with the Cortex emulation installed."""
    import snowflake.connector

    from airflow_provider_sophia.local import cortex_emulation

    with snowflake.connector.connect(database="SOPHIA", schema="PUBLIC") as connection:
        cortex_emulation.install(connection)
        yield connection


@pytest.mark.filterwarnings("ignore::UserWarning:fakesnow.*")
def test_hostile_text_and_key_are_stored_verbatim_never_executed(emulated_connection: Any) -> None:
    cursor = emulated_connection.cursor()
    cursor.execute("CREATE TABLE x (id INT)")
    cursor.execute("CREATE TABLE calls (id VARCHAR, transcript VARCHAR)")
    cursor.execute(
        "INSERT INTO calls VALUES (%s, %s), (%s, %s)", (HOSTILE_KEY, HOSTILE_TEXT, "k2", "Fine call.")
    )
    service = CortexService(
        lambda: contextlib.nullcontext(emulated_connection), ServiceConfig(on_error=ErrorMode.FAIL)
    )
    request = build_request("ai_translate", {"target_language": "de"})

    summary = service.enrich_table(
        request, source_table="calls", key_column="id", text_column="transcript", target_table="calls_de"
    )
    results = service.enrich_texts(request, {HOSTILE_KEY: HOSTILE_TEXT})

    assert summary.rows_enriched == 2
    rows = dict(cursor.execute('SELECT "KEY", "RESULT" FROM "CALLS_DE"').fetchall())
    assert rows[HOSTILE_KEY] == f"[auto->de] {HOSTILE_TEXT}"
    assert results[0].key == HOSTILE_KEY
    assert results[0].value == f"[auto->de] {HOSTILE_TEXT}"
    assert cursor.execute("SELECT COUNT(*) FROM x").fetchone() == (0,)
