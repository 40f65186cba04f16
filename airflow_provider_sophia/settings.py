"""Provider-wide defaults, tunable in ``airflow.cfg`` (``[sophia]``) or ``AIRFLOW__SOPHIA__*``.

Precedence everywhere: an explicit argument, then the connection's extras, then this
section, then the built-in default below. Only hooks and operators call :func:`setting`;
core modules take plain arguments.
"""

from __future__ import annotations

from typing import Any, TypeVar

SECTION = "sophia"

T = TypeVar("T", int, float, str)

#: option -> (built-in default, description); the provider info's ``config`` is built from this.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "pool_min_size": (1, "Connections a Snowflake pool keeps open."),
    "pool_max_size": (8, "Most connections a Snowflake pool opens."),
    "pool_health_check_interval": (60.0, "Seconds between health checks of idle pooled connections."),
    "pool_acquire_timeout": (30.0, "Seconds a task waits for a pooled connection before PoolTimeout."),
    "pool_max_idle": (300.0, "Seconds an idle connection above min_size is kept."),
    "pool_max_lifetime": (3600.0, "Seconds after which a pooled connection is replaced."),
    "pool_validation_timeout": (5.0, "Seconds a health check may take before the connection is dropped."),
    "gong_max_attempts": (5, "Attempts per Gong request, the first included."),
    "gong_base_delay": (1.0, "Base delay (seconds) of the exponential backoff between Gong retries."),
    "gong_max_delay": (60.0, "Cap (seconds) of one backoff delay between Gong retries."),
    "gong_rate_limit_per_second": (
        3.0,
        "Client-side request rate towards Gong: that many calls in any one-second window, each "
        "counted until its response has arrived.",
    ),
    "gong_timeout": (60.0, "Read timeout (seconds) of one Gong request."),
    "gong_max_retry_after": (300.0, "Longest Retry-After (seconds) the client sleeps; longer raises."),
    "ingest_chunk_size": (5000, "Rows per chunk read from a source database."),
    "ingest_batch_size": (1000, "Rows fetched from the source per round trip."),
    "ingest_file_size_mb": (64, "Size (MiB) at which a staged parquet file rolls over."),
    "ingest_upload_parallelism": (4, "Staged files uploaded to Snowflake at once."),
}


def setting(key: str, explicit: T | None = None) -> T:
    """Return ``explicit`` when given, else ``[sophia] key`` from Airflow's config, else the default.

    :param key: an option name from :data:`DEFAULTS`.
    :param explicit: the caller's argument; ``None`` means "not given".
    :raises ValueError: when the configured value does not parse as the default's type.
    """
    if explicit is not None:
        return explicit
    default = DEFAULTS[key][0]
    from airflow.configuration import conf

    raw = conf.get(SECTION, key, fallback=None)
    if raw is None or raw == "":
        return default
    try:
        return type(default)(raw)
    except ValueError:
        raise ValueError(
            f"[{SECTION}] {key} = {raw!r} is not a valid {type(default).__name__}; "
            f"fix airflow.cfg or AIRFLOW__{SECTION.upper()}__{key.upper()}."
        ) from None
