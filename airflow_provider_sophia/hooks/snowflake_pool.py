"""SnowflakePoolHook: the Sophia Snowflake hook over a per-process connection pool."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import fields
from typing import Any, ClassVar

from airflow.sdk.observability.stats import Stats, normalize_name_for_stats

from airflow_provider_sophia._pool_support import default_is_disconnect
from airflow_provider_sophia.hooks.snowflake import SophiaSnowflakeHook
from airflow_provider_sophia.pool import ConnectionPool, PoolConfig, PooledConnection, PoolStats
from airflow_provider_sophia.settings import DEFAULTS, setting

#: connection extra / ``[sophia]`` option -> :class:`PoolConfig` field.
POOL_OPTIONS = {
    "pool_min_size": "min_size",
    "pool_max_size": "max_size",
    "pool_health_check_interval": "health_check_interval",
    "pool_acquire_timeout": "acquire_timeout",
    "pool_max_idle": "max_idle",
    "pool_max_lifetime": "max_lifetime",
    "pool_validation_timeout": "validation_timeout",
}
#: hook arguments that change what a connection is; hooks differing in them get separate pools.
SESSION_ARGUMENTS = (
    "account",
    "warehouse",
    "database",
    "region",
    "role",
    "schema",
    "authenticator",
    "session_parameters",
)
#: Snowflake errnos for a session or token that expired or was ended server-side.
SESSION_GONE_ERRNOS = frozenset({390104, 390111, 390112, 390114})
GAUGES = ("size", "idle", "in_use", "waiting")
COUNTERS = {
    "created": "created_total",
    "closed": "closed_total",
    "acquired": "acquired_total",
    "timeouts": "timeouts_total",
    "health_checks": "health_checks_total",
    "health_check_failures": "health_check_failures_total",
    "evicted": "evicted_total",
}


def rollback_open_transaction(conn: Any) -> None:
    """Roll back what a caller left open with autocommit off, and turn autocommit back on.

    ``SnowflakeHook.set_autocommit`` records the mode as ``conn.autocommit_mode`` (``run``
    turns it off); the next borrower must get the session's default, autocommit, or its
    writes would silently roll back when the connection returns. In autocommit mode no
    transaction can be pending, so the round trip is skipped.
    """
    if getattr(conn, "autocommit_mode", True) is False:
        conn.rollback()
        conn.autocommit(True)


def is_session_lost(error: BaseException, conn: Any) -> bool:
    """Return whether an error raised on a pooled Snowflake connection means its session is gone.

    Any HTTP-level failure (the connector's ``HttpError``, e.g. ``401`` for a killed session),
    a session or token expiry, or the PEP 249 disconnect signals of the generic pool.
    """
    from snowflake.connector.errors import HttpError

    return (
        isinstance(error, HttpError)
        or getattr(error, "errno", None) in SESSION_GONE_ERRNOS
        or default_is_disconnect(error, conn)
    )


class PoolStatsEmitter:
    """Send pool snapshots to Airflow's metrics as ``sophia.pool.<name>.<metric>``.

    Gauges: ``size``, ``idle``, ``in_use``, ``waiting``. Counters (incremented by what
    changed since the previous snapshot): ``created``, ``closed``, ``acquired``, ``timeouts``,
    ``health_checks``, ``health_check_failures``, ``evicted``.

    :param name: the pool's name, normalized for the metrics backend.
    """

    def __init__(self, name: str) -> None:
        self.prefix = f"sophia.pool.{normalize_name_for_stats(name)}"
        self._lock = threading.Lock()
        self._sent = dict.fromkeys(COUNTERS, 0)

    def __call__(self, stats: PoolStats) -> None:
        with self._lock:  # snapshots from racing threads arrive out of order: never count twice
            increments = {}
            for metric, field in COUNTERS.items():
                value = getattr(stats, field)
                if value > self._sent[metric]:
                    increments[metric] = value - self._sent[metric]
                    self._sent[metric] = value
        for metric in GAUGES:
            Stats.gauge(f"{self.prefix}.{metric}", getattr(stats, metric))
        for metric, count in increments.items():
            Stats.incr(f"{self.prefix}.{metric}", count)


class SnowflakePoolHook(SophiaSnowflakeHook):
    """Snowflake hook whose connections come from a health-checked pool, one per process.

    ``run``, ``get_records``, ``get_first`` and the pandas readers go through
    :meth:`get_conn`, which checks a connection out as a proxy whose ``close()`` returns it
    to the pool, so a task's statements reuse warm sessions instead of logging in each time.
    Pool settings come from the arguments below, else the connection's extras of the same
    name, else ``[sophia]`` in ``airflow.cfg``, else the provider's defaults.

    :param pool_min_size: connections kept open.
    :param pool_max_size: most connections open at once.
    :param pool_health_check_interval: seconds between health checks of idle connections.
    :param pool_acquire_timeout: seconds to wait for a connection before ``PoolTimeout``.
    :param pool_max_idle: seconds an idle connection above the minimum is kept.
    :param pool_max_lifetime: seconds after which a connection is replaced.
    :param pool_validation_timeout: seconds a health check may take before its connection
        is dropped.
    """

    hook_name = "Snowflake (Sophia, pooled)"

    _pools: ClassVar[dict[tuple[Any, ...], ConnectionPool[Any]]] = {}
    _pools_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *args: Any,
        pool_min_size: int | None = None,
        pool_max_size: int | None = None,
        pool_health_check_interval: float | None = None,
        pool_acquire_timeout: float | None = None,
        pool_max_idle: float | None = None,
        pool_max_lifetime: float | None = None,
        pool_validation_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pool_overrides: dict[str, int | float | None] = {
            "pool_min_size": pool_min_size,
            "pool_max_size": pool_max_size,
            "pool_health_check_interval": pool_health_check_interval,
            "pool_acquire_timeout": pool_acquire_timeout,
            "pool_max_idle": pool_max_idle,
            "pool_max_lifetime": pool_max_lifetime,
            "pool_validation_timeout": pool_validation_timeout,
        }
        self._pool: ConnectionPool[Any] | None = None

    def pool_config(self) -> PoolConfig:
        """Resolve the pool settings: argument, connection extra, ``[sophia]`` option, default.

        :raises ValueError: when an extra or option does not parse, or the settings are invalid.
        """
        extras = self.connection.extra_dejson
        values: dict[str, Any] = {}
        for option, field in POOL_OPTIONS.items():
            explicit = self.pool_overrides[option]
            if explicit is None:
                explicit = self._extra_number(option, extras.get(option))
            values[field] = setting(option, explicit)
        return PoolConfig(**values)

    def _extra_number(self, option: str, raw: Any) -> int | float | None:
        if raw is None or raw == "":
            return None
        kind: Callable[[Any], int | float] = type(DEFAULTS[option][0])
        try:
            return kind(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"Connection {self.get_conn_id()!r} has extra {option}={raw!r}, which is not a valid "
                f"{kind.__name__}; fix the connection's extras."
            ) from None

    def get_pool(self) -> ConnectionPool[Any]:
        """Return this process's pool for the connection id, session arguments and pool settings.

        :raises ValueError: when the connection's settings cannot work (for example a private
            key that does not load with its passphrase), at once instead of after the pool's
            connect retries ran into ``pool_acquire_timeout``.
        """
        if self._pool is not None and not self._pool.closed:
            return self._pool
        config = self.pool_config()
        self._get_conn_params()  # resolves and checks every setting, the private key included
        session = json.dumps([getattr(self, name) for name in SESSION_ARGUMENTS], sort_keys=True, default=str)
        key = (self.get_conn_id(), session, config)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None or pool.closed:
                name = self.get_conn_id()
                pool = ConnectionPool(
                    super().get_conn,
                    config,
                    name=name,
                    reset=rollback_open_transaction,
                    is_disconnect=is_session_lost,
                    on_stats=PoolStatsEmitter(name),
                )
                self._pools[key] = pool
                self.log.info(
                    "Opened connection pool %s (%s)",
                    name,
                    ", ".join(f"{f.name}={getattr(config, f.name)}" for f in fields(config)),
                )
        self._pool = pool
        return pool

    def get_conn(self) -> PooledConnection:  # type: ignore[override]
        """Check a connection out of the pool; its ``close()`` returns it to the pool.

        :raises PoolTimeout: when none became available within the acquire timeout.
        """
        return self.get_pool().acquire()

    def pooled_connection(self, timeout: float | None = None) -> Any:
        """Return a context manager that lends a raw ``SnowflakeConnection`` from the pool.

        :param timeout: seconds to wait; the pool's acquire timeout when ``None``.
        """
        return self.get_pool().connection(timeout)

    @classmethod
    def close_all_pools(cls, timeout: float = 5.0) -> None:
        """Close every pool this process opened through the hook.

        :param timeout: seconds each pool may take to close its idle connections.
        """
        with cls._pools_lock:
            pools = list(cls._pools.values())
            cls._pools.clear()
        for pool in pools:
            pool.close(timeout)
