"""Bounded retries, a token-bucket rate limiter and circuit-breaker glue (no Airflow).

* :class:`RetryPolicy` bounds one logical request: at most ``max_attempts`` attempts,
  full-jitter exponential backoff capped by ``max_delay``, an optional overall deadline,
  and ``Retry-After`` (seconds or HTTP-date) honoured up to ``max_retry_after``.
* :class:`RateLimiter` is a thread-safe token bucket ("N calls per window") that hands out
  future slots under a lock and sleeps outside it, so waiters can neither deadlock nor
  hang unresolved; a token held by a request counts until its response has arrived.
* :class:`BreakerGuard` drives a :class:`pybreaker.CircuitBreaker` through its state
  API. ``CircuitBreaker.call()`` holds one lock for the whole wrapped call and so
  serialises every caller; the guard only takes the breaker's lock to record outcomes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import pybreaker

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or ``None`` when absent or invalid.

    :param value: the header value: delay seconds (``"120"``) or an HTTP-date.
    :param now: the current time for an HTTP-date; the system clock (UTC) by default.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one logical request.

    :param max_attempts: attempts per request, the first included (>= 1).
    :param base_delay: backoff before the second attempt is drawn from ``[0, base_delay]``.
    :param max_delay: cap of one backoff delay.
    :param deadline: seconds one request may take in total, retries and waits included;
        ``None`` for no deadline beyond ``max_attempts``.
    :param max_retry_after: longest ``Retry-After`` the caller agrees to sleep.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    deadline: float | None = None
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}.")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}.")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError(f"deadline must be positive seconds or None, got {self.deadline!r}.")

    def backoff_cap(self, retry: int) -> float:
        """Return the largest backoff before retry number ``retry`` (1 = the second attempt).

        :param retry: how many attempts have failed so far (>= 1).
        """
        return min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Return a full-jitter backoff: uniform in ``[0, backoff_cap(retry)]``.

        :param retry: how many attempts have failed so far (>= 1).
        :param rng: the random source; the module's by default.
        """
        return (rng or random).uniform(0.0, self.backoff_cap(retry))

    def worst_case_seconds(self, attempt_seconds: float) -> float:
        """Return the longest one request can take without ``Retry-After`` waits.

        :param attempt_seconds: the longest a single attempt can take (its timeouts).
        """
        total = sum(self.backoff_cap(retry) for retry in range(1, self.max_attempts))
        total += self.max_attempts * attempt_seconds
        return total if self.deadline is None else min(total, self.deadline)

    def start(self, clock: Clock = time.monotonic) -> RetryBudget:
        """Return the attempt budget of one new request.

        :param clock: monotonic clock in seconds.
        """
        return RetryBudget(self, clock)


class RetryBudget:
    """The attempts and time left to one request under a :class:`RetryPolicy`.

    :param policy: the bounds.
    :param clock: monotonic clock in seconds.
    """

    def __init__(self, policy: RetryPolicy, clock: Clock = time.monotonic) -> None:
        self.policy = policy
        self.attempts = 0
        self._clock = clock
        self._started = clock()

    def elapsed(self) -> float:
        """Return seconds since the request started."""
        return self._clock() - self._started

    def remaining(self) -> float | None:
        """Return seconds left before the deadline (never negative), ``None`` without one."""
        if self.policy.deadline is None:
            return None
        return max(0.0, self.policy.deadline - self.elapsed())

    def next_delay(self, retry_after: float | None = None, rng: random.Random | None = None) -> float | None:
        """Return the seconds to wait before the next attempt, or ``None`` when the budget is spent.

        :param retry_after: the server's ``Retry-After`` (already checked against the cap);
            it replaces the jittered backoff.
        :param rng: the random source of the jitter.
        """
        if self.attempts >= self.policy.max_attempts:
            return None
        delay = retry_after if retry_after is not None else self.policy.backoff(self.attempts, rng)
        remaining = self.remaining()
        if remaining is not None and delay >= remaining:
            return None
        return delay


class RateLimiter:
    """A thread-safe token bucket of ``capacity`` tokens, each back ``capacity / rate`` s after use.

    That allows at most ``capacity`` calls in any window of ``capacity / rate`` seconds, the
    way an API counts "3 calls per second", and is strict enough for a server that counts
    with a fixed window, a sliding window or a token bucket of the same size. Tokens are
    reserved under a short lock and waited for outside it, so waiters are served in arrival
    order, never hold the lock while waiting, and always wake up.

    :meth:`acquire` spends a token at once: its window starts when the call may start.
    :meth:`slot` holds a token for a whole request and starts its window when the response
    has arrived, so however long the network takes to deliver a request, the server never
    sees more than ``capacity`` of them in one window.

    :param rate: calls per second (> 0).
    :param capacity: tokens (a whole number >= 1): the largest burst; 1 spaces calls at ``1 / rate``.
    :param clock: monotonic clock in seconds.
    :param sleep: sleeps a number of seconds.
    """

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive calls per second, got {rate!r}.")
        if capacity < 1 or capacity != int(capacity):
            raise ValueError(f"capacity must be a whole number of tokens >= 1, got {capacity!r}.")
        self.rate = rate
        self.capacity = int(capacity)
        self.window = self.capacity / rate
        self._clock = clock
        self._sleep = sleep
        self._changed = threading.Condition(threading.Lock())
        self._ready_at = [clock()] * self.capacity  # math.inf while a slot holds the token

    def _take(self, timeout: float | None, hold: bool) -> float | None:
        """Reserve the earliest token; return the seconds until it may be used, ``None`` if too late."""
        with self._changed:
            now = self._clock()
            deadline = None if timeout is None else now + timeout
            while True:
                token = min(range(self.capacity), key=self._ready_at.__getitem__)
                start = max(now, self._ready_at[token])
                if start < math.inf:
                    if deadline is not None and start > deadline:
                        return None
                    self._ready_at[token] = math.inf if hold else start + self.window
                    return start - now
                # Every token is held by a request in flight: wait until one is given back.
                if deadline is not None and now >= deadline:
                    return None
                self._changed.wait(None if deadline is None else deadline - now)
                now = self._clock()

    def reserve(self, timeout: float | None = None) -> float | None:
        """Reserve one token; return the seconds to wait for it, or ``None`` (nothing reserved).

        :param timeout: longest acceptable wait; ``None`` accepts any wait.
        """
        return self._take(timeout, hold=False)

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait for one token; return ``True`` when taken, ``False`` when it would take over ``timeout``.

        A ``False`` result consumes nothing.

        :param timeout: longest wait in seconds; ``None`` waits as long as the token requires.
        """
        wait = self.reserve(timeout)
        if wait is None:
            return False
        if wait > 0:
            self._sleep(wait)
        return True

    @contextlib.contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[bool]:
        """Hold one token for the block; yield ``False`` (holding nothing) if it takes over ``timeout``.

        The token's window starts when the block exits, however it exits.

        :param timeout: longest wait in seconds; ``None`` waits as long as the token requires.
        """
        wait = self._take(timeout, hold=True)
        if wait is None:
            yield False
            return
        try:
            if wait > 0:
                self._sleep(wait)
            yield True
        finally:
            with self._changed:
                self._ready_at[self._ready_at.index(math.inf)] = self._clock() + self.window
                self._changed.notify_all()


class CircuitOpenError(Exception):
    """The breaker refuses calls; ``remaining`` is the seconds until it lets a trial call through.

    :param message: what is open and why.
    :param remaining: seconds until a trial call is allowed (0 when one is in flight).
    """

    def __init__(self, message: str, remaining: float) -> None:
        super().__init__(message)
        self.remaining = remaining


def _succeed() -> None:
    return None


def _fail(error: BaseException) -> None:
    raise error


def redis_breaker(
    redis_url: str,
    name: str,
    fail_max: int = 5,
    reset_timeout: float = 60.0,
) -> pybreaker.CircuitBreaker:
    """Return a breaker whose state lives in Redis under ``<name>:pybreaker:*``, shared by processes.

    :param redis_url: e.g. ``redis://host:6379/0``.
    :param name: the breaker's name and Redis namespace.
    :param fail_max: consecutive failures that open the breaker.
    :param reset_timeout: seconds the breaker stays open before a trial call (Redis keeps
        whole seconds).
    """
    import redis

    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis.Redis.from_url(redis_url), namespace=name
    )
    return pybreaker.CircuitBreaker(
        fail_max=fail_max, reset_timeout=reset_timeout, state_storage=storage, name=name
    )


class BreakerGuard:
    """Guard calls with a pybreaker breaker without serialising them.

    Use :meth:`attempt` around one network attempt: it raises :class:`CircuitOpenError`
    while the breaker is open, lets one trial call through when it half-opens, and records
    an exception escaping the block as a failure (when ``counts(error)``) or a clean exit
    as a success. Only the bookkeeping takes the breaker's lock, never the call itself.

    :param breaker: the breaker whose state (memory or Redis) is used.
    :param counts: whether an escaping exception is a failure; others pass through unrecorded.
    """

    def __init__(
        self,
        breaker: pybreaker.CircuitBreaker,
        counts: Callable[[BaseException], bool] = lambda error: True,
    ) -> None:
        self.breaker = breaker
        self._counts = counts
        self._trial = threading.Lock()

    @property
    def state(self) -> str:
        """Return the breaker's state: ``closed``, ``open`` or ``half-open``."""
        return str(self.breaker.current_state)

    def open_remaining(self) -> float:
        """Return seconds until an open breaker allows a trial call (0 when not open or due)."""
        if self.state != pybreaker.STATE_OPEN:
            return 0.0
        # pybreaker exposes no public accessor of the storage's opening time.
        opened_at = self.breaker._state_storage.opened_at
        if opened_at is None:
            return 0.0
        elapsed = (datetime.now(timezone.utc) - opened_at).total_seconds()
        return max(0.0, self.breaker.reset_timeout - elapsed)

    def _refuse(self, remaining: float, why: str) -> CircuitOpenError:
        name = self.breaker.name or "circuit"
        return CircuitOpenError(
            f"Circuit breaker {name!r} is open ({why}) after {self.breaker.fail_max} consecutive "
            f"failures; calls are refused for another {remaining:.1f}s.",
            remaining,
        )

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """Run the block as one guarded attempt.

        :raises CircuitOpenError: when the breaker is open or another trial call is in flight.
        """
        remaining = self.open_remaining()
        if remaining > 0:
            raise self._refuse(remaining, "waiting for its reset timeout")
        if self.state == pybreaker.STATE_OPEN:
            self.breaker.half_open()
        trial = self.state == pybreaker.STATE_HALF_OPEN
        if trial and not self._trial.acquire(blocking=False):
            raise self._refuse(0.0, "a trial call is in flight")
        try:
            yield
        except BaseException as error:
            if self._counts(error):
                self._record(error)
            else:
                self._record(None)
            raise
        else:
            self._record(None)
        finally:
            if trial:
                self._trial.release()

    def _record(self, error: BaseException | None) -> None:
        """Record one outcome through the breaker's own state machine (a call that returns at once)."""
        before = self.state
        try:
            if error is None:
                self.breaker.call(_succeed)
            else:
                self.breaker.call(_fail, error)
        except pybreaker.CircuitBreakerError:
            pass  # the breaker opened (logged below) or was already open
        except BaseException as raised:
            if raised is not error:
                raise
        if before != pybreaker.STATE_OPEN and self.state == pybreaker.STATE_OPEN:
            log.warning(
                "Circuit breaker %r opened after %s consecutive failures; it refuses calls for %ss.",
                self.breaker.name,
                self.breaker.fail_max,
                self.breaker.reset_timeout,
            )
