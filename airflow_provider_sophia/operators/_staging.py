"""The staged loader both loading operators build: settings resolved, uploads on pooled sessions."""

from __future__ import annotations

from typing import Any

from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.ingest.pipeline import Loader
from airflow_provider_sophia.ingest.plans import LoadPlan
from airflow_provider_sophia.settings import setting


def staged_loader(
    hook: SnowflakePoolHook,
    connection: Any,
    plan: LoadPlan,
    load_id: str,
    *,
    file_size_mb: float | None,
    upload_parallelism: int | None,
    progress_every: int = 20,
) -> Loader:
    """Return a :class:`Loader` on ``connection`` whose upload threads borrow from ``hook``'s pool.

    :param hook: the pooled Snowflake hook.
    :param connection: the pooled connection the plan runs on.
    :param plan: what the staged rows do to the target.
    :param load_id: the load's stable id (the same on retries).
    :param file_size_mb: staged file roll size; ``[sophia] ingest_file_size_mb`` when ``None``.
    :param upload_parallelism: uploads at once; ``[sophia] ingest_upload_parallelism`` when ``None``.
    :param progress_every: log progress every this many chunks.
    """
    return Loader(
        connection,
        plan,
        load_id,
        file_size_mb=setting("ingest_file_size_mb", file_size_mb),
        parallelism=setting("ingest_upload_parallelism", upload_parallelism),
        connect=hook.pooled_connection,
        progress_every=progress_every,
    )
