"""``PerformanceProfileOperator``: run before/after profiling scenarios in a task."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator

from airflow_provider_sophia.exceptions import RegressionDetected
from airflow_provider_sophia.profiling.baseline import (
    DEFAULT_TABLE,
    BaselineStore,
    DirectoryStore,
    TableStore,
)
from airflow_provider_sophia.profiling.progress import Progress
from airflow_provider_sophia.profiling.results import RunResult
from airflow_provider_sophia.profiling.runner import Outcome, publish, run_scenarios
from airflow_provider_sophia.profiling.summary import summary, text_table

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_sophia.hooks.snowflake import SophiaSnowflakeHook

T = TypeVar("T")


class PerformanceProfileOperator(BaseOperator):
    """Run profiling scenarios (naive "before" vs our "after"), report them and compare with a baseline.

    Writes ``results.json``, ``report.md`` and PNG charts to ``output_dir``, logs a summary
    table and returns a small JSON-able summary (every metric, the regressions and the file
    paths) as its XCom return value.

    :param scenarios: scenario names (``pool_shutdown``, ``pool_acquire``, ``ingest_memory``,
        ``http_retry``) or ``{name: {parameter: value}}``. Templated.
    :param baseline: a baseline directory or results JSON file to compare with; ``None`` for
        none (unless ``snowflake_conn_id`` is set). Templated.
    :param tolerance: allowed relative worsening per metric before it is a regression. Templated.
    :param fail_on_regression: templated; raise :class:`RegressionDetected` on a regression; otherwise
        regressions are only logged and reported.
    :param output_dir: where results, report and charts go; by default
        ``$AIRFLOW_HOME/profiling/<dag_id>/<run_id>/<task_id>``. Templated.
    :param size: ``default`` (full sizes) or ``small`` (reduced sizes). Templated.
    :param save_baseline: templated; also store this run as the newest baseline (in ``baseline``
        or the table).
    :param snowflake_conn_id: keep baselines in the table ``baseline_table`` of this warehouse
        connection instead of ``baseline``.
    :param baseline_table: the baselines table (validated and quoted). Templated.
    """

    template_fields: Sequence[str] = (
        "scenarios",
        "baseline",
        "output_dir",
        "baseline_table",
        "size",
        "tolerance",
        "fail_on_regression",
        "save_baseline",
    )
    template_fields_renderers = {"scenarios": "json"}
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        scenarios: Sequence[str] | Mapping[str, Mapping[str, Any] | None],
        baseline: str | None = None,
        tolerance: float = 0.2,
        fail_on_regression: bool = False,
        output_dir: str | None = None,
        size: str = "default",
        save_baseline: bool = False,
        snowflake_conn_id: str | None = None,
        baseline_table: str = DEFAULT_TABLE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scenarios = scenarios
        self.baseline = baseline
        self.tolerance = tolerance
        self.fail_on_regression = fail_on_regression
        self.output_dir = output_dir
        self.size = size
        self.save_baseline = save_baseline
        self.snowflake_conn_id = snowflake_conn_id
        self.baseline_table = baseline_table
        self._cancel: threading.Event | None = None

    @cached_property
    def hook(self) -> SophiaSnowflakeHook:
        """Return the warehouse hook of ``snowflake_conn_id``."""
        from airflow_provider_sophia.hooks.snowflake import SophiaSnowflakeHook

        return SophiaSnowflakeHook(snowflake_conn_id=self.snowflake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the scenarios, compare, write the report and return the summary."""
        self._cancel = threading.Event()
        baseline = self._with_store(self._load_baseline)
        run = run_scenarios(self.scenarios, size=self.size, progress=self._progress(), cancel=self._cancel)
        outcome = publish(run, self._output_dir(context), baseline=baseline, tolerance=self.tolerance)
        self.log.info("Profiling results:\n%s", text_table(run, outcome.comparison))
        self.log.info("Report: %s", outcome.report.markdown)
        if self.save_baseline:
            where = self._with_store(lambda store: store.save(run) if store else None)
            self.log.info("Saved run %s as the newest baseline in %s", run.run_id, where)
        self._check_regressions(outcome)
        return summary(
            run,
            outcome.comparison,
            report=str(outcome.report.markdown),
            results=str(outcome.results_path),
            charts={name: str(path) for name, path in outcome.report.charts.items()},
        )

    def on_kill(self) -> None:
        """Stop the run at the running scenario's next progress report."""
        if self._cancel is not None:
            self._cancel.set()

    def _with_store(self, use: Callable[[BaselineStore | None], T]) -> T:
        """Call ``use(store)`` with the configured baseline store (``None`` when there is none)."""
        if self.snowflake_conn_id:
            conn = self.hook.get_conn()
            try:
                return use(TableStore(conn, self.baseline_table))
            finally:
                conn.close()
        return use(DirectoryStore(self.baseline) if self.baseline else None)

    def _load_baseline(self, store: BaselineStore | None) -> RunResult | None:
        if store is None:
            return None
        try:
            baseline = store.load()
        except (FileNotFoundError, LookupError) as error:
            self.log.warning("No baseline to compare with yet: %s", error)
            return None
        self.log.info("Comparing with baseline run %s of %s", baseline.run_id, baseline.created_at)
        return baseline

    def _output_dir(self, context: Context) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
        parts = (self.dag_id, context["run_id"], self.task_id)
        return home.joinpath("profiling", *(re.sub(r"[^A-Za-z0-9_.-]", "_", str(part)) for part in parts))

    def _progress(self) -> Progress:
        """Return a progress callback that logs at every tenth of the run."""
        logged = [-1]

        def report(fraction: float, label: str) -> None:
            tenth = int(fraction * 10)
            if tenth > logged[0]:
                logged[0] = tenth
                self.log.info("Profiling %3.0f%%: %s", fraction * 100, label)

        return report

    def _check_regressions(self, outcome: Outcome) -> None:
        if not outcome.regressions:
            return
        lines = "; ".join(
            f"{d.scenario} {d.metric} {d.baseline:.4g} -> {d.current:.4g} {d.unit} ({d.change:+.0%})"
            for d in outcome.regressions
        )
        baseline_id = outcome.comparison.baseline_run_id if outcome.comparison else "?"
        message = (
            f"{len(outcome.regressions)} metric(s) regressed beyond the tolerance of {self.tolerance:.0%} "
            f"against baseline run {baseline_id}: {lines}. See {outcome.report.markdown}."
        )
        if self.fail_on_regression:
            raise RegressionDetected(
                message + " Fix the regression or save a new baseline if it is intended."
            )
        self.log.warning("%s (fail_on_regression is off)", message)
