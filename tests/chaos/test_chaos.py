"""Chaos: every scenario, over several seeds, loses and duplicates nothing; failures are typed."""

from __future__ import annotations

import re

import pytest

from tests.chaos.scenarios import SCENARIOS, SEEDS, Services

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_loses_and_duplicates_nothing(name: str, seed: int, request: pytest.FixtureRequest) -> None:
    scenario = SCENARIOS[name]
    dsn = request.getfixturevalue("postgres_dsn") if scenario.needs_postgres else None
    outcome = scenario.run(seed, Services(postgres_dsn=dsn))
    assert (outcome.lost, outcome.duplicated) == (0, 0), outcome
    assert outcome.faults > 0, outcome
    if scenario.surfaces is None:
        assert outcome.surfaced == 0, outcome
    else:
        assert outcome.surfaced == 1, outcome
        assert re.search(scenario.surfaces, str(outcome.error), re.DOTALL), outcome
