"""Every file in dags/ parses into DAGs: no import errors, no cycles, tags, an owner, no I/O at parse."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {
    "sophia_core_sql_ingest",
    "sophia_gong_ingest",
    "sophia_cortex_enrichment",
    "sophia_performance_baseline",
}

pytestmark = pytest.mark.dags


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("a DAG file opened a network or database connection at parse time")


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse)
        patch.setattr(socket, "create_connection", _refuse)
        patch.setattr("sqlite3.connect", _refuse)
        patch.setattr("snowflake.connector.connect", _refuse)
        return DagBag(dag_folder=str(DAGS), safe_mode=False)


def test_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}


def test_example_dags_are_present(dagbag: Any) -> None:
    present = set(dagbag.dag_ids)
    assert present, "dags/ holds no DAG"
    assert present <= EXPECTED | {dag_id for dag_id in present if dag_id.startswith("sophia_")}


def test_dags_are_documented_tagged_owned_and_retried(dagbag: Any) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        assert dag.max_active_runs, f"{dag_id} has no max_active_runs"
        for task in dag.tasks:
            assert task.owner, f"{dag_id}.{task.task_id} has no owner"
            assert task.owner != "airflow", f"{dag_id}.{task.task_id} keeps the default owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} is not retried"


def test_no_cycles(dagbag: Any) -> None:
    for dag_id, dag in dagbag.dags.items():
        order = dag.topological_sort()
        assert len(order) == len(dag.tasks), f"{dag_id} has a cycle"
