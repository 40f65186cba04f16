"""A real scheduler run: DAGs parsed by the dag-processor, triggered over REST, run by LocalExecutor.

Both ingest DAGs are triggered at once with a ``conf`` (as a user would from the UI's
trigger form), run to success on the real components, and the warehouse then holds what
the sources serve: the SQLite sample tables row for row, and the Gong calls of the window.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psutil
import pytest

from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.identifiers import quote_name
from airflow_provider_sophia.local import warehouse
from tests.e2e.conftest import EXAMPLE_DAGS, AirflowCluster

pytestmark = pytest.mark.e2e

CORE_DAG = "sophia_core_sql_ingest"
GONG_DAG = "sophia_gong_ingest"
CORE_CONF = {"tables": ["customers", "orders"], "chunk_size": 500, "full_refresh": True}
GONG_TABLES = ("GONG_USERS", "GONG_CALLS", "GONG_CALLS_EXTENSIVE", "GONG_TRANSCRIPTS")
#: Gong allows 3 requests a second: one pool slot per request in flight.
GONG_POOL = {"name": "gong_api", "slots": 3, "description": "Gong API calls (3 requests/s)."}
RUN_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def gong_client(airflow_cluster: AirflowCluster) -> Iterator[GongClient]:
    """A client of the stack's Gong simulator, built from the cluster's ``gong_default``."""
    connection = json.loads(airflow_cluster.env["AIRFLOW_CONN_GONG_DEFAULT"])
    with GongClient(connection["host"], connection["login"], connection["password"]) as client:
        yield client


@pytest.fixture(scope="module")
def gong_conf(gong_client: GongClient) -> dict[str, str]:
    """The Gong DAG's ``conf``: the older half of the simulator's calls, so the window visibly matters."""
    starts = sorted(datetime.fromisoformat(call["started"]) for call in gong_client.iter_calls())
    assert len(starts) >= 2, "the Gong simulator serves no calls"
    return {"from_datetime": starts[0].isoformat(), "to_datetime": starts[len(starts) // 2].isoformat()}


@pytest.fixture(scope="module")
def finished_runs(airflow_cluster: AirflowCluster, gong_conf: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Trigger both ingest DAGs over REST and return their runs by DAG id once finished.

    The runs share the cluster (and its two cores) and one deadline; a run still going at
    the deadline is returned as it is, for its test to report.
    """
    airflow_cluster.api("POST", "pools", json=GONG_POOL)
    run_ids = {
        CORE_DAG: airflow_cluster.trigger(CORE_DAG, CORE_CONF),
        GONG_DAG: airflow_cluster.trigger(GONG_DAG, gong_conf),
    }
    deadline = time.monotonic() + RUN_TIMEOUT
    return {
        dag_id: airflow_cluster.wait_for_run(dag_id, run_id, max(deadline - time.monotonic(), 0.0))
        for dag_id, run_id in run_ids.items()
    }


@pytest.fixture(scope="module")
def warehouse_cursor(airflow_cluster: AirflowCluster) -> Iterator[Any]:
    """A cursor on the cluster's warehouse (database SOPHIA, schema PUBLIC)."""
    import snowflake.connector

    with snowflake.connector.connect(**warehouse.connect_kwargs(airflow_cluster.warehouse_port)) as conn:
        yield conn.cursor()


def _count(cursor: Any, table: str) -> int | None:
    """Return the rows of ``table`` in the warehouse, or ``None`` when it does not exist."""
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (warehouse.SCHEMA, table),
    )
    if cursor.fetchone()[0] == 0:
        return None
    cursor.execute(f"SELECT COUNT(*) FROM {quote_name(table)}")
    return int(cursor.fetchone()[0])


def _assert_succeeded(cluster: AirflowCluster, run: dict[str, Any]) -> None:
    """Assert that ``run`` succeeded; otherwise show its task states and failed task logs."""
    assert run["state"] == "success", (
        f"the run ended {run['state']} (timeout {RUN_TIMEOUT:.0f} s)\n"
        + cluster.failure_report(run["dag_id"], run["dag_run_id"])
    )


def test_example_dags_are_parsed_without_import_errors(airflow_cluster: AirflowCluster) -> None:
    dags = airflow_cluster.api("GET", "dags", params={"limit": 100})["dags"]
    assert {dag["dag_id"] for dag in dags} >= EXAMPLE_DAGS
    assert airflow_cluster.api("GET", "importErrors")["total_entries"] == 0


def test_cluster_listens_on_loopback_only(airflow_cluster: AirflowCluster) -> None:
    listening = {
        (process.pid, connection.laddr.ip, connection.laddr.port)
        for process in airflow_cluster.processes().values()
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }
    assert listening, "the cluster listens nowhere: its processes were not found"
    assert {ip for _, ip, _ in listening} <= {"127.0.0.1", "::1"}, listening


def test_core_sql_ingest_loads_the_chosen_tables_row_for_row(
    airflow_cluster: AirflowCluster, finished_runs: dict[str, dict[str, Any]], warehouse_cursor: Any
) -> None:
    run = finished_runs[CORE_DAG]
    _assert_succeeded(airflow_cluster, run)
    assert run["conf"] == CORE_CONF
    with sqlite3.connect(airflow_cluster.stack.source_db) as source:
        expected = {
            table.upper(): source.execute(f"SELECT COUNT(*) FROM {quote_name(table)}").fetchone()[0]
            for table in CORE_CONF["tables"]
        }
    loaded = {table: _count(warehouse_cursor, table) for table in expected}
    assert loaded == expected
    assert not _count(warehouse_cursor, "PRODUCTS"), "PRODUCTS was loaded although conf did not ask for it"


def test_gong_ingest_loads_the_window_served_by_the_api(
    airflow_cluster: AirflowCluster,
    finished_runs: dict[str, dict[str, Any]],
    warehouse_cursor: Any,
    gong_client: GongClient,
    gong_conf: dict[str, str],
) -> None:
    run = finished_runs[GONG_DAG]
    _assert_succeeded(airflow_cluster, run)
    assert run["conf"] == gong_conf
    loaded = {table: _count(warehouse_cursor, table) for table in GONG_TABLES}
    assert all(loaded.values()), f"empty or missing Gong tables: {loaded}"
    served_calls = {call["id"] for call in gong_client.iter_calls(**gong_conf)}
    served_users = {user["id"] for user in gong_client.iter_users()}
    assert loaded["GONG_CALLS"] == len(served_calls)
    assert loaded["GONG_USERS"] == len(served_users)
