"""Chaos scenarios shared by ``tests/chaos`` and ``bench/chaos_report.py``.

Each scenario runs once per seed against real local parts (the Gong simulator on loopback)
and returns a :class:`Outcome`: faults injected, typed errors surfaced to the user, records
lost or duplicated, and the time the run took to recover and finish.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_sophia.exceptions import GongError, SophiaError
from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.gong.simulator import Fault, GongSimulator, Settings

#: calls each Gong run fetches (pages of PAGE_SIZE).
CALLS, PAGE_SIZE = 300, 20


@dataclass
class Outcome:
    """What one run of a scenario did.

    :param faults: faults the fault injector applied.
    :param surfaced: typed errors raised to the caller (expected ones included).
    :param lost: records or rows missing from the result.
    :param duplicated: records or rows delivered more than once.
    :param seconds: time from start until the data was complete (or the error surfaced).
    :param error: the surfaced error's type and message, if any.
    """

    faults: int = 0
    surfaced: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


def _client(sim: GongSimulator) -> GongClient:
    return GongClient(
        sim.url,
        sim.access_key,
        sim.access_key_secret,
        max_attempts=8,
        base_delay=0.01,
        max_delay=0.05,
        rate_limit_per_second=None,
        timeout=2.0,
        max_retry_after=5.0,
        breaker_fail_max=100,
    )


def gong_run(faults: list[Fault], seed: int, *, expect_error: type[SophiaError] | None = None) -> Outcome:
    """Fetch every call through ``faults``; count what was lost, duplicated and surfaced.

    :param faults: faults injected into the simulator.
    :param seed: seed of the data and of the fault draws.
    :param expect_error: the typed error this scenario must surface (then nothing is compared).
    """
    settings = Settings(rate_limit=None)
    with GongSimulator(seed=seed, users=5, calls=CALLS, page_size=PAGE_SIZE, settings=settings) as sim:
        for fault in faults:
            sim.add_fault(fault)
        expected = [record["id"] for record in sim.data.select("calls")]
        outcome = Outcome()
        started = time.monotonic()
        seen: list[str] = []
        try:
            with _client(sim) as client:
                seen = [record["id"] for record in client.iter_calls()]
        except SophiaError as error:
            outcome.surfaced = 1
            outcome.error = f"{type(error).__name__}: {error}"
            if expect_error is None or not isinstance(error, expect_error):
                raise
        outcome.seconds = round(time.monotonic() - started, 3)
        outcome.faults = sum(entry["fault"] is not None for entry in sim.requests())
    if expect_error is None:
        counts = Counter(seen)
        outcome.lost = len(set(expected) - set(counts))
        outcome.duplicated = sum(count - 1 for count in counts.values())
    elif outcome.surfaced == 0:
        raise AssertionError(f"expected {expect_error.__name__}, but the run completed")
    return outcome


def _gong(faults: Callable[[], list[Fault]], **kwargs: Any) -> Callable[[int], Outcome]:
    return lambda seed: gong_run(faults(), seed, **kwargs)


#: scenario name -> run(seed).
SCENARIOS: dict[str, Callable[[int], Outcome]] = {
    "gong: 5xx bursts": _gong(
        lambda: [Fault("status", status=503, rate=0.3), Fault("status", status=502, count=3)]
    ),
    "gong: 429 storm with Retry-After": _gong(
        lambda: [Fault("status", status=429, rate=0.4, retry_after=0.05)]
    ),
    "gong: dropped connections": _gong(lambda: [Fault("drop", rate=0.25)]),
    "gong: truncated bodies": _gong(lambda: [Fault("truncate", rate=0.25)]),
    "gong: one malformed JSON body": _gong(lambda: [Fault("malformed", count=1)]),
    "gong: latency spikes": _gong(lambda: [Fault("latency", latency=0.2, rate=0.2)]),
    "gong: repeating cursor": _gong(lambda: [Fault("repeat_cursor", count=1)], expect_error=GongError),
}
#: seeds every scenario is repeated with.
SEEDS = (1, 2, 3)
