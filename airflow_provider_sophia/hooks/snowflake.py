"""A Snowflake hook that reaches any Snowflake-compatible endpoint."""

from __future__ import annotations

from typing import Any

from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

#: connection extras passed to ``snowflake.connector.connect`` as numbers of seconds.
TIMEOUT_EXTRAS = ("login_timeout", "network_timeout", "socket_timeout")


class SophiaSnowflakeHook(SnowflakeHook):
    """Snowflake hook that also passes ``host``, ``port`` and ``extra.protocol`` to the connector.

    The upstream :class:`SnowflakeHook` derives the endpoint from the account and drops
    these fields, so it cannot reach a private-link host, a proxy, or a Snowflake-compatible
    HTTP endpoint such as the fakesnow server. With no host set, behaviour is unchanged.
    The extras ``login_timeout``, ``network_timeout`` and ``socket_timeout`` (seconds) are
    passed through too, so an unreachable warehouse fails fast instead of retrying for minutes.
    """

    hook_name = "Snowflake (Sophia)"

    def _get_conn_params(self) -> dict[str, Any]:
        params: dict[str, Any] = dict(super()._get_conn_params())
        # The connector writes AUTOCOMMIT into the session_parameters dict it is given; the
        # upstream hook caches that dict, so without a copy every later connection of this hook
        # would silently autocommit.
        session_parameters = params.get("session_parameters")
        if isinstance(session_parameters, dict):
            params["session_parameters"] = dict(session_parameters)
        return params

    def _build_base_conn_config(self, conn: Any, extra_dict: dict[str, Any]) -> dict[str, Any]:
        config = super()._build_base_conn_config(conn, extra_dict)
        if conn.host:
            config["host"] = conn.host
        if conn.port:
            config["port"] = int(conn.port)
        if extra_dict.get("protocol"):
            config["protocol"] = str(extra_dict["protocol"])
        for key in TIMEOUT_EXTRAS:
            if extra_dict.get(key) not in (None, ""):
                config[key] = int(extra_dict[key])
        return config
