"""Airflow provider for reliable, fast, bounded-memory ELT into Snowflake."""

from __future__ import annotations

__version__ = "0.1.0"
