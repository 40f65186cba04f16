"""The results of a profiling run: metrics that know which way is better, and JSON for them.

A run (:class:`RunResult`) holds one :class:`ScenarioResult` per scenario and the
environment it ran in. Its JSON form is versioned (:data:`FORMAT`, :data:`FORMAT_VERSION`)
so that a baseline saved today is still read, or refused with a clear message, later.
"""

from __future__ import annotations

import os
import platform
import sys
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Literal

import psutil

FORMAT = "airflow-provider-sophia/profiling"
FORMAT_VERSION = 1

#: Distributions whose versions describe the environment of a run.
PACKAGES = (
    "airflow-provider-sophia",
    "apache-airflow",
    "pandas",
    "pyarrow",
    "psycopg",
    "snowflake-connector-python",
    "fakesnow",
    "requests",
    "pybreaker",
    "psutil",
    "matplotlib",
)

Better = Literal["lower", "higher"]
Side = Literal["before", "after"]


@dataclass(frozen=True)
class Metric:
    """One measured number.

    :param value: the number, in ``unit``.
    :param unit: e.g. ``s``, ``MiB``, ``rows/s``, ``requests``.
    :param better: whether ``lower`` or ``higher`` values are better.
    :param side: ``before`` (the naive baseline implementation) or ``after`` (ours).
    :param capped: the measurement was cut off by a cap, so ``value`` is a lower bound.
    :param min_delta: absolute change (in ``unit``) below which a difference is noise.
    """

    value: float
    unit: str
    better: Better
    side: Side = "after"
    capped: bool = False
    min_delta: float = 0.0


@dataclass
class ScenarioResult:
    """The outcome of one scenario: comparable before/after metrics plus chart data.

    ``metrics`` are keyed ``"<side>.<name>"`` (e.g. ``after.close_p50_s``); ``series`` holds
    JSON-able data for the charts; ``notes`` are sentences for the report.
    """

    scenario: str
    parameters: dict[str, Any]
    metrics: dict[str, Metric] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def add(
        self, name: str, value: float, unit: str, better: Better, side: Side = "after", **kw: Any
    ) -> None:
        """Add the metric ``<side>.<name>``.

        :param name: the metric's name without its side.
        :param value: the number.
        :param unit: its unit.
        :param better: ``lower`` or ``higher``.
        :param side: ``before`` or ``after``.
        :param kw: ``capped`` and ``min_delta`` of :class:`Metric`.
        """
        self.metrics[f"{side}.{name}"] = Metric(float(value), unit, better, side, **kw)

    def value(self, key: str) -> float:
        """Return the value of the metric ``key`` (``"<side>.<name>"``)."""
        return self.metrics[key].value

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioResult:
        """Build a result from :meth:`to_dict` output.

        :param data: the dict.
        """
        metrics = {key: Metric(**value) for key, value in data.get("metrics", {}).items()}
        return cls(
            scenario=data["scenario"],
            parameters=dict(data.get("parameters", {})),
            metrics=metrics,
            series=dict(data.get("series", {})),
            notes=list(data.get("notes", [])),
            wall_s=float(data.get("wall_s", 0.0)),
        )


def format_value(value: float, unit: str) -> str:
    """Return ``value`` readable for its unit (seconds scaled to ms or µs, thousands separated).

    :param value: the number.
    :param unit: its unit.
    """
    if unit == "s":
        if abs(value) >= 1:
            return f"{value:.3g} s"
        if abs(value) >= 1e-3:
            return f"{value * 1e3:.3g} ms"
        return f"{value * 1e6:.3g} µs"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def environment() -> dict[str, Any]:
    """Describe this machine and its package versions (what a result depends on)."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "packages": versions,
    }


@dataclass
class RunResult:
    """A profiling run: its scenarios' results and the environment they ran in."""

    results: list[ScenarioResult]
    environment: dict[str, Any] = field(default_factory=environment)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def get(self, scenario: str) -> ScenarioResult | None:
        """Return the result of ``scenario`` in this run, or ``None``.

        :param scenario: the scenario's name.
        """
        return next((result for result in self.results if result.scenario == scenario), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the versioned JSON-able form of the run."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "environment": self.environment,
            "results": [result.to_dict() for result in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Build a run from :meth:`to_dict` output.

        :param data: the dict.
        :raises ValueError: when it is not a profiling run of a version this code reads.
        """
        if data.get("format") != FORMAT:
            raise ValueError(
                f"Not a profiling result: format is {data.get('format')!r}, expected {FORMAT!r}."
            )
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"Profiling result version {data.get('version')!r} is not supported (this code reads "
                f"version {FORMAT_VERSION}); rerun the scenarios to make a new baseline."
            )
        return cls(
            results=[ScenarioResult.from_dict(item) for item in data["results"]],
            environment=dict(data["environment"]),
            created_at=str(data["created_at"]),
            run_id=str(data["run_id"]),
        )
