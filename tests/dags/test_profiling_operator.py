"""``PerformanceProfileOperator`` in ``dag.test()``: results, XCom, report, and regressions.

``dag.test()`` needs a migrated metadata DB, and in Airflow 3.3 it looks the DAG up in a
DAG bundle: the session fixture migrates the suite's SQLite DB in-process
(``airflow.utils.db.initdb``, a no-op after the first time), and each test points the
``dags-folder`` bundle at an empty temp directory and writes its in-memory DAG to the DB
first (``sync_bag_to_db``), so no DAG file is needed and the example DAGs are not parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_sophia.exceptions import RegressionDetected
from airflow_provider_sophia.operators.profiling import PerformanceProfileOperator
from airflow_provider_sophia.profiling import load_json

pytestmark = pytest.mark.dags

#: pool_acquire at its smallest: a fraction of a second.
SCENARIOS = {"pool_acquire": {"threads": 2, "max_size": 1, "acquisitions": 20}}


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the suite's Airflow metadata DB (under ``$AIRFLOW_HOME``) once per session."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def run_dag(airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Return ``run(dag) -> DagRun``: sync the in-memory DAG to the DB, then ``dag.test()``."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags_folder))

    def run(dag: DAG) -> Any:
        DagBundlesManager().sync_bundles_to_db()
        bag = BundleDagBag(dag_folder=dags_folder, bundle_path=dags_folder, bundle_name="dags-folder")
        bag.bag_dag(dag)
        sync_bag_to_db(bag, "dags-folder", None)
        return dag.test()

    return run


def profile_dag(dag_id: str, out: Path, **operator_kwargs: Any) -> DAG:
    """A DAG whose downstream task writes what it received by XCom to ``out/xcom.json``."""
    with DAG(dag_id, schedule=None) as dag:
        profile = PerformanceProfileOperator(
            task_id="profile", scenarios=SCENARIOS, output_dir=str(out), **operator_kwargs
        )

        @task
        def keep(summary: dict[str, Any]) -> None:
            (out / "xcom.json").write_text(json.dumps(summary))

        keep(profile.output)  # type: ignore[arg-type]
    return dag


def baseline_with_throughput(path: Path, results: Path, throughput: float) -> str:
    """Write a baseline from the run at ``results`` with ``after.throughput`` set to ``throughput``.

    Every lower-is-better metric is made 1000x looser, so that timing noise never regresses.
    """
    data = json.loads(results.read_text())
    for metric in data["results"][0]["metrics"].values():
        if metric["better"] == "lower":
            metric["value"] = metric["value"] * 1000 + 1
    data["results"][0]["metrics"]["after.throughput"]["value"] = throughput
    path.write_text(json.dumps(data))
    return str(path)


def test_operator_runs_and_pushes_its_summary(run_dag: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dag_run = run_dag(profile_dag("profiling_summary", out))
    assert dag_run.state == "success"
    summary = json.loads((out / "xcom.json").read_text())
    assert summary["regressions"] == []
    assert summary["baseline_run_id"] is None
    assert summary["scenarios"]["pool_acquire"]["after.timeouts"] == 0
    assert Path(summary["report"]).read_text().startswith("# Performance profile")
    assert Path(summary["charts"]["pool_acquire"]).read_bytes()[:4] == b"\x89PNG"
    assert load_json(summary["results"]).run_id == summary["run_id"]


@pytest.mark.parametrize("fail_on_regression", [False, True])
def test_regression_fails_the_task_only_when_asked(
    run_dag: Any, tmp_path: Path, fail_on_regression: bool
) -> None:
    first = tmp_path / "first"
    assert run_dag(profile_dag("profiling_first", first)).state == "success"
    unreachable = baseline_with_throughput(tmp_path / "fast.json", first / "results.json", 1e12)

    out = tmp_path / "out"
    dag = profile_dag(
        f"profiling_regression_{fail_on_regression}",
        out,
        baseline=unreachable,
        fail_on_regression=fail_on_regression,
    )
    dag_run = run_dag(dag)
    assert dag_run.get_task_instance("profile").state == ("failed" if fail_on_regression else "success")
    assert dag_run.state == ("failed" if fail_on_regression else "success")
    report = (out / "report.md").read_text()
    assert "**REGRESSION**" in report
    if not fail_on_regression:
        summary = json.loads((out / "xcom.json").read_text())
        assert [item["metric"] for item in summary["regressions"]] == ["after.throughput"]


def test_no_regression_passes_with_fail_on_regression(run_dag: Any, tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert run_dag(profile_dag("profiling_base", first)).state == "success"
    slow = baseline_with_throughput(tmp_path / "slow.json", first / "results.json", 1.0)
    out = tmp_path / "out"
    dag = profile_dag("profiling_improved", out, baseline=slow, fail_on_regression=True, save_baseline=False)
    assert run_dag(dag).state == "success"
    assert json.loads((out / "xcom.json").read_text())["regressions"] == []


def test_init_does_no_io_and_fields_are_templated(tmp_path: Path) -> None:
    operator = PerformanceProfileOperator(
        task_id="p", scenarios=["pool_acquire"], baseline=str(tmp_path / "missing" / "{{ ds }}")
    )
    assert not (tmp_path / "missing").exists()
    assert set(operator.template_fields) == {
        "scenarios",
        "baseline",
        "output_dir",
        "baseline_table",
        "size",
        "tolerance",
        "fail_on_regression",
        "save_baseline",
    }
    assert operator.tolerance == 0.2
    assert operator.fail_on_regression is False
    with pytest.raises(TypeError):
        PerformanceProfileOperator("p", ["pool_acquire"])  # type: ignore[call-arg, arg-type]


def test_regression_detected_names_the_metric(tmp_path: Path) -> None:
    first = tmp_path / "first"
    PerformanceProfileOperator(task_id="p", scenarios=SCENARIOS, output_dir=str(first)).execute({})
    unreachable = baseline_with_throughput(tmp_path / "fast.json", first / "results.json", 1e12)
    operator = PerformanceProfileOperator(
        task_id="p",
        scenarios=SCENARIOS,
        output_dir=str(tmp_path / "out"),
        baseline=unreachable,
        fail_on_regression=True,
    )
    expected = r"pool_acquire after\.throughput 1e\+12 -> .* save a new baseline"
    with pytest.raises(RegressionDetected, match=expected):
        operator.execute({})
