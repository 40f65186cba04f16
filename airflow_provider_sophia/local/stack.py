"""The embedded local stack: warehouse, Gong simulator, sample source, Airflow home.

Everything lives under one state directory (``.sophia`` by default): the warehouse's
DuckDB files, the sample SQLite source, service state files and logs, and
``AIRFLOW_HOME`` with its SQLite metadata database. No account, no Docker.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_provider_sophia.local import sample_data, warehouse
from airflow_provider_sophia.local.processes import LOOPBACK, ManagedService

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
GONG_SIMULATOR = "airflow_provider_sophia.gong.simulator"
GONG_ACCESS_KEY = "local-access-key"
GONG_ACCESS_KEY_SECRET = "local-access-key-secret"
GONG_DAYS = 7
GONG_CALLS = 700
#: Airflow pool shared by every Gong task: Gong allows 3 requests/s per company.
GONG_POOL = ("gong_api", 3, "Gong API: 3 requests/s per company; one slot per concurrent Gong task")


@dataclass
class LocalStack:
    """The embedded stack rooted at ``state_dir``.

    :param state_dir: where every piece keeps its state.
    :param dags_folder: the DAGs Airflow loads (the repo's ``dags/`` by default).
    """

    state_dir: Path = field(default_factory=lambda: Path(".sophia"))
    dags_folder: Path = field(default_factory=lambda: REPO_ROOT / "dags")

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def source_db(self) -> Path:
        return self.state_dir / "source" / "core.db"

    def services(self) -> list[ManagedService]:
        """Return the stack's background services (the simulator only once it is installed)."""
        services = [warehouse.service(self.state_dir)]
        if importlib.util.find_spec(GONG_SIMULATOR) is not None:
            services.append(
                ManagedService(
                    "gong",
                    GONG_SIMULATOR,
                    self.state_dir,
                    [
                        "--access-key",
                        GONG_ACCESS_KEY,
                        "--access-key-secret",
                        GONG_ACCESS_KEY_SECRET,
                        # a week of calls up to today, so the DAG's recent windows find some
                        "--start",
                        (_midnight_utc() - timedelta(days=GONG_DAYS)).isoformat(),
                        "--days",
                        str(GONG_DAYS),
                        "--calls",
                        str(GONG_CALLS),
                    ],
                )
            )
        return services

    def up(self, *, regenerate: bool = False) -> dict[str, str]:
        """Start what is not running, create the sample source and metadata DB; return the env.

        :param regenerate: recreate the sample source even when it exists.
        """
        for service in self.services():
            state, started = service.start()
            print(f"{service.name:<10} {'started' if started else 'running'} on {LOOPBACK}:{state.port}")
        if regenerate or not self.source_db.exists():
            rows = sample_data.generate(self.source_db)
            print(f"source     {self.source_db} ({', '.join(f'{t}: {n:,}' for t, n in rows.items())})")
        env = self.env()
        self._migrate_metadata_db(env)
        (self.state_dir / "env.sh").write_text(
            "".join(f"export {key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))
        )
        return env

    def down(self) -> list[str]:
        """Stop every running service; return the names of those stopped."""
        return [service.name for service in self.services() if service.stop()]

    def env(self) -> dict[str, str]:
        """Return the environment that points Airflow at this stack (services must be up)."""
        states = {service.name: service.status() for service in self.services()}
        missing = [name for name, state in states.items() if state is None]
        if missing:
            raise RuntimeError(
                f"Local stack is not running ({', '.join(missing)} down); "
                "start it with `python -m airflow_provider_sophia.local up`."
            )
        env = {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "SOPHIA_STATE_DIR": str(self.state_dir),
            "AIRFLOW_CONN_CORE_SQL_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(self.source_db)}),
        }
        warehouse_state = states["warehouse"]
        assert warehouse_state is not None
        env["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"] = json.dumps(warehouse.airflow_connection(warehouse_state.port))
        if (gong_state := states.get("gong")) is not None:
            env["AIRFLOW_CONN_GONG_DEFAULT"] = json.dumps(
                {
                    "conn_type": "gong",
                    "host": f"http://{LOOPBACK}:{gong_state.port}",
                    "login": GONG_ACCESS_KEY,
                    "password": GONG_ACCESS_KEY_SECRET,
                }
            )
        return env

    def _migrate_metadata_db(self, env: dict[str, str]) -> None:
        """Create or upgrade the SQLite metadata DB once (a stamp file remembers it)."""
        stamp = self.airflow_home / ".migrated"
        if stamp.exists():
            return
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        print("airflow    migrating the metadata database (first run only)...")
        airflow(["db", "migrate"], env, quiet=True)
        name, slots, description = GONG_POOL
        airflow(["pools", "set", name, str(slots), description], env, quiet=True)
        stamp.touch()


def _midnight_utc() -> datetime:
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def airflow(args: list[str], env: dict[str, str], *, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI of this interpreter with ``env`` added; raise on failure."""
    command = [sys.executable, "-m", "airflow", *args]
    result = subprocess.run(command, env=os.environ | env, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout or "") + (result.stderr or "")
        raise RuntimeError(
            f"`airflow {' '.join(args)}` failed with exit code {result.returncode}\n{output[-4000:]}"
        )
    return result
