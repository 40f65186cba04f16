"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_sophia import __version__
from airflow_provider_sophia.hooks.gong_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_sophia.settings import DEFAULTS, SECTION

_TYPE_NAMES = {int: "integer", float: "float", str: "string"}


def _config() -> dict[str, Any]:
    options = {
        key: {
            "description": description,
            "version_added": "0.1.0",
            "type": _TYPE_NAMES[type(default)],
            "example": str(default),
            "default": str(default),
        }
        for key, (default, description) in DEFAULTS.items()
    }
    return {
        SECTION: {
            "description": "Defaults of airflow-provider-sophia; an explicit argument or connection "
            "extra always wins.",
            "options": options,
        }
    }


def get_provider_info() -> dict[str, Any]:
    """Return the provider's hooks, operators, connection types and configuration."""
    return {
        "package-name": "airflow-provider-sophia",
        "name": "Sophia",
        "description": "Reliable, fast, bounded-memory ELT into Snowflake: pooled connections, "
        "a resilient Gong client, chunked SQL ingestion, Cortex enrichment and profiling.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Sophia",
                "external-doc-url": "https://github.com/sophia-data/airflow-provider-sophia",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Sophia",
                "python-modules": [
                    "airflow_provider_sophia.hooks.snowflake",
                    "airflow_provider_sophia.hooks.snowflake_pool",
                    "airflow_provider_sophia.hooks.gong",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "Sophia",
                "python-modules": [
                    "airflow_provider_sophia.operators.sql_to_snowflake",
                    "airflow_provider_sophia.operators.gong_to_snowflake",
                    "airflow_provider_sophia.operators.cortex",
                    "airflow_provider_sophia.operators.profiling",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_sophia.hooks.gong.GongHook",
                "connection-type": "gong",
                "hook-name": "Gong",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "config": _config(),
    }
