"""Run every chaos scenario over its seeds and print one table; write bench/results/chaos_report.json.

Run with ``python -m bench.chaos_report``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tests.chaos.scenarios import SCENARIOS, SEEDS, Services
from tests.conftest import POSTGRES_DSN

RESULTS = Path(__file__).resolve().parent / "results" / "chaos_report.json"
COLUMNS = (
    "scenario",
    "runs",
    "faults injected",
    "failures surfaced",
    "lost",
    "duplicated",
    "recovery s (max)",
)


def summarize(name: str, services: Services) -> dict[str, Any]:
    """Run scenario ``name`` once per seed and return its table row."""
    outcomes = [SCENARIOS[name].run(seed, services) for seed in SEEDS]
    return {
        "scenario": name,
        "runs": len(outcomes),
        "faults injected": sum(outcome.faults for outcome in outcomes),
        "failures surfaced": sum(outcome.surfaced for outcome in outcomes),
        "lost": sum(outcome.lost for outcome in outcomes),
        "duplicated": sum(outcome.duplicated for outcome in outcomes),
        "recovery s (max)": max(outcome.seconds for outcome in outcomes),
        "errors": sorted({outcome.error.split(":")[0] for outcome in outcomes if outcome.error}),
    }


def main() -> None:
    """Run the scenarios, print the table and write the JSON."""
    logging.basicConfig(level=logging.ERROR)
    services = Services(postgres_dsn=POSTGRES_DSN)  # SOPHIA_TEST_POSTGRES_DSN or the local service
    rows = [summarize(name, services) for name in SCENARIOS]
    widths = [max(len(column), *(len(str(row[column])) for row in rows)) for column in COLUMNS]
    print(" | ".join(column.ljust(width) for column, width in zip(COLUMNS, widths, strict=True)))
    print("-|-".join("-" * width for width in widths))
    for row in rows:
        print(
            " | ".join(str(row[column]).ljust(width) for column, width in zip(COLUMNS, widths, strict=True))
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"seeds": list(SEEDS), "scenarios": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
