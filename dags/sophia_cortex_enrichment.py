"""
### Cortex enrichment of Gong transcripts

Runs whenever `sophia_gong_ingest` updates `GONG_TRANSCRIPTS`. It flattens each call's
transcript into one text (the view `GONG_TRANSCRIPT_TEXT`) and enriches it with Snowflake
Cortex, one `MERGE` per function **inside Snowflake**:

* only transcripts that are new or whose text changed are sent to Cortex (content hash),
  so a rerun costs nothing;
* `max_rows` caps the rows sent per run and function (cost control); the rest follow in
  the next run;
* results land in `GONG_TRANSCRIPT_<FUNCTION>` (key, content hash, result, model, time, error).

On the embedded stack, Cortex is a documented **local emulation** (deterministic, not an
LLM); the SQL is the same that a real Snowflake account receives.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_sophia.operators.cortex import SnowflakeCortexOperator
from airflow_provider_sophia.operators.gong_to_snowflake import gong_asset

FUNCTIONS = ["sentiment", "summarize", "ai_sentiment", "ai_classify"]
TRANSCRIPT_TEXT_VIEW = """
CREATE OR REPLACE VIEW GONG_TRANSCRIPT_TEXT AS
SELECT t.ID AS CALL_ID,
       LISTAGG(s.value:text::VARCHAR, ' ') WITHIN GROUP (ORDER BY m.index, s.index) AS TRANSCRIPT_TEXT
FROM GONG_TRANSCRIPTS t,
     LATERAL FLATTEN(input => t.RECORD:transcript) m,
     LATERAL FLATTEN(input => m.value:sentences) s
GROUP BY t.ID
"""
CLASSIFY_CATEGORIES = ["pricing", "security", "renewal", "onboarding", "other"]


@dag(
    dag_id="sophia_cortex_enrichment",
    schedule=[gong_asset("transcripts")],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["sophia", "cortex", "snowflake"],
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
    },
    params={
        "functions": Param(
            ["sentiment", "summarize"],
            type="array",
            items={"type": "string", "enum": FUNCTIONS},
            minItems=1,
            uniqueItems=True,
            title="Cortex functions",
            description="Which Cortex functions to run over the transcripts; one task each.",
        ),
        "max_rows": Param(
            1000,
            type=["null", "integer"],
            minimum=1,
            maximum=1_000_000,
            title="Max rows per function",
            description="Most transcripts sent to Cortex per run and function (cost control). Empty: all.",
        ),
    },
)
def sophia_cortex_enrichment() -> None:
    @task
    def flatten_transcripts() -> str:
        """Create the one-text-per-call view the enrichment reads."""
        from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook

        SnowflakePoolHook(snowflake_conn_id="snowflake_default").run(TRANSCRIPT_TEXT_VIEW)
        return "GONG_TRANSCRIPT_TEXT"

    @task
    def plan_functions(params: dict[str, Any]) -> list[dict[str, Any]]:
        """One enrichment per function, each with its own target table."""
        return [
            {
                "function": function,
                "target_table": f"GONG_TRANSCRIPT_{function.upper()}",
                "options": {"categories": CLASSIFY_CATEGORIES} if function == "ai_classify" else None,
            }
            for function in params["functions"]
        ]

    view = flatten_transcripts()
    SnowflakeCortexOperator.partial(
        task_id="enrich",
        snowflake_conn_id="snowflake_default",
        source_table=view,
        key_column="CALL_ID",
        text_column="TRANSCRIPT_TEXT",
        max_rows="{{ params.max_rows }}",
        map_index_template="{{ task.function }}",
    ).expand_kwargs(plan_functions())


sophia_cortex_enrichment()
