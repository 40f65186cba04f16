"""Chaos: every scenario, over several seeds, loses and duplicates nothing; failures are typed."""

from __future__ import annotations

import pytest

from tests.chaos.scenarios import SCENARIOS, SEEDS

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_loses_and_duplicates_nothing(name: str, seed: int) -> None:
    outcome = SCENARIOS[name](seed)
    assert (outcome.lost, outcome.duplicated) == (0, 0), outcome
    if "repeating cursor" in name:
        assert "a second time" in str(outcome.error)
    else:
        assert outcome.faults > 0, outcome
        assert outcome.surfaced == 0, outcome
