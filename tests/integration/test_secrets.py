"""No secret leaks: the Gong secret, its Basic auth header, the Snowflake password and key are nowhere.

A DAG of our operators runs with ``dag.test()`` (real Airflow task logging) against the Gong
simulator, which accepts only a distinctive secret, and the embedded warehouse, whose
connection carries a private key encrypted with a distinctive password (key-pair
authentication, where the password is the key's passphrase; the emulator accepts any
login). Everything written under ``$AIRFLOW_HOME`` during the run (``dag.test()`` logs
in-process, not to task log files), captured stdout/stderr, log records, XCom values and
the messages of the errors bad credentials raise are scanned for every form of the secrets.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_sophia.exceptions import GongAuthError
from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.gong.simulator import GongSimulator, Settings
from airflow_provider_sophia.hooks.snowflake_pool import SnowflakePoolHook
from airflow_provider_sophia.operators.gong_to_snowflake import GongToSnowflakeOperator
from tests.conftest import EmbeddedWarehouse, unique_name
from tests.dags import test_profiling_operator as profiling_fixtures

pytestmark = pytest.mark.integration

#: dag.test() support: the migrated metadata DB and ``run(dag)`` (DAG synced to the DB first).
airflow_db = profiling_fixtures.airflow_db
run_dag = profiling_fixtures.run_dag

ACCESS_KEY = "sophia-test-key"
GONG_SECRET = "GongS3cret-" + os.urandom(6).hex()
SNOWFLAKE_PASSWORD = "SfPassw0rd-" + os.urandom(6).hex()
PRIVATE_KEY_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(SNOWFLAKE_PASSWORD.encode()),
    )
    .decode()
)


def secret_forms() -> dict[str, str]:
    """Every form in which a secret could leak: raw, Basic auth values, base64 alone."""
    basic = base64.b64encode(f"{ACCESS_KEY}:{GONG_SECRET}".encode()).decode()
    return {
        "gong secret": GONG_SECRET,
        "basic auth value": basic,
        "basic auth header": f"Basic {basic}",
        "gong secret base64": base64.b64encode(GONG_SECRET.encode()).decode().rstrip("="),
        "snowflake password": SNOWFLAKE_PASSWORD,
        # Any 64-character line of the PEM body would identify the key.
        **{f"private key line {n}": line for n, line in enumerate(PRIVATE_KEY_PEM.splitlines()[1:-2])},
    }


def assert_clean(where: str, text: str) -> None:
    """Fail naming the secret form found in ``text``."""
    leaked = [name for name, value in secret_forms().items() if value in text]
    assert not leaked, f"{leaked} leaked in {where}"


@pytest.fixture
def sim(warehouse: EmbeddedWarehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[GongSimulator]:
    """The simulator (accepting only the distinctive secret) and both Airflow connections."""
    with GongSimulator(
        seed=5,
        users=10,
        calls=60,
        page_size=20,
        access_key=ACCESS_KEY,
        access_key_secret=GONG_SECRET,
        settings=Settings(rate_limit=None),
    ) as sim:
        gong = {
            "conn_type": "gong",
            "host": sim.url,
            "login": ACCESS_KEY,
            "password": GONG_SECRET,
            "extra": {"rate_limit_per_second": 0, "base_delay": 0.01, "max_attempts": 3},
        }
        snowflake = warehouse.airflow_connection() | {"password": SNOWFLAKE_PASSWORD}
        snowflake["extra"] = snowflake.get("extra", {}) | {"private_key_content": PRIVATE_KEY_PEM}
        monkeypatch.setenv("AIRFLOW_CONN_GONG_DEFAULT", json.dumps(gong))
        monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps(snowflake))
        yield sim
    SnowflakePoolHook.close_all_pools()


def written_since(root: Path, started: float) -> dict[str, str]:
    """Return the text of every file under ``root`` modified since ``started``."""
    return {
        str(path): path.read_text(errors="replace")
        for path in root.rglob("*")
        if path.is_file() and path.stat().st_mtime >= started and path.stat().st_size < 50_000_000
    }


def test_dag_run_leaks_no_secret(
    sim: GongSimulator,
    run_dag: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = time.time() - 1
    out = tmp_path / "xcom.json"
    table = unique_name("secret_calls")
    with DAG(unique_name("secrets").lower(), schedule=None) as dag:
        land = GongToSnowflakeOperator(
            task_id="land",
            stream="calls",
            target_table=table,
            from_datetime="2024-01-01",
            to_datetime="2024-02-01",
        )

        @task
        def keep(summary: dict[str, Any]) -> None:
            out.write_text(json.dumps(summary))

        keep(land.output)  # type: ignore[arg-type]
    run = run_dag(dag)
    assert run.state == "success"
    summary = json.loads(out.read_text())
    assert summary["records"] == 60
    assert sim.requests()  # the secret was really used
    assert SnowflakePoolHook()._get_conn_params()["private_key"]  # so was the key (key-pair login)
    assert_clean("XCom", out.read_text())
    captured = capfd.readouterr()
    assert_clean("stdout", captured.out)
    assert_clean("stderr", captured.err)
    assert_clean("log records", caplog.text)
    assert "Gong calls" in caplog.text  # the task's own log lines were captured
    for path, text in written_since(Path(os.environ["AIRFLOW_HOME"]), started).items():
        assert_clean(path, text)


def test_bad_gong_credentials_error_names_no_secret(sim: GongSimulator) -> None:
    wrong = GONG_SECRET[::-1]
    with (
        GongClient(sim.url, ACCESS_KEY, wrong, rate_limit_per_second=None) as client,
        pytest.raises(GongAuthError) as raised,
    ):
        list(client.iter_users())
    message = f"{raised.value!s} {raised.value!r} {raised.value.__cause__!r} {client!r}"
    for value in (wrong, GONG_SECRET, base64.b64encode(f"{ACCESS_KEY}:{wrong}".encode()).decode()):
        assert value not in message


def test_failed_task_with_bad_gong_secret_logs_no_secret(
    sim: GongSimulator,
    run_dag: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = time.time() - 1
    wrong = "Wr0ngSecret-" + os.urandom(6).hex()
    gong = json.loads(os.environ["AIRFLOW_CONN_GONG_DEFAULT"]) | {"password": wrong}
    monkeypatch.setenv("AIRFLOW_CONN_GONG_DEFAULT", json.dumps(gong))
    with DAG(unique_name("secrets_bad").lower(), schedule=None) as dag:
        GongToSnowflakeOperator(task_id="land", stream="users", target_table=unique_name("secret_users"))
    run = run_dag(dag)
    assert run.state == "failed"
    texts = {"output": "".join(capfd.readouterr()), "log records": caplog.text} | written_since(
        Path(os.environ["AIRFLOW_HOME"]), started
    )
    assert any("GongAuthError" in text for text in texts.values()), "the failure was not logged"
    for where, text in texts.items():
        assert_clean(where, text)
        assert wrong not in text, f"the wrong secret leaked in {where}"
        assert base64.b64encode(f"{ACCESS_KEY}:{wrong}".encode()).decode() not in text
