"""The embedded warehouse: fakesnow (Snowflake SQL on DuckDB) served over HTTP on loopback.

Every session shares one database instance persisted under ``<state_dir>/warehouse`` so
that what one task loads, the next task (another process) reads. Run it alone with
``python -m airflow_provider_sophia.local.warehouse --port 8087 --db-path .sophia/warehouse``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from airflow_provider_sophia.local.processes import LOOPBACK, ManagedService

DATABASE = "SOPHIA"
SCHEMA = "PUBLIC"
USER = "sophia"
PASSWORD = "local-warehouse-password"  # the emulator ignores it; kept to exercise masking


def connect_kwargs(port: int, host: str = LOOPBACK) -> dict[str, Any]:
    """Return ``snowflake.connector.connect`` arguments for the embedded warehouse."""
    return {
        "user": USER,
        "password": PASSWORD,
        "account": "fakesnow",
        "host": host,
        "port": port,
        "protocol": "http",
        "database": DATABASE,
        "schema": SCHEMA,
        "login_timeout": 10,
        "network_timeout": 60,
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
    }


def airflow_connection(port: int, host: str = LOOPBACK) -> dict[str, Any]:
    """Return the ``snowflake_default`` Airflow connection (JSON form) for the warehouse."""
    return {
        "conn_type": "snowflake",
        "login": USER,
        "password": PASSWORD,
        "host": host,
        "port": port,
        "schema": SCHEMA,
        "extra": {
            "account": "fakesnow",
            "database": DATABASE,
            "warehouse": "LOCAL",
            "protocol": "http",
            "login_timeout": 10,
            "network_timeout": 60,
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        },
    }


def service(state_dir: Path) -> ManagedService:
    """Return the managed warehouse process of a stack rooted at ``state_dir``."""
    db_path = Path(state_dir) / "warehouse"
    return ManagedService("warehouse", __name__, state_dir, ["--db-path", str(db_path.resolve())])


def serve(port: int, db_path: str | None, host: str = LOOPBACK) -> None:
    """Serve the warehouse until interrupted; ``db_path=None`` keeps it in memory."""
    import importlib

    import uvicorn
    from fakesnow.instance import FakeSnow

    from airflow_provider_sophia.local import cortex_emulation

    # ``fakesnow.server`` is shadowed by a function of the same name in ``fakesnow``.
    server = importlib.import_module("fakesnow.server")

    if db_path:
        Path(db_path).mkdir(parents=True, exist_ok=True)
    server.shared_fs = FakeSnow(db_path=db_path)  # type: ignore[attr-defined]
    cortex_emulation.install(server.shared_fs)
    uvicorn.run(server.app, host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--db-path", default=None, help="directory for the DuckDB files; memory if omitted")
    args = parser.parse_args(argv)
    serve(args.port, args.db_path, args.host)


if __name__ == "__main__":
    main()
