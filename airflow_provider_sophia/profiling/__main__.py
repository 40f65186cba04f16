"""Command line: ``python -m airflow_provider_sophia.profiling run|compare|report|list``.

Examples::

    python -m airflow_provider_sophia.profiling run                      # every scenario, full size
    python -m airflow_provider_sophia.profiling run pool_shutdown --size small
    python -m airflow_provider_sophia.profiling run ingest_memory --set ingest_memory.sizes=[10000,100000]
    python -m airflow_provider_sophia.profiling run --baseline perf/ --fail-on-regression
    python -m airflow_provider_sophia.profiling run --save-baseline perf/
    python -m airflow_provider_sophia.profiling compare out/results.json perf/
    python -m airflow_provider_sophia.profiling report out/results.json --output report.md

Exit status: 0 on success, 1 when ``--fail-on-regression`` (run) or ``compare`` finds a
regression, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_provider_sophia.profiling.baseline import DirectoryStore
from airflow_provider_sophia.profiling.compare import compare
from airflow_provider_sophia.profiling.progress import ProgressBar, silent
from airflow_provider_sophia.profiling.report import write_report
from airflow_provider_sophia.profiling.runner import publish, run_scenarios
from airflow_provider_sophia.profiling.scenarios import SCENARIOS, SIZES
from airflow_provider_sophia.profiling.summary import text_table


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse ``scenario.param=value`` items (value as JSON, else a string) into overrides.

    :param items: the ``--set`` arguments.
    :raises ValueError: when an item is not of that form.
    """
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        scenario, dot, param = key.partition(".")
        if not (sep and dot and scenario and param):
            raise ValueError(f"--set {item!r}: expected scenario.param=value, e.g. pool_acquire.threads=16")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides.setdefault(scenario, {})[param] = value
    return overrides


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_sophia.profiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run scenarios, write results, report and charts")
    run.add_argument(
        "scenarios", nargs="*", default=[], help=f"scenarios to run, all when omitted: {', '.join(SCENARIOS)}"
    )
    run.add_argument("--size", choices=SIZES, default="default", help="full run or reduced sizes")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SCENARIO.PARAM=VALUE",
        help="override a parameter (JSON value), repeatable",
    )
    run.add_argument(
        "--output-dir",
        type=Path,
        default=Path("profiling-results"),
        help="where results.json, report.md and the charts go",
    )
    run.add_argument("--report", type=Path, help="markdown report path (default OUTPUT_DIR/report.md)")
    run.add_argument("--charts-dir", type=Path, help="chart directory (default OUTPUT_DIR)")
    run.add_argument(
        "--baseline", type=Path, help="baseline run: a results JSON file or a baseline directory"
    )
    run.add_argument("--tolerance", type=float, default=0.2, help="allowed relative worsening (default 0.2)")
    run.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a metric regressed")
    run.add_argument(
        "--save-baseline", type=Path, metavar="DIR", help="also store this run in a baseline directory"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    cmp = commands.add_parser("compare", help="compare a results file with a baseline; exit 1 on regression")
    cmp.add_argument("current", type=Path, help="results JSON file (or baseline directory: its newest run)")
    cmp.add_argument("baseline", type=Path, help="baseline results JSON file or baseline directory")
    cmp.add_argument("--tolerance", type=float, default=0.2)

    rep = commands.add_parser("report", help="write the markdown report and charts of a results file")
    rep.add_argument("results", type=Path, help="results JSON file (or baseline directory: its newest run)")
    rep.add_argument(
        "--output", type=Path, default=Path("profiling-report.md"), help="markdown file to write"
    )
    rep.add_argument("--charts-dir", type=Path, help="chart directory (default: beside the report)")
    rep.add_argument("--baseline", type=Path, help="baseline to compare with in the report")
    rep.add_argument("--tolerance", type=float, default=0.2)

    commands.add_parser("list", help="list the scenarios and their parameters")
    return parser


def _run(args: argparse.Namespace) -> int:
    names = args.scenarios or list(SCENARIOS)
    overrides = parse_overrides(args.overrides)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"--set names scenario(s) {', '.join(unknown)} that are not being run.")
    baseline = DirectoryStore(args.baseline).load() if args.baseline else None
    progress = silent if args.quiet else ProgressBar()
    run = run_scenarios({name: overrides.get(name) for name in names}, size=args.size, progress=progress)
    outcome = publish(
        run,
        args.output_dir,
        baseline=baseline,
        tolerance=args.tolerance,
        report_path=args.report,
        charts_dir=args.charts_dir,
    )
    if args.save_baseline:
        print(f"baseline saved: {DirectoryStore(args.save_baseline).save(run)}")
    print(text_table(run, outcome.comparison))
    print(f"\nreport: {outcome.report.markdown}\nresults: {outcome.results_path}")
    for delta in outcome.regressions:
        print(
            f"REGRESSION {delta.scenario} {delta.metric}: {delta.baseline:.4g} -> {delta.current:.4g} "
            f"({delta.change:+.1%} worse, tolerance {args.tolerance:.0%})",
            file=sys.stderr,
        )
    return 1 if outcome.regressions and args.fail_on_regression else 0


def _compare(args: argparse.Namespace) -> int:
    current = DirectoryStore(args.current).load()
    comparison = compare(current, DirectoryStore(args.baseline).load(), args.tolerance)
    print(text_table(current, comparison))
    print(
        f"\n{len(comparison.regressions)} regression(s) in {len(comparison.deltas)} compared metrics "
        f"(tolerance {args.tolerance:.0%})."
    )
    return 1 if comparison.regressions else 0


def _report(args: argparse.Namespace) -> int:
    run = DirectoryStore(args.results).load()
    comparison = compare(run, DirectoryStore(args.baseline).load(), args.tolerance) if args.baseline else None
    report = write_report(run, args.output, charts_dir=args.charts_dir, comparison=comparison)
    print(f"report: {report.markdown}")
    for path in report.charts.values():
        print(f"chart: {path}")
    return 0


def _list() -> int:
    for scenario in SCENARIOS.values():
        print(f"{scenario.name}: {scenario.description}")
        print(f"    parameters: {json.dumps(dict(scenario.defaults))}")
        print(f"    --size small: {json.dumps(dict(scenario.small))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    :param argv: arguments without the program name; ``sys.argv[1:]`` when ``None``.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "report":
            return _report(args)
        return _list()
    except (ValueError, LookupError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
