"""Run the benchmarks, each in its own process: ``python -m bench [NAME ...]``.

Every benchmark runs our code and the alternatives side by side in one run, prints a table
with ratios and writes ``bench/results/<name>.json``. The last step reruns the profiling
scenarios and regenerates the report and the charts the README embeds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("pool_bench", "gong_bench", "ingest_bench", "profiler_overhead", "chaos_report", "soak")
PROFILING = [
    "-m",
    "airflow_provider_sophia.profiling",
    "run",
    "--output-dir",
    "bench/results/profiling",
    "--report",
    "bench/results/profiling_report.md",
    "--charts-dir",
    "docs/img/profiling",
]


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all when none is named) and the profiling report."""
    unknown = sorted(set(argv) - {*BENCHMARKS, "profiling"})
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {[*BENCHMARKS, 'profiling']}", file=sys.stderr)
        return 2
    selected = argv or [*BENCHMARKS, "profiling"]
    failed = []
    for name in selected:
        command = PROFILING if name == "profiling" else ["-m", f"bench.{name}"]
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        if subprocess.run([sys.executable, *command], cwd=ROOT, check=False).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
