"""Gong REST v2: a bounded, rate-limited, breaker-guarded client and a local simulator (no Airflow)."""

from __future__ import annotations
