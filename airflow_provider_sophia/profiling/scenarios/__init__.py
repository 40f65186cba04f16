"""The before/after scenarios, by name.

Each scenario module has ``DESCRIPTION``, ``DEFAULTS`` (full-size parameters), ``SMALL``
(overrides for a quick run, used by the tests) and ``run(progress, **params)`` returning a
:class:`~airflow_provider_sophia.profiling.results.ScenarioResult`. Scenario modules import
the code they measure only when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from airflow_provider_sophia.profiling.results import ScenarioResult
from airflow_provider_sophia.profiling.scenarios import http_retry, ingest_memory, pool_acquire, pool_shutdown

#: Parameter sets: ``default`` (the full run) and ``small`` (reduced sizes, seconds per scenario).
SIZES = ("default", "small")


@dataclass(frozen=True)
class Scenario:
    """A registered scenario."""

    name: str
    description: str
    defaults: Mapping[str, Any]
    small: Mapping[str, Any]
    run: Callable[..., ScenarioResult]

    def parameters(self, size: str = "default", overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the effective parameters for ``size`` with ``overrides`` applied.

        :param size: one of :data:`SIZES`.
        :param overrides: explicit parameters; unknown names are refused.
        :raises ValueError: for an unknown size or parameter.
        """
        if size not in SIZES:
            raise ValueError(f"Unknown size {size!r}; use one of {', '.join(SIZES)}.")
        unknown = sorted(set(overrides or {}) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"Scenario {self.name!r} has no parameter {', '.join(unknown)}; "
                f"its parameters are {', '.join(sorted(self.defaults))}."
            )
        return dict(self.defaults) | (dict(self.small) if size == "small" else {}) | dict(overrides or {})


def _scenario(name: str, module: ModuleType) -> Scenario:
    return Scenario(name, module.DESCRIPTION, module.DEFAULTS, module.SMALL, module.run)


SCENARIOS: dict[str, Scenario] = {
    name: _scenario(name, module)
    for name, module in (
        ("pool_shutdown", pool_shutdown),
        ("pool_acquire", pool_acquire),
        ("ingest_memory", ingest_memory),
        ("http_retry", http_retry),
    )
}


def get_scenario(name: str) -> Scenario:
    """Return the scenario ``name``.

    :param name: a key of :data:`SCENARIOS`.
    :raises ValueError: when no scenario has that name.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"Unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}.") from None
