from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pybreaker
import pytest

from airflow_provider_sophia.resilience import (
    BreakerGuard,
    CircuitOpenError,
    RateLimiter,
    RetryPolicy,
    parse_retry_after,
)

# --- Retry-After -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 1.5 ", 1.5), ("0", 0.0), ("-3", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0  # in the past: retry now


# --- retry policy ------------------------------------------------------------------


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=5.0)
    assert [policy.backoff_cap(retry) for retry in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    rng = random.Random(7)
    draws = [policy.backoff(3, rng) for _ in range(2000)]
    assert 0.0 <= min(draws) < 0.1
    assert 3.9 < max(draws) <= 4.0


def test_budget_stops_at_max_attempts() -> None:
    budget = RetryPolicy(max_attempts=3, base_delay=0.0).start()
    delays = []
    for _ in range(5):
        budget.attempts += 1
        delays.append(budget.next_delay())
    assert delays == [0.0, 0.0, None, None, None]


def test_budget_respects_the_deadline_and_retry_after() -> None:
    now = [0.0]
    budget = RetryPolicy(max_attempts=10, base_delay=0.0, deadline=10.0).start(clock=lambda: now[0])
    budget.attempts = 1
    assert budget.next_delay(retry_after=4.0) == 4.0  # Retry-After replaces the backoff
    now[0] = 7.0
    assert budget.remaining() == 3.0
    assert budget.next_delay(retry_after=4.0) is None  # would end after the deadline


def test_worst_case_bounds_the_whole_request() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=3.0)
    assert policy.worst_case_seconds(attempt_seconds=2.0) == (1 + 2 + 3) + 4 * 2.0
    assert RetryPolicy(max_attempts=4, deadline=5.0).worst_case_seconds(2.0) == 5.0


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_retry_after": -1.0}, {"deadline": 0.0}]
)
def test_policy_rejects_bad_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- rate limiter ------------------------------------------------------------------


def test_limiter_spaces_acquisitions_at_the_rate() -> None:
    limiter = RateLimiter(rate=20.0)
    started = time.monotonic()
    for _ in range(11):
        assert limiter.acquire()
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 1.0  # 10 intervals of 50 ms after the first (free) token


def test_limiter_burst_capacity() -> None:
    limiter = RateLimiter(rate=1.0, capacity=3)
    assert all(limiter.acquire(timeout=0) for _ in range(3))
    assert limiter.acquire(timeout=0) is False


def test_limiter_timeout_returns_false_at_once_and_takes_nothing() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=1.0, clock=lambda: now[0], sleep=lambda seconds: None)
    assert limiter.acquire(timeout=0)
    assert limiter.acquire(timeout=0.5) is False  # the next slot is 1 s away
    assert limiter.reserve(timeout=1.0) == 1.0  # the refused call reserved nothing
    now[0] += 5.0
    assert limiter.acquire(timeout=0)


def times_of_calls(threads: int, calls: int, call: Callable[[], float]) -> list[float]:
    """Run ``call`` ``calls`` times on each of ``threads`` threads; return the times it returned, sorted."""
    ended: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(calls):
            moment = call()
            with lock:
                ended.append(moment)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in workers), "a waiter hung"
    assert len(ended) == threads * calls
    return sorted(ended)


def test_limiter_threads_share_the_rate_without_deadlock() -> None:
    limiter = RateLimiter(rate=50.0)

    def acquire() -> float:
        limiter.acquire()
        return time.monotonic()

    started = time.monotonic()
    done = times_of_calls(8, 5, acquire)
    assert done[-1] - started >= 39 / 50.0 - 0.02
    # In any 0.2 s window at most 0.2 x rate (+1 for the window edge) acquisitions happen.
    assert max(sum(1 for t in done if start <= t < start + 0.2) for start in done) <= 11


def test_limiter_allows_capacity_calls_per_window_then_waits_a_whole_window() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=3.0, capacity=3, clock=lambda: now[0], sleep=lambda seconds: None)
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    now[0] = 0.5
    assert limiter.reserve() == pytest.approx(0.5)  # the second token is back at 1.0


def test_limiter_slot_window_starts_when_the_response_arrives() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, clock=lambda: now[0], sleep=lambda seconds: None)
    with limiter.slot() as granted:
        assert granted
        now[0] = 2.5  # a slow request: the server may have counted it only now
    assert limiter.reserve(timeout=0) is None
    assert limiter.reserve() == pytest.approx(1.0)  # one window after the response


def test_limiter_slot_in_flight_blocks_until_given_back_even_after_an_error() -> None:
    limiter = RateLimiter(rate=1000.0)

    def request_that_fails() -> None:
        with limiter.slot():
            with limiter.slot(timeout=0.05) as second:
                assert second is False  # the only token is held by the request in flight
            raise Boom

    with pytest.raises(Boom):
        request_that_fails()
    with limiter.slot(timeout=0.05) as third:
        assert third  # the error gave the token back


def test_limiter_slot_threads_never_exceed_capacity_in_a_window() -> None:
    limiter = RateLimiter(rate=40.0, capacity=4)

    def request() -> float:
        with limiter.slot():
            started = time.monotonic()
            time.sleep(0.005)
        return started

    starts = times_of_calls(6, 4, request)
    # A token is back 0.1 s after a call that took >= 5 ms: at most 4 calls start within 0.105 s.
    assert max(sum(1 for t in starts if start <= t < start + 0.105) for start in starts) <= 4


@pytest.mark.parametrize(
    "kwargs", [{"rate": 0.0}, {"rate": 1.0, "capacity": 0.5}, {"rate": 1.0, "capacity": 2.5}]
)
def test_limiter_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


# --- breaker guard -----------------------------------------------------------------


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


def _fail(guard: BreakerGuard, error: Exception) -> None:
    with pytest.raises(type(error)), guard.attempt():
        raise error


def test_guard_opens_after_fail_max_refuses_then_half_opens_and_closes() -> None:
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=0.2, name="test")
    guard = BreakerGuard(breaker, counts=lambda error: isinstance(error, Boom))
    for _ in range(2):
        _fail(guard, Boom())
    assert guard.state == "closed"
    _fail(guard, Ignored())  # not counted: a success for the breaker, counter reset
    assert breaker.fail_counter == 0
    for _ in range(3):
        _fail(guard, Boom())
    assert guard.state == "open"
    ran = []
    with pytest.raises(CircuitOpenError) as refused, guard.attempt():
        ran.append(1)
    assert ran == []
    assert 0 < refused.value.remaining <= 0.2
    time.sleep(0.25)
    with guard.attempt():
        assert guard.state == "half-open"
    assert guard.state == "closed"


def test_guard_trial_failure_reopens() -> None:
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=0.1)
    guard = BreakerGuard(breaker)
    _fail(guard, Boom())
    assert guard.state == "open"
    time.sleep(0.15)
    _fail(guard, Boom())
    assert guard.state == "open"
    assert guard.open_remaining() > 0


def test_guard_allows_one_trial_at_a_time() -> None:
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=0.05)
    guard = BreakerGuard(breaker)
    _fail(guard, Boom())
    time.sleep(0.1)
    with guard.attempt(), pytest.raises(CircuitOpenError, match="trial call is in flight"), guard.attempt():
        pass
    assert guard.state == "closed"


def test_guard_does_not_serialise_concurrent_calls() -> None:
    guard = BreakerGuard(pybreaker.CircuitBreaker(fail_max=5))

    def call() -> None:
        with guard.attempt():
            time.sleep(0.2)

    threads = [threading.Thread(target=call) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # pybreaker's call() would hold its lock across each call: 8 x 0.2 s = 1.6 s.
    assert time.monotonic() - started < 0.8
