"""ChunkedSqlToSnowflakeOperator: stream any DB-API source into Snowflake with bounded memory.

Scale-out (one big table, N workers): map the operator over part numbers, then load once::

    parts = ChunkedSqlToSnowflakeOperator.partial(
        task_id="stage_orders", source_conn_id="app_db", source_table="orders",
        target_table="ORDERS", mode="merge", merge_keys=["id"],
        partition_column="id", partitions=4,
    ).expand(partition_index=[0, 1, 2, 3])
    load = ChunkedSqlToSnowflakeOperator(
        task_id="load_orders", source_conn_id="app_db", target_table="ORDERS",
        mode="merge", merge_keys=["id"], staged_parts=parts.output,
    )

Each mapped task stages its key range (``partition_column`` split into ``partitions``
ranges); the last task COPYs every staged file once and applies the plan in one transaction.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator

from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.identifiers import split_identifier
from airflow_provider_sophia.ingest.pipeline import Loader, load_parts, run_load, stage_part
from airflow_provider_sophia.ingest.plans import LoadPlan
from airflow_provider_sophia.ingest.readers import ChunkReader, SourceQuery, connect_adbc_postgres, reader_for
from airflow_provider_sophia.operators._staging import staged_loader
from airflow_provider_sophia.settings import setting

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import Context


class ChunkedSqlToSnowflakeOperator(BaseOperator):
    """Copy a SQL query or table into a Snowflake table in chunks, through staged parquet files.

    :param source_conn_id: an Airflow connection whose hook is a ``DbApiHook`` (postgres, mysql,
        sqlite, ...). PostgreSQL is read through ADBC when ``adbc-driver-postgresql`` is installed.
    :param sql: the SELECT to copy (exclusive with ``source_table``). Templated.
    :param source_table: the table to copy (exclusive with ``sql``). Templated.
    :param snowflake_conn_id: the Snowflake connection (connections come from its pool).
    :param target_table: the Snowflake table, optionally ``db.schema.table``. Templated.
    :param chunk_size: rows per chunk; ``[sophia] ingest_chunk_size`` (5000) when ``None``.
    :param batch_size: rows per source round trip; ``[sophia] ingest_batch_size`` (1000) when ``None``.
    :param mode: ``append``, ``replace`` or ``merge``.
    :param merge_keys: columns a merge matches on.
    :param incremental_column: column limiting the read to a window (the run's data interval
        unless ``window_start``/``window_end`` are given).
    :param create_table: create the target when missing.
    :param window_start: start of the incremental window (inclusive). Templated.
    :param window_end: end of the incremental window (exclusive). Templated.
    :param file_size_mb: staged file roll size; ``[sophia] ingest_file_size_mb`` when ``None``.
    :param upload_parallelism: uploads at once; ``[sophia] ingest_upload_parallelism`` when ``None``.
    :param load_id: stable id of the load (same on retries); derived from dag, task and run when ``None``.
    :param partition_column: scale-out: integer key splitting ``source_table`` into ranges.
    :param partitions: scale-out: number of ranges.
    :param partition_index: scale-out: the range this (mapped) task stages; it returns a
        staged-part dict instead of loading.
    :param staged_parts: scale-out final step: the staged-part dicts of every range (e.g.
        ``parts.output``); the files are loaded and the plan applied once.
    :param progress_every: log progress every this many chunks.
    """

    template_fields: Sequence[str] = (
        "sql",
        "source_table",
        "target_table",
        "window_start",
        "window_end",
        "load_id",
    )
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#e0f2fe"

    def __init__(
        self,
        *,
        source_conn_id: str,
        sql: str | None = None,
        source_table: str | None = None,
        snowflake_conn_id: str = "snowflake_default",
        target_table: str,
        chunk_size: int | None = None,
        batch_size: int | None = None,
        mode: str = "append",
        merge_keys: Sequence[str] | None = None,
        incremental_column: str | None = None,
        create_table: bool = True,
        window_start: Any = None,
        window_end: Any = None,
        file_size_mb: float | None = None,
        upload_parallelism: int | None = None,
        load_id: str | None = None,
        partition_column: str | None = None,
        partitions: int | None = None,
        partition_index: int | None = None,
        staged_parts: Sequence[dict[str, Any]] | None = None,
        progress_every: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.sql = sql
        self.source_table = source_table
        self.snowflake_conn_id = snowflake_conn_id
        self.target_table = target_table
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.mode = mode
        self.merge_keys = merge_keys
        self.incremental_column = incremental_column
        self.create_table = create_table
        self.window_start = window_start
        self.window_end = window_end
        self.file_size_mb = file_size_mb
        self.upload_parallelism = upload_parallelism
        self.load_id = load_id
        self.partition_column = partition_column
        self.partitions = partitions
        self.partition_index = partition_index
        self.staged_parts = staged_parts
        self.progress_every = progress_every
        self._loader: Loader | None = None
        self._reader: ChunkReader | None = None

    @cached_property
    def source_hook(self) -> DbApiHook:
        """The source connection's hook (must be a ``DbApiHook``)."""
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = BaseHook.get_connection(self.source_conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise TypeError(
                f"Connection {self.source_conn_id!r} has hook {type(hook).__name__}, not a DbApiHook; "
                "use a SQL database connection (postgres, mysql, sqlite, ...)."
            )
        return hook

    @cached_property
    def snowflake_hook(self) -> SnowflakePoolHook:
        """The pooled Snowflake hook."""
        return SnowflakePoolHook(snowflake_conn_id=self.snowflake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the load (or stage one part, or load staged parts) and return its summary."""
        plan = LoadPlan(
            target=self.target_table,
            mode=self.mode,
            merge_keys=tuple(self.merge_keys or ()),
            incremental_column=self.incremental_column,
            window=self._window(context),
            create_table=self.create_table,
        )
        query = SourceQuery(
            sql=self.sql,
            table=self.source_table,
            incremental_column=plan.incremental_column,
            window=plan.window,
        )
        parts = list(self.staged_parts or [])
        load_id = self._load_id(context, parts)
        with staged_loader(
            self.snowflake_hook,
            plan,
            load_id,
            file_size_mb=self.file_size_mb,
            upload_parallelism=self.upload_parallelism,
            progress_every=self.progress_every,
        ) as self._loader:
            if self.staged_parts is not None:
                result = load_parts(self._loader, parts).to_dict()
            else:
                with self._open_reader() as reader:
                    if self.partition_index is None:
                        result = run_load(self._loader, reader, query).to_dict()
                    else:
                        result = self._stage_part(reader, query)
        self.log.info("Load %s into %s finished: %s", load_id, self.target_table, result)
        return result

    def on_kill(self) -> None:
        """Cancel the source read and stop staging; the target stays untouched."""
        if self._reader is not None:
            self._reader.cancel()
        if self._loader is not None:
            self._loader.cancel()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Report the source table (when given) and the Snowflake target as lineage datasets."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        source = self.source_hook.get_connection(self.source_conn_id)
        inputs = []
        if self.source_table:
            namespace = f"{self.source_hook.dialect_name}://{source.host or 'localhost'}:{source.port or ''}"
            name = ".".join(filter(None, [source.schema, self.source_table]))
            inputs.append(Dataset(namespace=namespace, name=name))
        target = self.snowflake_hook.get_connection(self.snowflake_conn_id)
        extra = target.extra_dejson
        parts = split_identifier(self.target_table)
        qualified = [extra.get("database") or "", target.schema or extra.get("schema") or ""][
            : 3 - len(parts)
        ]
        output = Dataset(
            namespace=f"snowflake://{extra.get('account') or target.host}",
            name=".".join(filter(None, [*qualified, *parts])),
        )
        return OperatorLineage(inputs=inputs, outputs=[output])

    def _stage_part(self, reader: ChunkReader, query: SourceQuery) -> dict[str, Any]:
        if not self.partition_column or not self.partitions:
            raise ValueError("partition_index needs partition_column and partitions.")
        assert self._loader is not None
        part = stage_part(
            self._loader, reader, query, self.partition_column, self.partition_index or 0, self.partitions
        )
        return part.to_dict()

    def _window(self, context: Context) -> tuple[Any, Any] | None:
        if not self.incremental_column:
            return None
        start = self.window_start or context.get("data_interval_start")
        end = self.window_end or context.get("data_interval_end")
        if start is None or end is None:
            self.log.info("No window for %s (no data interval): reading every row.", self.incremental_column)
            return None
        return start, end

    def _load_id(self, context: Context, parts: list[dict[str, Any]]) -> str:
        if self.load_id:
            return self.load_id
        if parts:
            ids = {str(part.get("load_id")) for part in parts}
            if len(ids) != 1:
                raise ValueError(
                    f"staged_parts come from different loads {sorted(ids)}; stage them in one run."
                )
            return ids.pop()
        ti = context["ti"]
        load_id = f"{ti.dag_id}.{ti.task_id}.{context['run_id']}"
        return load_id if self.partition_index is not None else f"{load_id}.{ti.map_index}"

    @contextlib.contextmanager
    def _open_reader(self) -> Iterator[ChunkReader]:
        hook = self.source_hook
        dialect = str(hook.dialect_name or "")
        chunk_size = setting("ingest_chunk_size", self.chunk_size)
        batch_size = setting("ingest_batch_size", self.batch_size)
        connection: Any = None
        if dialect.startswith("postgres"):
            with contextlib.suppress(ImportError):
                connection = connect_adbc_postgres(_libpq_uri(hook.get_uri()))
        if connection is None:
            connection = hook.get_conn()
        try:
            self._reader = reader_for(connection, dialect, chunk_size=chunk_size, batch_size=batch_size)
            yield self._reader
        finally:
            self._reader = None
            with contextlib.suppress(Exception):
                connection.close()


def _libpq_uri(uri: str) -> str:
    """Turn a SQLAlchemy URI (``postgresql+psycopg://...``) into a libpq one."""
    return re.sub(r"^postgres\w*(\+\w+)?://", "postgresql://", uri)
