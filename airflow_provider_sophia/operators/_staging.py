"""The staged loader both loading operators use: settings resolved, every session pooled."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.ingest.pipeline import Loader
from airflow_provider_sophia.ingest.plans import LoadPlan
from airflow_provider_sophia.settings import setting


@contextlib.contextmanager
def staged_loader(
    hook: SnowflakePoolHook,
    plan: LoadPlan,
    load_id: str,
    *,
    file_size_mb: float | None,
    upload_parallelism: int | None,
    progress_every: int = 20,
) -> Iterator[Loader]:
    """Yield a :class:`Loader` on a pooled connection whose upload threads borrow from the same pool.

    :param hook: the pooled Snowflake hook.
    :param plan: what the staged rows do to the target.
    :param load_id: the load's stable id (the same on retries).
    :param file_size_mb: staged file roll size; ``[sophia] ingest_file_size_mb`` when ``None``.
    :param upload_parallelism: uploads at once; ``[sophia] ingest_upload_parallelism`` when ``None``.
    :param progress_every: log progress every this many chunks.
    """
    with hook.pooled_connection() as connection:
        yield Loader(
            connection,
            plan,
            load_id,
            file_size_mb=setting("ingest_file_size_mb", file_size_mb),
            parallelism=setting("ingest_upload_parallelism", upload_parallelism),
            connect=hook.pooled_connection,
            progress_every=progress_every,
        )
