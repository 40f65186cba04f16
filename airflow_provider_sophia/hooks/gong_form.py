"""The Gong connection form: extras, labels and relabelling, as plain data (no Airflow import).

The provider info declares these (``conn-fields``, ``ui-field-behaviour``) so that Airflow
renders the form without importing the hook; :class:`~airflow_provider_sophia.hooks.gong.GongHook`
reads the same data.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_sophia.gong.client import DEFAULT_BASE_URL
from airflow_provider_sophia.settings import DEFAULTS

#: connection extra -> ([sophia] option or None, type, label, description); all optional.
EXTRAS: dict[str, tuple[str | None, type, str, str]] = {
    "max_attempts": ("gong_max_attempts", int, "Max attempts", DEFAULTS["gong_max_attempts"][1]),
    "base_delay": ("gong_base_delay", float, "Base delay (s)", DEFAULTS["gong_base_delay"][1]),
    "max_delay": ("gong_max_delay", float, "Max delay (s)", DEFAULTS["gong_max_delay"][1]),
    "rate_limit_per_second": (
        "gong_rate_limit_per_second",
        float,
        "Rate limit (requests/s)",
        DEFAULTS["gong_rate_limit_per_second"][1],
    ),
    "timeout": ("gong_timeout", float, "Read timeout (s)", DEFAULTS["gong_timeout"][1]),
    "max_retry_after": (
        "gong_max_retry_after",
        float,
        "Max Retry-After (s)",
        DEFAULTS["gong_max_retry_after"][1],
    ),
    "deadline": (None, float, "Request deadline (s)", "Seconds one request may take, retries included."),
    "breaker_redis_url": (
        None,
        str,
        "Breaker Redis URL",
        "redis://host:6379/0 to share the circuit breaker between all workers.",
    ),
    "breaker_fail_max": (None, int, "Breaker failures", "Consecutive 5xx/network failures that open it."),
    "breaker_reset_timeout": (None, float, "Breaker reset (s)", "Seconds the breaker stays open."),
}

_JSON_TYPES = {int: "integer", float: "number", str: "string"}

#: declarative form fields, in the provider info's ``conn-fields`` format (Airflow >= 3.2).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    name: {"label": label, "description": description, "schema": {"type": [_JSON_TYPES[kind], "null"]}}
    for name, (_, kind, label, description) in EXTRAS.items()
}

#: field relabelling, in the provider info's ``ui-field-behaviour`` format.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "Base URL", "login": "Access Key", "password": "Access Key Secret"},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "login": "Gong API access key",
        "password": "Gong API access key secret",
        "extra": '{"rate_limit_per_second": 3, "max_attempts": 5, "breaker_redis_url": "redis://..."}',
    },
}
