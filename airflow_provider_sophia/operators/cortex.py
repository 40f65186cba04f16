"""SnowflakeCortexOperator: enrich a table's text with a Snowflake Cortex function, set-based."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_provider_sophia.cortex.core import CortexService
from airflow_provider_sophia.cortex.models import ErrorMode, ServiceConfig, build_request
from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.resilience import RetryPolicy


class SnowflakeCortexOperator(BaseOperator):
    """Write a Cortex function's result for every new or changed row of a table into another.

    One ``MERGE`` runs inside Snowflake per task run; rows whose text (and the function's
    options) are unchanged since the last run are not sent to Cortex again. Returns a
    JSON-able summary: ``rows_enriched``, ``rows_skipped_unchanged``, ``rows_deferred``,
    ``rows_failed``, ``errors`` (key and message), ``statements``, ``attempts``, ``seconds``.

    :param snowflake_conn_id: the Snowflake connection.
    :param function: a Cortex function, e.g. ``"SENTIMENT"``, ``"AI_CLASSIFY"``,
        ``"SNOWFLAKE.CORTEX.SUMMARIZE"`` (see ``CortexFunction``).
    :param source_table: table holding the texts (``db.schema.table`` allowed).
    :param key_column: the source's unique key column.
    :param text_column: the source's text column.
    :param target_table: table receiving the results; created when missing.
    :param options: the function's options, e.g. ``{"model": "mistral-7b"}``,
        ``{"categories": ["billing", "bug"]}``, ``{"target_language": "de"}``,
        ``{"question": "..."}``, ``{"predicate": "..."}``.
    :param max_rows: most rows sent to Cortex per run (cost control); ``None`` for all.
    :param on_error: ``report`` records failed rows with their key and succeeds; ``fail``
        fails the task when any row failed.
    :param retry_failed_rows: send rows that failed before again although unchanged.
    :param max_attempts: attempts per statement on transient Snowflake errors.
    """

    template_fields: Sequence[str] = (
        "function",
        "source_table",
        "key_column",
        "text_column",
        "target_table",
        "options",
        "max_rows",
    )
    ui_color = "#29b5e8"

    def __init__(
        self,
        *,
        snowflake_conn_id: str = "snowflake_default",
        function: str,
        source_table: str,
        key_column: str,
        text_column: str,
        target_table: str,
        options: Mapping[str, Any] | None = None,
        max_rows: int | None = None,
        on_error: str = "report",
        retry_failed_rows: bool = False,
        max_attempts: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snowflake_conn_id = snowflake_conn_id
        self.function = function
        self.source_table = source_table
        self.key_column = key_column
        self.text_column = text_column
        self.target_table = target_table
        self.options = dict(options or {})
        self.max_rows = max_rows
        self.on_error = on_error
        self.retry_failed_rows = retry_failed_rows
        self.max_attempts = max_attempts

    @cached_property
    def hook(self) -> SnowflakePoolHook:
        """Return the pooled Snowflake hook of ``snowflake_conn_id``."""
        return SnowflakePoolHook(snowflake_conn_id=self.snowflake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the enrichment and return its summary."""
        request = build_request(self.function, self.options)
        config = ServiceConfig(
            on_error=ErrorMode(self.on_error),
            retry=RetryPolicy(max_attempts=self.max_attempts, max_delay=30.0),
            retry_failed_rows=self.retry_failed_rows,
        )
        self.log.info(
            "Enriching %s.%s (key %s) with %s into %s, max_rows=%s.",
            self.source_table,
            self.text_column,
            self.key_column,
            request.function.spec.sql_name,
            self.target_table,
            self.max_rows,
        )
        summary = CortexService(self.hook.pooled_connection, config).enrich_table(
            request,
            source_table=self.source_table,
            key_column=self.key_column,
            text_column=self.text_column,
            target_table=self.target_table,
            max_rows=self.max_rows,
        )
        return summary.as_dict()

    def on_kill(self) -> None:
        """Close this process's Snowflake pools so the running statement's session ends."""
        if "hook" in self.__dict__:
            self.log.info("Task killed: closing the Snowflake connection pools of this process.")
            SnowflakePoolHook.close_all_pools(timeout=0)
