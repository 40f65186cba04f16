from __future__ import annotations

import pytest

from airflow_provider_sophia.hooks.snowflake import SophiaSnowflakeHook
from tests.conftest import EmbeddedWarehouse, unique_name

pytestmark = pytest.mark.integration


def test_hook_reaches_embedded_warehouse_over_http(snowflake_conn: str) -> None:
    hook = SophiaSnowflakeHook(snowflake_conn_id=snowflake_conn)
    assert hook.get_first("select 41 + 1") == (42,)
    assert hook.test_connection() == (True, "Connection successfully tested")


def test_data_persists_across_connections(warehouse: EmbeddedWarehouse) -> None:
    table = unique_name("persist")
    with warehouse.connect() as first:
        first.cursor().execute(f'create table "{table}" (id int)')
        first.cursor().execute(f'insert into "{table}" values (%s), (%s)', (1, 2))
    with warehouse.connect() as second:
        assert second.cursor().execute(f'select count(*) from "{table}"').fetchone() == (2,)


def test_upstream_fields_are_passed_through(snowflake_conn: str) -> None:
    params = SophiaSnowflakeHook(snowflake_conn_id=snowflake_conn)._get_conn_params()
    assert params["protocol"] == "http"
    assert params["host"] == "127.0.0.1"
    assert isinstance(params["port"], int)
    assert params["login_timeout"] == 10


def test_session_parameters_are_not_shared_between_connections(snowflake_conn: str) -> None:
    hook = SophiaSnowflakeHook(snowflake_conn_id=snowflake_conn)
    first, second = hook._get_conn_params(), hook._get_conn_params()
    assert first["session_parameters"] is not second["session_parameters"]
    with hook.get_conn():
        pass  # the connector adds AUTOCOMMIT to the dict it was given
    assert "AUTOCOMMIT" not in {key.upper() for key in hook._get_conn_params()["session_parameters"]}
