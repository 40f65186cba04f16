"""SQL builders, input truncation and content hashing for the Cortex service.

Every identifier goes through :mod:`airflow_provider_sophia.identifiers` (validated, then
double-quoted); every value is a pyformat bind parameter (``%(name)s``) or a column reference,
never text pasted into SQL. The builders return :class:`Statement` objects whose SQL is the
same for Snowflake and for the local emulation.

The target table of a set-based run has one row per source key::

    KEY VARCHAR, CONTENT_HASH VARCHAR, RESULT <per function>, FUNCTION VARCHAR, MODEL VARCHAR,
    RUN_ID VARCHAR, ENRICHED_AT TIMESTAMP_NTZ, ERROR VARCHAR

``CONTENT_HASH`` is ``SHA2(fingerprint || text, 256)``: the fingerprint covers the function and
its options, so changing either re-enriches every row, and changing a row's text re-enriches
that row alone. Embeddings are stored as ``ARRAY`` (Snowflake casts VECTOR to ARRAY and back:
``RESULT::VECTOR(FLOAT, 1024)`` for ``VECTOR_COSINE_SIMILARITY``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sophia.cortex.models import (
    CHARS_PER_TOKEN,
    ClassifyRequest,
    CompleteRequest,
    CortexFunction,
    CortexRequest,
    EmbedRequest,
    ExtractRequest,
    FilterRequest,
    TranslateRequest,
)
from airflow_provider_sophia.identifiers import quote_column, quote_identifier

#: columns of the target table, in order.
TARGET_COLUMNS = ("KEY", "CONTENT_HASH", "RESULT", "FUNCTION", "MODEL", "RUN_ID", "ENRICHED_AT", "ERROR")
#: separator placed between an instruction or predicate and the row's text.
PROMPT_SEPARATOR = "\n\n"


@dataclass
class Statement:
    """One SQL statement and its pyformat bind parameters.

    :param sql: the SQL text with ``%(name)s`` placeholders.
    :param params: the values of the placeholders.
    """

    sql: str
    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, name: str, value: Any) -> str:
        """Add a bind parameter and return its placeholder.

        :param name: the parameter's name (letters, digits and ``_``), unique in the statement.
        :param value: the value the driver sends for it.
        """
        if name in self.params:
            raise ValueError(f"Bind parameter {name!r} is already used in this statement.")
        self.params[name] = value
        return f"%({name})s"


def request_fingerprint(request: CortexRequest) -> str:
    """Return the SHA-256 (hex) of the function and its options: what, besides the text, decides a result.

    :param request: the request.
    """
    fields = {"function": request.function.name, **request.options()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode("utf-8")).hexdigest()


def content_hash(text: str, fingerprint: str) -> str:
    """Return ``SHA2(fingerprint || text, 256)`` as Snowflake computes it (hex of the UTF-8 bytes).

    :param text: the row's full (untruncated) text.
    :param fingerprint: :func:`request_fingerprint` of the request.
    """
    return hashlib.sha256((fingerprint + text).encode("utf-8")).hexdigest()


def input_limit_chars(request: CortexRequest, override: int | None = None) -> int:
    """Return how many characters of a text the request may send.

    The function's documented token limit times :data:`CHARS_PER_TOKEN`, less the
    instruction or predicate that shares the input.

    :param request: the request.
    :param override: a character limit replacing the documented one.
    """
    limit = override if override is not None else request.input_tokens() * CHARS_PER_TOKEN
    prefix = ""
    if isinstance(request, CompleteRequest) and request.instruction:
        prefix = request.instruction + PROMPT_SEPARATOR
    elif isinstance(request, FilterRequest):
        prefix = request.predicate
    return max(1, limit - len(prefix))


def truncate(text: str, limit: int) -> str:
    """Return ``text`` cut to at most ``limit`` characters (what ``LEFT(text, limit)`` returns).

    :param text: the text.
    :param limit: the character limit (>= 1).
    """
    return text[:limit]


def _array(statement: Statement, name: str, values: Sequence[str]) -> str:
    placeholders = ", ".join(statement.bind(f"{name}_{index}", value) for index, value in enumerate(values))
    return f"ARRAY_CONSTRUCT({placeholders})"


def cortex_call(request: CortexRequest, text_sql: str, statement: Statement) -> str:
    """Return the SQL expression applying ``request`` to the text expression ``text_sql``.

    Options are added to ``statement`` as bind parameters.

    :param request: the request.
    :param text_sql: a column reference (never user text) holding the text.
    :param statement: the statement the expression goes into.
    """
    function = request.function
    name = function.spec.sql_name
    if isinstance(request, CompleteRequest):
        model = statement.bind("model", request.model_name)
        prompt = text_sql
        if request.instruction:
            instruction = statement.bind("instruction", request.instruction + PROMPT_SEPARATOR)
            prompt = f"CONCAT({instruction}, {text_sql})"
        parameters = (
            f"OBJECT_CONSTRUCT('temperature', {statement.bind('temperature', request.temperature)}, "
            f"'max_tokens', {statement.bind('max_tokens', request.max_tokens)})"
        )
        if function is CortexFunction.COMPLETE:
            prompt = f"ARRAY_CONSTRUCT(OBJECT_CONSTRUCT('role', 'user', 'content', {prompt}))"
        return f"{name}({model}, {prompt}, {parameters})"
    if isinstance(request, EmbedRequest):
        return f"{name}({statement.bind('model', request.model_name)}, {text_sql})::ARRAY"
    if isinstance(request, TranslateRequest):
        source = statement.bind("source_language", request.source_language)
        target = statement.bind("target_language", request.target_language)
        return f"{name}({text_sql}, {source}, {target})"
    if isinstance(request, ClassifyRequest):
        return f"{name}({text_sql}, {_array(statement, 'category', request.categories)})"
    if isinstance(request, FilterRequest):
        template = request.predicate
        if "{0}" not in template:
            template += PROMPT_SEPARATOR + "{0}"
        return f"{name}(PROMPT({statement.bind('predicate', template)}, {text_sql}))"
    if isinstance(request, ExtractRequest):
        question = statement.bind("question", request.question)
        if function is CortexFunction.AI_EXTRACT:
            return f"{name}({text_sql}, OBJECT_CONSTRUCT('answer', {question}))"
        return f"{name}({text_sql}, {question})"
    return f"{name}({text_sql})"


@dataclass(frozen=True)
class EnrichmentTables:
    """The validated, quoted identifiers of one set-based enrichment.

    :param source: the source table.
    :param key: the source's key column (unique per row).
    :param text: the source's text column.
    :param target: the target table.
    """

    source: str
    key: str
    text: str
    target: str

    @classmethod
    def of(cls, source_table: str, key_column: str, text_column: str, target_table: str) -> EnrichmentTables:
        """Validate and quote the identifiers.

        :raises InvalidIdentifierError: when any of them is not a valid identifier.
        """
        return cls(
            source=quote_identifier(source_table),
            key=quote_column(key_column),
            text=quote_column(text_column),
            target=quote_identifier(target_table),
        )


def create_target_sql(tables: EnrichmentTables, request: CortexRequest) -> Statement:
    """Return the ``CREATE TABLE IF NOT EXISTS`` of the target table.

    :param tables: the run's identifiers.
    :param request: the request (decides the ``RESULT`` type).
    """
    result_type = request.function.spec.result.sql_type
    return Statement(
        f"CREATE TABLE IF NOT EXISTS {tables.target} ("
        '"KEY" VARCHAR NOT NULL, "CONTENT_HASH" VARCHAR NOT NULL, '
        f'"RESULT" {result_type}, "FUNCTION" VARCHAR, "MODEL" VARCHAR, "RUN_ID" VARCHAR, '
        '"ENRICHED_AT" TIMESTAMP_NTZ, "ERROR" VARCHAR)'
    )


def _pending_rows(
    tables: EnrichmentTables, statement: Statement, request: CortexRequest, *, retry_failed_rows: bool
) -> tuple[str, str, str]:
    """Return the source rows with text (``FROM ... WHERE``), the "new or changed" predicate and the hash."""
    fingerprint = statement.bind("fingerprint", request_fingerprint(request))
    new_hash = f"SHA2(CONCAT({fingerprint}, s.{tables.text}), 256)"
    pending = f'p."KEY" IS NULL OR p."CONTENT_HASH" <> {new_hash}'
    if retry_failed_rows:
        pending += ' OR p."ERROR" IS NOT NULL'
    source_rows = (
        f"FROM {tables.source} AS s LEFT JOIN {tables.target} AS p "
        f'ON p."KEY" = CAST(s.{tables.key} AS VARCHAR) WHERE s.{tables.text} IS NOT NULL'
    )
    return source_rows, pending, new_hash


def pending_stats_sql(
    tables: EnrichmentTables, request: CortexRequest, *, retry_failed_rows: bool
) -> Statement:
    """Return the count of source rows with text (``TOTAL``) and of those new or changed (``PENDING``).

    :param tables: the run's identifiers.
    :param request: the request (its fingerprint is part of the content hash).
    :param retry_failed_rows: whether rows that failed before count as pending.
    """
    statement = Statement("")
    source_rows, pending, _ = _pending_rows(tables, statement, request, retry_failed_rows=retry_failed_rows)
    statement.sql = f'SELECT COUNT(*) AS "TOTAL", COUNT_IF({pending}) AS "PENDING" {source_rows}'
    return statement


def merge_sql(
    tables: EnrichmentTables,
    request: CortexRequest,
    *,
    run_id: str,
    max_rows: int | None = None,
    max_input_chars: int | None = None,
    retry_failed_rows: bool = False,
) -> Statement:
    """Return the one ``MERGE`` that enriches every new or changed row inside Snowflake.

    The innermost query picks the pending rows (at most ``max_rows``, by key); only those
    reach the Cortex function. A row whose result is NULL (an AI function could not process
    it) gets an ``ERROR`` naming the function.

    :param tables: the run's identifiers.
    :param request: the request.
    :param run_id: identifies this run's rows in ``RUN_ID``.
    :param max_rows: most rows sent to Cortex in this run; ``None`` for all pending rows.
    :param max_input_chars: character limit replacing the function's documented one.
    :param retry_failed_rows: whether rows that failed before are sent again.
    """
    statement = Statement("")
    source_rows, pending, new_hash = _pending_rows(
        tables, statement, request, retry_failed_rows=retry_failed_rows
    )
    max_chars = statement.bind("max_chars", input_limit_chars(request, max_input_chars))
    limit = ""
    if max_rows is not None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be a positive number of rows or None, got {max_rows!r}.")
        limit = f" ORDER BY 1 LIMIT {statement.bind('max_rows', max_rows)}"
    call = cortex_call(request, 'c."TEXT"', statement)
    null_error = statement.bind(
        "null_error",
        f"{request.function.spec.sql_name} returned NULL: Snowflake could not process this row's text.",
    )
    function = statement.bind("function", request.function.name)
    model = statement.bind("model_column", request.model)
    run = statement.bind("run_id", run_id)
    columns = ", ".join(f'"{column}"' for column in TARGET_COLUMNS)
    statement.sql = (
        f"MERGE INTO {tables.target} AS t USING ("  # noqa: S608 - identifiers quoted, values bound
        'SELECT r."KEY", r."CONTENT_HASH", r."RESULT", '
        f'IFF(r."RESULT" IS NULL, {null_error}, NULL) AS "ERROR" '
        f'FROM (SELECT c."KEY", c."CONTENT_HASH", {call} AS "RESULT" '
        f'FROM (SELECT CAST(s.{tables.key} AS VARCHAR) AS "KEY", {new_hash} AS "CONTENT_HASH", '
        f'LEFT(s.{tables.text}, {max_chars}) AS "TEXT" {source_rows} AND ({pending}){limit}) AS c) AS r'
        ') AS c ON t."KEY" = c."KEY" '
        'WHEN MATCHED THEN UPDATE SET "CONTENT_HASH" = c."CONTENT_HASH", "RESULT" = c."RESULT", '
        f'"FUNCTION" = {function}, "MODEL" = {model}, "RUN_ID" = {run}, '
        '"ENRICHED_AT" = CURRENT_TIMESTAMP(), "ERROR" = c."ERROR" '
        f"WHEN NOT MATCHED THEN INSERT ({columns}) "
        f'VALUES (c."KEY", c."CONTENT_HASH", c."RESULT", {function}, {model}, {run}, '
        'CURRENT_TIMESTAMP(), c."ERROR")'
    )
    return statement


def run_errors_sql(tables: EnrichmentTables, run_id: str, limit: int) -> Statement:
    """Return the rows of run ``run_id`` that failed (``KEY``, ``ERROR``) and their count (``FAILED``).

    :param tables: the run's identifiers.
    :param run_id: the run.
    :param limit: most failed rows listed.
    """
    statement = Statement("")
    run = statement.bind("run_id", run_id)
    rows = statement.bind("limit", limit)
    statement.sql = (
        f'SELECT "KEY", "ERROR", COUNT(*) OVER () AS "FAILED" FROM {tables.target} '  # noqa: S608 - quoted
        f'WHERE "RUN_ID" = {run} AND "ERROR" IS NOT NULL ORDER BY "KEY" LIMIT {rows}'
    )
    return statement


def batch_sql(request: CortexRequest, texts: Sequence[str]) -> Statement:
    """Return one ``SELECT`` applying ``request`` to ``texts`` (bind parameters), ordered by index.

    The texts should already be cut with :func:`truncate`; the result has ``IDX`` and ``RESULT``.

    :param request: the request.
    :param texts: at least one text.
    """
    if not texts:
        raise ValueError("batch_sql needs at least one text.")
    statement = Statement("")
    rows = ", ".join(
        f"({index}, {statement.bind(f'text_{index}', text)})" for index, text in enumerate(texts)
    )
    call = cortex_call(request, 'b."TXT"', statement)
    statement.sql = (
        f'SELECT b."IDX", {call} AS "RESULT" '  # noqa: S608 - texts are bind parameters
        f'FROM (VALUES {rows}) AS b ("IDX", "TXT") ORDER BY b."IDX"'
    )
    return statement
