"""interleave: several iterators drained at once, bounded, and stopped cleanly."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_sophia.gong.parallel import interleave


class Boom(Exception):
    pass


def live_threads(prefix: str) -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_every_item_of_every_source_exactly_once() -> None:
    sources = [iter(range(start, start + 100)) for start in (0, 100, 200)]
    assert sorted(interleave(sources, name="t-all")) == list(range(300))
    assert live_threads("t-all") == []


def test_no_sources_yield_nothing() -> None:
    assert list(interleave([])) == []


def test_a_failing_source_stops_the_others_and_is_raised() -> None:
    produced = itertools.count()

    def endless() -> Iterator[int]:
        while True:
            yield next(produced)

    def failing() -> Iterator[int]:
        yield -1
        time.sleep(0.05)
        raise Boom("slice 2 failed")

    def slow_consumer() -> None:
        for _ in interleave([endless(), failing()], name="t-fail"):
            time.sleep(0.001)

    with pytest.raises(Boom, match="slice 2 failed"):
        slow_consumer()
    assert live_threads("t-fail") == []
    stopped_at = next(produced)
    time.sleep(0.1)
    assert next(produced) == stopped_at + 1  # nothing advanced the endless source any more


def test_buffering_is_bounded_and_closing_early_ends_every_thread() -> None:
    produced = itertools.count()

    def endless() -> Iterator[int]:
        while True:
            yield next(produced)

    items = interleave([endless(), endless()], name="t-close")
    assert next(items) >= 0
    time.sleep(0.2)  # a consumer that stalls: the sources wait instead of piling up items
    assert next(produced) <= 2 + 2 + 1 + 1  # queue of 2, one item in each thread, the one taken
    items.close()
    assert live_threads("t-close") == []
