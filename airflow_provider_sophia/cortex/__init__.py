"""Snowflake Cortex enrichment (no Airflow): models, SQL utils, error/result handlers and the service.

Imports flow one way: :mod:`.core` uses :mod:`.models`, :mod:`.utils` and :mod:`.handlers`;
``utils`` and ``handlers`` use only ``models``; nothing imports ``core`` back. This package
module imports nothing so that each module can be imported on its own.
"""
