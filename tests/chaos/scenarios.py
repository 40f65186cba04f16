"""Chaos scenarios shared by ``tests/chaos`` and ``bench/chaos_report.py``.

Each scenario runs once per seed against real local parts (the Gong simulator on loopback,
a fakesnow warehouse process of its own, the PostgreSQL service) and returns a
:class:`Outcome`: faults injected, typed errors surfaced to the user, records lost or
duplicated, and the time the run took to recover and finish.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pyarrow as pa
from snowflake.connector.errors import Error as SnowflakeError

from airflow_provider_sophia._pool_support import close_quietly
from airflow_provider_sophia.exceptions import GongError, IngestError, SophiaError
from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.gong.simulator import Fault, GongSimulator, Settings
from airflow_provider_sophia.hooks.snowflake_pool import is_session_lost, rollback_open_transaction
from airflow_provider_sophia.ingest import (
    ChunkReader,
    Loader,
    LoadPlan,
    LoadSummary,
    PostgresCursorReader,
    SourceQuery,
    SqliteReader,
    run_load,
)
from airflow_provider_sophia.local import warehouse
from airflow_provider_sophia.local.processes import ManagedService
from airflow_provider_sophia.pool import ConnectionPool, PoolConfig
from tests.conftest import REPO, EmbeddedWarehouse, unique_name
from tests.integration.ingest_support import make_loader, scalar, staging_leftovers
from tests.integration.test_ingest_postgres import KILLED_LOAD

#: calls each Gong run fetches (pages of PAGE_SIZE).
CALLS, PAGE_SIZE = 300, 20


@dataclass
class Outcome:
    """What one run of a scenario did.

    :param faults: faults the fault injector applied.
    :param surfaced: typed errors raised to the caller (expected ones included).
    :param lost: records or rows missing from the result.
    :param duplicated: records or rows delivered more than once.
    :param seconds: time from start until the data was complete (or the error surfaced).
    :param error: the surfaced error's type and message, if any.
    """

    faults: int = 0
    surfaced: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


def _client(sim: GongSimulator) -> GongClient:
    return GongClient(
        sim.url,
        sim.access_key,
        sim.access_key_secret,
        max_attempts=8,
        base_delay=0.01,
        max_delay=0.05,
        rate_limit_per_second=None,
        timeout=2.0,
        max_retry_after=5.0,
        breaker_fail_max=100,
    )


def gong_run(faults: list[Fault], seed: int, *, expect_error: type[SophiaError] | None = None) -> Outcome:
    """Fetch every call through ``faults``; count what was lost, duplicated and surfaced.

    :param faults: faults injected into the simulator.
    :param seed: seed of the data and of the fault draws.
    :param expect_error: the typed error this scenario must surface (then nothing is compared).
    """
    settings = Settings(rate_limit=None)
    with GongSimulator(seed=seed, users=5, calls=CALLS, page_size=PAGE_SIZE, settings=settings) as sim:
        for fault in faults:
            sim.add_fault(fault)
        expected = [record["id"] for record in sim.data.select("calls")]
        outcome = Outcome()
        started = time.monotonic()
        seen: list[str] = []
        try:
            with _client(sim) as client:
                seen = [record["id"] for record in client.iter_calls()]
        except SophiaError as error:
            outcome.surfaced = 1
            outcome.error = f"{type(error).__name__}: {error}"
            if expect_error is None or not isinstance(error, expect_error):
                raise
        outcome.seconds = round(time.monotonic() - started, 3)
        outcome.faults = sum(entry["fault"] is not None for entry in sim.requests())
    if expect_error is None:
        counts = Counter(seen)
        outcome.lost = len(set(expected) - set(counts))
        outcome.duplicated = sum(count - 1 for count in counts.values())
    elif outcome.surfaced == 0:
        raise AssertionError(f"expected {expect_error.__name__}, but the run completed")
    return outcome


@dataclass(frozen=True)
class Services:
    """Services a scenario uses but does not start itself.

    :param postgres_dsn: DSN of the PostgreSQL ``test`` database; ``None`` when not provided.
    """

    postgres_dsn: str | None = None

    def postgres(self) -> str:
        """Return the PostgreSQL DSN, or raise when the scenario was run without one."""
        if self.postgres_dsn is None:
            raise RuntimeError("This scenario needs PostgreSQL: pass Services(postgres_dsn=...).")
        return self.postgres_dsn


@dataclass(frozen=True)
class Scenario:
    """One chaos scenario.

    :param run: runs it once: ``run(seed, services) -> Outcome``.
    :param surfaces: a regex every surfaced error matches; ``None`` when no error may surface.
    :param needs_postgres: whether it needs :attr:`Services.postgres_dsn`.
    """

    run: Callable[[int, Services], Outcome]
    surfaces: str | None = None
    needs_postgres: bool = False


def _gong(faults: Callable[[], list[Fault]], surfaces: str | None = None, **kwargs: Any) -> Scenario:
    return Scenario(lambda seed, _: gong_run(faults(), seed, **kwargs), surfaces)


# --- warehouse and PostgreSQL scenarios ---------------------------------------------------

#: rows of every source table; rows per chunk read.
ROWS, CHUNK = 24_000, 1_000
#: rows staged by the killed task process when it is SIGKILLed (its progress lines).
KILL_POINTS = (6_000, 12_000, 18_000)
R = TypeVar("R", bound=ChunkReader)


@contextlib.contextmanager
def own_warehouse() -> Iterator[tuple[ManagedService, EmbeddedWarehouse]]:
    """Start a fakesnow server process with its data in a temporary directory; stop it after."""
    with tempfile.TemporaryDirectory(prefix="sophia-chaos-wh-") as tmp:
        service = warehouse.service(Path(tmp))
        state, _ = service.start()
        try:
            yield service, EmbeddedWarehouse(state.port, Path(tmp))
        finally:
            service.stop()


def restart(service: ManagedService, wh: EmbeddedWarehouse) -> None:
    """Stop the warehouse process and start it again on the same port (data kept, sessions lost)."""
    service.stop()
    service.start(port=wh.port)


@contextlib.contextmanager
def postgres_table(dsn: str, seed: int) -> Iterator[str]:
    """Create a PostgreSQL table of :data:`ROWS` rows (IDs 1..ROWS, values from ``seed``); drop it after."""
    table = unique_name("chaos_src").lower()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{table}" (id bigint PRIMARY KEY, name text, amount numeric(12, 2), '
            "updated_at timestamptz)"
        )
        conn.execute(
            f'INSERT INTO "{table}" SELECT g, md5((g * %s)::text), (g * %s %% 100000) / 100.0, '
            "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' FROM generate_series(1, %s) g",
            (seed, seed, ROWS),
        )
    try:
        yield table
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def sqlite_source(seed: int) -> sqlite3.Connection:
    """Return an in-memory SQLite database whose table ``src`` has :data:`ROWS` rows (IDs 1..ROWS)."""
    rng = random.Random(seed)
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE TABLE src (id INTEGER PRIMARY KEY, name TEXT, amount REAL)")
    conn.executemany(
        "INSERT INTO src VALUES (?, ?, ?)",
        ((i, f"row-{rng.getrandbits(64):016x}", rng.random() * 1000) for i in range(1, ROWS + 1)),
    )
    return conn


def interrupted(reader: R, after: int, fault: Callable[[], object]) -> R:
    """Make ``fault()`` happen once ``reader`` has yielded ``after`` chunks."""
    chunks = reader.chunks

    def faulty() -> Iterator[pa.RecordBatch]:
        for index, batch in enumerate(chunks()):
            if index == after:
                fault()
            yield batch

    reader.chunks = faulty  # type: ignore[method-assign]
    return reader


def surfaced(call: Callable[[], object]) -> str:
    """Run ``call``, which must fail with :class:`IngestError`; return the error as ``Type: message``."""
    try:
        call()
    except IngestError as error:
        return f"{type(error).__name__}: {error}"
    raise AssertionError("the load completed although its fault was injected")


def row_count(conn: Any, table: str) -> int:
    """Return the rows of ``table``, 0 when it does not exist."""
    if not conn.cursor().execute(f"SHOW TABLES LIKE '{table}'").fetchall():
        return 0
    return int(scalar(conn, f'SELECT COUNT(*) FROM "{table}"'))


def tally(conn: Any, table: str, rows: int) -> tuple[int, int]:
    """Return (IDs of 1..rows missing from ``table``, rows beyond one per ID)."""
    total, distinct, expected = (
        conn.cursor()
        .execute(
            f'SELECT COUNT(*), COUNT(DISTINCT "ID"), '
            f'COUNT(DISTINCT CASE WHEN "ID" BETWEEN 1 AND {int(rows)} THEN "ID" END) FROM "{table}"'
        )
        .fetchone()
    )
    return rows - expected, total - distinct


def retried(
    wh: EmbeddedWarehouse, target: str, attempt: Callable[[], str | None], retry: Callable[[Any], LoadSummary]
) -> Outcome:
    """Run the faulted ``attempt`` (returns the error it surfaced), then ``retry`` it; count the result.

    Between the two the target must be empty; after the retry it must hold every source row
    once, with no staging table left.
    """
    started = time.monotonic()
    error = attempt()
    outcome = Outcome(faults=1, surfaced=int(error is not None), error=error)
    with contextlib.closing(wh.connect()) as conn:
        if left := row_count(conn, target):
            raise AssertionError(f"the failed attempt left {left} rows in {target}")
        summary = retry(conn)
        outcome.seconds = round(time.monotonic() - started, 3)
        outcome.lost, outcome.duplicated = tally(conn, target, ROWS)
        leftovers = staging_leftovers(conn)
        if summary.rows != ROWS or summary.skipped or leftovers:
            raise AssertionError(f"retry: {summary}, staging tables left: {leftovers}")
    return outcome


def postgres_retry(
    dsn: str, table: str, wh: EmbeddedWarehouse, load_id: str, target: str
) -> Callable[[Any], LoadSummary]:
    """Return the retry of a PostgreSQL load: same load id, fresh source and warehouse sessions."""

    def retry(conn: Any) -> LoadSummary:
        with contextlib.closing(psycopg.connect(dsn)) as source:
            reader = PostgresCursorReader(source, chunk_size=CHUNK)
            return run_load(make_loader(wh, conn, load_id, target=target), reader, SourceQuery(table=table))

    return retry


def postgres_terminated(seed: int, services: Services) -> Outcome:
    """Kill the source backend (``pg_terminate_backend``) after a seeded number of chunks, then retry."""
    dsn = services.postgres()
    after = random.Random(seed).randrange(1, ROWS // CHUNK - 1)
    app = unique_name("chaos_victim").lower()
    target, load_id = unique_name("chaos_pg"), unique_name("chaos-pg-run")

    def terminate() -> None:
        with psycopg.connect(dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchall()
        if killed != [(True,)]:
            raise AssertionError(f"pg_terminate_backend ended {killed} backends, not one")

    with own_warehouse() as (_, wh), postgres_table(dsn, seed) as table:

        def attempt() -> str:
            with (
                contextlib.closing(psycopg.connect(dsn, application_name=app)) as source,
                contextlib.closing(wh.connect()) as conn,
            ):
                reader = interrupted(PostgresCursorReader(source, chunk_size=CHUNK), after, terminate)
                loader = make_loader(wh, conn, load_id, target=target)
                return surfaced(lambda: run_load(loader, reader, SourceQuery(table=table)))

        return retried(wh, target, attempt, postgres_retry(dsn, table, wh, load_id, target))


def restart_while_staging(seed: int, _: Services) -> Outcome:
    """Restart the warehouse after a seeded number of staged chunks, then retry the load."""
    after = random.Random(seed).randrange(1, ROWS // CHUNK - 1)
    target, load_id = unique_name("chaos_wh"), unique_name("chaos-wh-run")
    query = SourceQuery(table="src")
    with own_warehouse() as (service, wh), contextlib.closing(sqlite_source(seed)) as source:

        def load(conn: Any, reader: SqliteReader) -> LoadSummary:
            loader = Loader(conn, LoadPlan(target=target), load_id, file_size_mb=0.02, parallelism=1)
            return run_load(loader, reader, query)

        def attempt() -> str:
            conn = wh.connect()
            try:
                reader = interrupted(
                    SqliteReader(source, chunk_size=CHUNK), after, lambda: restart(service, wh)
                )
                return surfaced(lambda: load(conn, reader))
            finally:
                close_quietly(conn)

        return retried(wh, target, attempt, lambda conn: load(conn, SqliteReader(source, chunk_size=CHUNK)))


def task_sigkilled(seed: int, services: Services) -> Outcome:
    """SIGKILL a task process running a load at a seeded point of its staging, then retry the load."""
    dsn = services.postgres()
    kill_at = random.Random(seed).choice(KILL_POINTS)
    target, load_id = unique_name("chaos_kill"), unique_name("chaos-kill-run")
    with own_warehouse() as (_, wh), postgres_table(dsn, seed) as table:

        def attempt() -> None:
            args = [
                sys.executable,
                "-c",
                textwrap.dedent(KILLED_LOAD),
                str(wh.port),
                target,
                load_id,
                dsn,
                table,
            ]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            with subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO
            ) as process:
                assert process.stdout is not None
                output = []
                for line in process.stdout:
                    output.append(line)
                    if line.startswith("Part 0:") and int(line.split()[2]) >= kill_at:
                        break
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            if process.returncode != -signal.SIGKILL:
                raise AssertionError(
                    f"the task exited with {process.returncode} before the kill: {''.join(output)}"
                )

        return retried(wh, target, attempt, postgres_retry(dsn, table, wh, load_id, target))


def restart_under_pool(seed: int, _: Services) -> Outcome:
    """Restart the warehouse while a pool holds idle sessions and one checked out; keep inserting.

    The checked-out session's next statement fails with the driver's typed error (its insert is
    retried on a fresh acquisition); every later acquisition works, stale sessions evicted.
    """
    rng = random.Random(seed)
    size, before, after = rng.randint(2, 4), rng.randint(5, 20), rng.randint(10, 30)
    table = unique_name("chaos_pool")
    config = PoolConfig(min_size=size, max_size=size + 1, validate_on_checkout=True, acquire_timeout=30)
    with (
        own_warehouse() as (service, wh),
        ConnectionPool(
            wh.connect,
            config,
            name="chaos-restart",
            reset=rollback_open_transaction,
            is_disconnect=is_session_lost,
        ) as pool,
    ):

        def insert(row: int) -> None:
            with pool.connection() as conn:
                conn.cursor().execute(f'INSERT INTO "{table}" VALUES ({row})')

        with pool.connection() as conn:
            conn.cursor().execute(f'CREATE TABLE "{table}" ("ID" INT)')
        for row in range(1, before + 1):
            insert(row)
        pool.wait(30)
        outcome = Outcome(faults=1)
        started = time.monotonic()
        try:
            with pool.connection() as held:
                restart(service, wh)
                held.cursor().execute(f'INSERT INTO "{table}" VALUES ({before + 1})')
        except SnowflakeError as error:
            outcome.surfaced, outcome.error = 1, f"{type(error).__name__}: {error}"
        for row in range(before + 1 + (outcome.surfaced == 0), before + after + 1):
            insert(row)
        outcome.seconds = round(time.monotonic() - started, 3)
        if pool.stats().evicted_total < size:
            raise AssertionError(f"stale sessions were not all evicted: {pool.stats()}")
        with pool.connection() as conn:
            outcome.lost, outcome.duplicated = tally(conn, table, before + after)
    return outcome


#: scenario name -> scenario.
SCENARIOS: dict[str, Scenario] = {
    "gong: 5xx bursts": _gong(
        lambda: [Fault("status", status=503, rate=0.3), Fault("status", status=502, count=3)]
    ),
    "gong: 429 storm with Retry-After": _gong(
        lambda: [Fault("status", status=429, rate=0.4, retry_after=0.05)]
    ),
    "gong: dropped connections": _gong(lambda: [Fault("drop", rate=0.25)]),
    "gong: truncated bodies": _gong(lambda: [Fault("truncate", rate=0.25)]),
    "gong: one malformed JSON body": _gong(lambda: [Fault("malformed", count=1)]),
    "gong: latency spikes": _gong(lambda: [Fault("latency", latency=0.2, rate=0.2)]),
    "gong: repeating cursor": _gong(
        lambda: [Fault("repeat_cursor", count=1)], "a second time", expect_error=GongError
    ),
    "postgres: backend terminated mid-ingest, retried": Scenario(
        postgres_terminated,
        r"^IngestError: Reading the source failed after \d+ rows: .*terminat.*target was not changed",
        needs_postgres=True,
    ),
    "warehouse: restarted under a pool": Scenario(restart_under_pool, r"^HttpError: .*401 Unauthorized"),
    "warehouse: restarted while staging, retried": Scenario(
        restart_while_staging,
        # the next PUT's session is gone (401), or a PUT in flight during the restart reported so
        r"^IngestError: (Uploading a staged file to \S+ failed: .*401 Unauthorized"
        r"|PUT of \S+ to \S+ reported)",
    ),
    "task: SIGKILLed mid-load, retried": Scenario(task_sigkilled, needs_postgres=True),
}
#: seeds every scenario is repeated with.
SEEDS = (1, 2, 3)
