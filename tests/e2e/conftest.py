"""A real Airflow cluster on loopback for the end-to-end tests, over the embedded stack.

The session fixture :func:`airflow_cluster` starts the embedded stack (fakesnow warehouse,
Gong simulator, SQLite sample source) in a temp state dir, creates a fresh PostgreSQL
metadata database, migrates it, and runs the four Airflow components (api-server,
scheduler, dag-processor, triggerer; LocalExecutor) as separate process groups. It yields
once the example DAGs are parsed with no import error, and on teardown kills every process
group, asserts that no process of the cluster is left and drops the database.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from airflow_provider_sophia.local import sample_data, warehouse
from airflow_provider_sophia.local.processes import LOOPBACK, free_port
from airflow_provider_sophia.local.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
EXAMPLE_DAGS = frozenset(
    {
        "sophia_core_sql_ingest",
        "sophia_gong_ingest",
        "sophia_cortex_enrichment",
        "sophia_performance_baseline",
    }
)
#: ``airflow <name> <args>``, started in this order. No log server: it would listen on every
#: interface at a fixed port, and the api-server reads the task logs from local files anyway.
COMPONENTS = {
    "api-server": [],
    "dag-processor": [],
    "scheduler": ["--skip-serve-logs"],
    "triggerer": ["--skip-serve-logs"],
}
#: Stopped in this order: the scheduler first, so no task starts during teardown.
STOP_ORDER = ("scheduler", "triggerer", "dag-processor", "api-server")
REQUEST_TIMEOUT = 15.0
STARTUP_TIMEOUT = 120.0
PARSE_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0
FINISHED_STATES = frozenset({"success", "failed"})


class ClusterError(AssertionError):
    """The cluster did not start, answer or stop as expected; the message carries the evidence."""


@dataclass
class Component:
    """One Airflow component running in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of the component's log."""
        return self.log_file.read_text(errors="replace")[-chars:]


@dataclass
class AirflowCluster:
    """A running cluster: its REST API, environment and the stack it points at.

    :param url: the api-server's base URL on loopback.
    :param env: the Airflow environment every component runs with.
    :param stack: the embedded stack (warehouse, Gong simulator, sample source).
    :param components: the running components, by name.
    """

    url: str
    env: dict[str, str]
    stack: LocalStack
    components: dict[str, Component] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        """Return the cluster's ``AIRFLOW_HOME`` (inside the stack's state dir)."""
        return self.stack.airflow_home

    @property
    def warehouse_port(self) -> int:
        """Return the loopback port of the running warehouse."""
        state = warehouse.service(self.stack.state_dir).status()
        if state is None:
            raise ClusterError("the embedded warehouse is not running")
        return state.port

    def api(self, method: str, path: str, *, timeout: float = REQUEST_TIMEOUT, **kwargs: Any) -> Any:
        """Call REST API v2 and return the decoded JSON body.

        :param method: the HTTP method.
        :param path: the path below ``/api/v2/``.
        :param timeout: seconds for the request.
        :param kwargs: further ``requests.request`` arguments (``json``, ``params``).
        :raises ClusterError: on any status other than 2xx, with the response body.
        """
        url = f"{self.url}/api/v2/{path.lstrip('/')}"
        response = requests.request(method, url, timeout=timeout, **kwargs)
        if not response.ok:
            raise ClusterError(f"{method} {url} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def processes(self) -> dict[int, psutil.Process]:
        """Return the live processes of the cluster and of its stack, by pid."""
        services = [state.pid for service in self.stack.services() if (state := service.status()) is not None]
        roots = [component.process.pid for component in self.components.values()]
        return _cluster_processes([*roots, *services], self.home)

    def check_alive(self) -> None:
        """Raise with the log tail of any component that has exited."""
        for component in self.components.values():
            if component.process.poll() is not None:
                raise ClusterError(
                    f"airflow {component.name} exited with code {component.process.returncode}; "
                    f"its log ends with:\n{component.log_tail()}"
                )

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Unpause ``dag_id``, trigger a manual run with ``conf`` and return its run id."""
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """Poll a DAG run until it succeeds or fails, or ``timeout`` seconds pass; return it as last seen."""
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in FINISHED_STATES or time.monotonic() > deadline:
                return run
            self.check_alive()
            time.sleep(2.0)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the run's task instances (mapped ones one per map index)."""
        body = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return list(body["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Return ``{task_id[map_index]: state}`` of the run."""
        return {_ti_label(ti): ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """Return the task states and the logs of every task instance that did not succeed."""
        instances = self.task_instances(dag_id, run_id)
        parts = [f"{dag_id} run {run_id}: " + ", ".join(f"{_ti_label(ti)}={ti['state']}" for ti in instances)]
        for ti in instances:
            if ti["state"] in ("success", "skipped") or not ti["try_number"]:
                continue
            body = self.api(
                "GET",
                f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}",
                params={"map_index": ti["map_index"], "full_content": "true"},
                headers={"Accept": "application/json"},
            )
            lines = "\n".join(_log_line(item) for item in body.get("content", []))
            parts.append(f"--- {_ti_label(ti)} try {ti['try_number']} ({ti['state']}) ---\n{lines[-8000:]}")
        return "\n".join(parts)


def _ti_label(ti: dict[str, Any]) -> str:
    return ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"


#: Keys of a structured task log record that every record repeats: left out of the text form.
LOG_CONTEXT_KEYS = frozenset(
    {"timestamp", "level", "event", "logger", "task_id", "dag_id", "ti_id", "try_number", "run_id"}
    | {"map_index", "filename", "lineno", "error_detail"}
)


def _log_line(item: Any) -> str:
    """Format one structured record of the REST log endpoint as text, tracebacks included."""
    if not isinstance(item, dict):
        return str(item)
    extra = {key: value for key, value in item.items() if key not in LOG_CONTEXT_KEYS}
    head = f"{item.get('timestamp', '')} {item.get('level', '')} {item.get('event', '')}"
    lines = [f"{head} {extra}" if extra else head]
    for error in item.get("error_detail") or []:
        frames = error.get("frames", [])
        lines += [
            f"  File {frame['filename']}, line {frame['lineno']}, in {frame['name']}" for frame in frames
        ]
        lines.append(f"  {error.get('exc_type')}: {error.get('exc_value')}")
    return "\n".join(lines)


def _airflow_env(home: Path, stack_env: dict[str, str], database_url: str, port: int) -> dict[str, str]:
    """Return the process environment of every component: no inherited ``AIRFLOW*`` setting."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    return inherited | {
        **stack_env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOOPBACK}:{port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # Only the runs a test triggers: no scheduled run appears when a DAG is unpaused.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }


def _start_stack(stack: LocalStack) -> dict[str, str]:
    """Start the stack's services and sample source; return its env (no SQLite metadata DB)."""
    for service in stack.services():
        service.start()
    sample_data.generate(stack.source_db)
    return stack.env()


def _run_airflow(args: list[str], env: dict[str, str], timeout: float) -> None:
    """Run an ``airflow`` CLI command to completion; raise with its output when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise ClusterError(f"`airflow {' '.join(args)}` failed:\n{(result.stdout + result.stderr)[-4000:]}")


def _start_component(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Component:
    """Start ``airflow <name> <args>`` in a new session (its own process group), logging to a file."""
    log_file = log_dir / f"{name}.log"
    with log_file.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", name, *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Component(name, process, log_file)


def _wait_for_api(cluster: AirflowCluster) -> None:
    """Wait until the api-server answers ``GET /api/v2/version``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        cluster.check_alive()
        try:
            if requests.get(f"{cluster.url}/api/v2/version", timeout=2.0).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(
                f"the api-server did not answer within {STARTUP_TIMEOUT:.0f} s; its log ends with:\n"
                f"{cluster.components['api-server'].log_tail()}"
            )
        time.sleep(0.5)


def wait_for_dags(cluster: AirflowCluster, dag_ids: Iterable[str], timeout: float = PARSE_TIMEOUT) -> None:
    """Wait until every DAG of ``dag_ids`` is parsed, failing at once on any import error."""
    expected = set(dag_ids)
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        errors = cluster.api("GET", "importErrors")
        if errors["total_entries"]:
            report = "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors["import_errors"])
            raise ClusterError(f"the DAG processor reported import errors:\n{report}")
        parsed = {dag["dag_id"] for dag in cluster.api("GET", "dags", params={"limit": 100})["dags"]}
        if expected <= parsed:
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"DAGs {sorted(expected - parsed)} were not parsed within {timeout:.0f} s "
                f"(parsed: {sorted(parsed)}); the dag-processor log ends with:\n"
                f"{cluster.components['dag-processor'].log_tail()}"
            )
        time.sleep(1.0)


def _live(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cluster_processes(root_pids: Iterable[int], home: Path) -> dict[int, psutil.Process]:
    """Return the live processes of the cluster: the roots, their descendants, and any
    process whose environment names the cluster's ``AIRFLOW_HOME`` (task runners included)."""
    found: dict[int, psutil.Process] = {}
    for pid in root_pids:
        try:
            root = psutil.Process(pid)
            found.update({p.pid: p for p in [root, *root.children(recursive=True)]})
        except psutil.NoSuchProcess:
            continue
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get("AIRFLOW_HOME") == str(home):
                found[process.pid] = process
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return {pid: process for pid, process in found.items() if _live(process)}


def _left_over(before: dict[int, psutil.Process], home: Path) -> dict[int, psutil.Process]:
    """Return the processes of ``before`` still alive plus any new one with the cluster's home."""
    return {pid: p for pid, p in before.items() if _live(p)} | _cluster_processes([], home)


def _describe(process: psutil.Process) -> str:
    """Return ``pid command line`` of a process (or just the pid once it is gone)."""
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:160]}"
    except psutil.Error:
        return str(process.pid)


def _stop_components(components: Iterable[Component]) -> None:
    """SIGTERM each component's process group, then SIGKILL the groups not gone after a timeout."""
    components = list(components)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for component in components:
            try:
                os.killpg(component.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            for component in components:
                component.process.poll()  # reap our own children
            if all(_group_gone(component.process.pid) for component in components):
                return
            time.sleep(0.2)


def _stop_processes(processes: Iterable[psutil.Process]) -> None:
    """SIGTERM the processes, then SIGKILL those still alive after a timeout."""
    processes = list(processes)
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5.0)


def _group_gone(pgid: int) -> bool:
    """Return whether no live process is left in process group ``pgid``."""
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and _live(process):
                return False
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return True


def _drop_database(admin_dsn: str, name: str) -> str | None:
    """Drop the metadata database; return a problem description when sessions were still open."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as db:
        try:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            return None
        except psycopg.errors.ObjectInUse as error:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            return f"metadata database {name} still had open sessions after teardown: {error}"


@pytest.fixture(scope="session")
def airflow_cluster(postgres_dsn: str) -> Iterator[AirflowCluster]:
    """A real Airflow cluster over the embedded stack, torn down with a leak check at the end."""
    import psycopg
    from psycopg import sql

    db_name = f"sophia_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = urlsplit(postgres_dsn)
    database_url = f"postgresql+psycopg2://{dsn.netloc}/{db_name}"
    with tempfile.TemporaryDirectory(prefix="sophia-e2e-") as tmp:
        root = Path(tmp)
        stack = LocalStack(state_dir=root / "stack", dags_folder=DAGS_FOLDER)
        log_dir = root / "logs"
        log_dir.mkdir()
        port = free_port()
        cluster = AirflowCluster(f"http://{LOOPBACK}:{port}", {}, stack)
        with psycopg.connect(postgres_dsn, autocommit=True, connect_timeout=5) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
        try:
            cluster.env = _airflow_env(cluster.home, _start_stack(stack), database_url, port)
            _run_airflow(["db", "migrate"], cluster.env, timeout=STARTUP_TIMEOUT)
            for name, args in COMPONENTS.items():
                cluster.components[name] = _start_component(name, args, cluster.env, log_dir)
            _wait_for_api(cluster)
            wait_for_dags(cluster, EXAMPLE_DAGS)
            yield cluster
        finally:
            _teardown(cluster, postgres_dsn, db_name)


def _teardown(cluster: AirflowCluster, admin_dsn: str, db_name: str) -> None:
    """Stop the components and the stack, drop the database; raise if anything was left behind."""
    before = cluster.processes()
    problems: list[str] = []
    try:
        _stop_components(cluster.components[name] for name in STOP_ORDER if name in cluster.components)
        cluster.stack.down()
        # Task processes run in sessions of their own: a killed scheduler orphans running ones.
        _stop_processes(_left_over(before, cluster.home).values())
        if left := _left_over(before, cluster.home):
            problems.append(
                "processes left behind after teardown:\n" + "\n".join(map(_describe, left.values()))
            )
    finally:
        if (problem := _drop_database(admin_dsn, db_name)) is not None:
            problems.append(problem)
    if problems:
        raise ClusterError("\n".join(problems))
