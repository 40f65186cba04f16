"""A health-checked, DB-API agnostic connection pool.

``connect()`` opens a connection, ``validate(conn)`` checks one (``SELECT 1`` by default).
The pool opens ``min_size`` connections in the background, grows on demand to ``max_size``,
hands idle connections out last-in first-out and queues callers first-in first-out. One
worker thread per pool sleeps on a :class:`threading.Event` between rounds: it closes
connections idle past ``max_idle`` (down to ``min_size``) or older than ``max_lifetime``,
validates idle connections every ``health_check_interval`` one at a time and outside the
pool lock, and refills to ``min_size``. Connections are opened by short-lived threads that
retry failures with capped, jittered exponential backoff.

:meth:`ConnectionPool.close` never waits for the database: a validation stuck in a query
is abandoned (its statement cancelled where the driver can, its connection closed by the
validation thread). Every pool thread is a daemon, so an open pool never delays exit; open
pools are closed at exit anyway. After ``os.fork()`` the child's pools start empty and
never touch the parent's connections.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import warnings
import weakref
from bisect import insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from time import monotonic
from types import TracebackType
from typing import Any, Generic, TypeVar

from airflow_provider_sophia._pool_support import (
    Record,
    Validation,
    Waiter,
    backoff_delay,
    close_quietly,
    default_interrupt,
    default_is_disconnect,
    default_reset,
    default_validate,
    spawn,
)
from airflow_provider_sophia.exceptions import PoolClosed, PoolTimeout

log = logging.getLogger(__name__)

C = TypeVar("C")

#: seconds the :mod:`atexit` handler waits for open pools to close.
EXIT_CLOSE_TIMEOUT = 0.25


#: :class:`PoolConfig` fields holding seconds (each a finite number a lock can wait for).
_DURATIONS = (
    "health_check_interval",
    "acquire_timeout",
    "max_idle",
    "max_lifetime",
    "validation_timeout",
    "connect_backoff",
    "connect_backoff_max",
)


@dataclass(frozen=True)
class PoolConfig:
    """Sizing and timing of a :class:`ConnectionPool`; durations are seconds.

    :param min_size: connections kept open, opened in the background.
    :param max_size: most connections open at once (idle, in use and being checked).
    :param health_check_interval: time between health checks of idle connections.
    :param acquire_timeout: how long a caller waits for a connection by default.
    :param max_idle: a connection idle this long is closed while the pool is above ``min_size``.
    :param max_lifetime: a connection older than this is replaced (never handed out).
    :param validation_timeout: a validation still running after this is abandoned and its
        connection discarded.
    :param validate_on_checkout: validate every connection before handing it out (one
        round trip per checkout; off by default, the health check covers idle connections).
    :param lifetime_spread: each connection's lifetime is shortened by a random fraction up
        to this, so that connections opened together do not expire together.
    :param connect_backoff: wait after the first failed connect; doubles per failure.
    :param connect_backoff_max: the longest wait between connect attempts.
    """

    min_size: int = 1
    max_size: int = 8
    health_check_interval: float = 60.0
    acquire_timeout: float = 30.0
    max_idle: float = 300.0
    max_lifetime: float = 3600.0
    validation_timeout: float = 5.0
    validate_on_checkout: bool = False
    lifetime_spread: float = 0.05
    connect_backoff: float = 0.1
    connect_backoff_max: float = 10.0

    def __post_init__(self) -> None:
        for option in ("min_size", "max_size"):
            value = getattr(self, option)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"Pool {option}={value!r} must be an integer number of connections.")
        for option in _DURATIONS:
            value = getattr(self, option)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not value <= threading.TIMEOUT_MAX
            ):
                raise ValueError(
                    f"Pool {option}={value!r} must be a finite number of seconds "
                    f"(at most {threading.TIMEOUT_MAX:.0f})."
                )
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ValueError(
                f"Pool sizes min_size={self.min_size}, max_size={self.max_size} are invalid: "
                "use 0 <= min_size <= max_size and max_size >= 1."
            )
        for option in ("health_check_interval", "max_idle", "max_lifetime", "validation_timeout"):
            if not getattr(self, option) > 0:
                raise ValueError(
                    f"Pool {option}={getattr(self, option)!r} must be a positive number of seconds."
                )
        if not self.acquire_timeout >= 0:
            raise ValueError(f"Pool acquire_timeout={self.acquire_timeout!r} must be >= 0 seconds.")
        if not 0 <= self.lifetime_spread < 1:
            raise ValueError(f"Pool lifetime_spread={self.lifetime_spread!r} must be in [0, 1).")
        if not 0 < self.connect_backoff <= self.connect_backoff_max:
            raise ValueError(
                f"Pool connect_backoff={self.connect_backoff!r} and connect_backoff_max="
                f"{self.connect_backoff_max!r} are invalid: use 0 < connect_backoff <= connect_backoff_max."
            )


@dataclass(frozen=True)
class PoolStats:
    """A consistent snapshot of a pool; the ``*_total`` counters only grow.

    ``size`` counts open connections (idle, in use and being checked); ``in_use`` only those
    held by callers. ``closed_total`` counts every connection the pool closed or abandoned,
    ``evicted_total`` those of them removed for being broken, expired or idle too long
    (everything but :meth:`ConnectionPool.close`). ``health_checks_total`` counts
    validations, by the worker and on checkout.
    """

    size: int = 0
    idle: int = 0
    in_use: int = 0
    waiting: int = 0
    created_total: int = 0
    closed_total: int = 0
    acquired_total: int = 0
    timeouts_total: int = 0
    health_checks_total: int = 0
    health_check_failures_total: int = 0
    evicted_total: int = 0


class ConnectionPool(Generic[C]):
    """A thread-safe pool of DB-API connections with health checks and metrics.

    :param connect: opens a new connection.
    :param config: sizing and timing; :class:`PoolConfig` defaults when ``None``.
    :param validate: raises when a connection is unusable; ``SELECT 1`` when ``None``.
    :param name: names the pool in errors, logs, thread names and metrics.
    :param reset: runs on every returned connection; rolls back an open transaction by default.
    :param is_disconnect: ``(error, conn) -> bool``: whether an error raised while a connection
        was checked out means it must be discarded; PEP 249 heuristics by default.
    :param interrupt: cancels the statement of an abandoned validation from another thread;
        the driver's ``cancel_safe()``/``cancel()`` by default (no-op when it has none).
    :param on_stats: receives a fresh :class:`PoolStats` after every checkout, return,
        timeout and maintenance round; it must be quick and must not use the pool.
    """

    def __init__(
        self,
        connect: Callable[[], C],
        config: PoolConfig | None = None,
        validate: Callable[[C], object] | None = None,
        name: str = "pool",
        *,
        reset: Callable[[C], object] | None = None,
        is_disconnect: Callable[[BaseException, C], bool] | None = None,
        interrupt: Callable[[C], object] | None = None,
        on_stats: Callable[[PoolStats], object] | None = None,
    ) -> None:
        self.name = name
        self.config = config or PoolConfig()
        self._connect = connect
        self._validate = validate or default_validate
        self._reset = reset or default_reset
        self._is_disconnect = is_disconnect or default_is_disconnect
        self._interrupt = interrupt or default_interrupt
        self._on_stats = on_stats
        self._closed = False
        self._check_requested = False
        self._generation = 0
        self._init_state()
        _LIVE_POOLS.add(self)
        self._ensure_worker()

    def _init_state(self) -> None:
        """(Re)create locks, events and an empty pool: at construction and in a forked child."""
        self._lock = threading.Lock()
        self._filled = threading.Condition(self._lock)
        self._wake = threading.Event()  # worker: close() or a finished validation
        self._closing = threading.Event()  # connectors backing off: close()
        if self._closed:
            self._closing.set()
        self._worker: threading.Thread | None = None
        self._idle: list[Record] = []  # sorted by Record.returned; the end is the most recent
        self._waiters: deque[Waiter] = deque()
        self._dropped: deque[Record] = deque()  # checked out, then garbage-collected unreturned
        self._abandoned: list[Validation] = []  # validations the worker gave up on at close
        self._last_connect_error: BaseException | None = None
        self._size = self._in_use = self._checking = self._connecting = 0
        self._created = self._closed_count = self._acquired = self._timeouts = 0
        self._checks = self._check_failures = self._evicted = 0

    # --- public API -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def connection(self, timeout: float | None = None) -> _Checkout[C]:
        """Return a context manager that checks a connection out and returns it on exit.

        An error raised inside the block that means the connection is lost discards it;
        otherwise it is reset (an open transaction rolled back) and returned.

        :param timeout: seconds to wait; ``config.acquire_timeout`` when ``None``.
        :raises PoolTimeout: when no connection became available in time.
        :raises PoolClosed: when the pool is or gets closed.
        """
        return _Checkout(self, timeout)

    def acquire(self, timeout: float | None = None) -> PooledConnection:
        """Check a connection out as a proxy whose ``close()`` returns it to the pool.

        For code written against plain connections (``with closing(hook.get_conn())``).

        :param timeout: seconds to wait; ``config.acquire_timeout`` when ``None``.
        :raises PoolTimeout: when no connection became available in time.
        :raises PoolClosed: when the pool is or gets closed.
        """
        return PooledConnection(self, self._checkout(timeout))

    def wait(self, timeout: float = 30.0) -> None:
        """Block until ``min_size`` connections are open.

        :param timeout: seconds to wait.
        :raises PoolTimeout: when they are not open in time (last connect error chained).
        :raises PoolClosed: when the pool is or gets closed.
        """
        self._ensure_worker()
        with self._filled:
            ready = self._filled.wait_for(lambda: self._closed or self._size >= self.config.min_size, timeout)
            if self._closed:
                raise PoolClosed(self._closed_message())
            if not ready:
                raise PoolTimeout(
                    f"Pool {self.name!r} opened only {self._size} of min_size={self.config.min_size} "
                    f"connections within {timeout:.3f}s; check that the database is reachable."
                ) from self._last_connect_error

    def check(self) -> None:
        """Ask the worker to health-check the idle connections now; return at once."""
        self._check_requested = True
        self._wake.set()

    def stats(self) -> PoolStats:
        """Return a consistent snapshot of sizes and counters."""
        with self._lock:
            self._reap_dropped_locked()
            return PoolStats(
                size=self._size,
                idle=len(self._idle),
                in_use=self._in_use,
                waiting=len(self._waiters),
                created_total=self._created,
                closed_total=self._closed_count,
                acquired_total=self._acquired,
                timeouts_total=self._timeouts,
                health_checks_total=self._checks,
                health_check_failures_total=self._check_failures,
                evicted_total=self._evicted,
            )

    def close(self, timeout: float = 5.0) -> None:
        """Close the pool; idempotent and quick, even while a validation hangs.

        Waiters get :class:`PoolClosed`, idle connections are closed (in this thread), the
        worker stops and a running validation is abandoned: its statement is cancelled and its
        connection closed in the background. Connections checked out now are closed when
        returned.

        :param timeout: seconds to wait for the worker to stop.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            for _ in idle:
                self._forget_locked(evicted=False)
            while self._waiters:
                self._waiters.popleft().wake(error=PoolClosed(self._closed_message()))
            self._filled.notify_all()
        self._closing.set()
        self._wake.set()
        _LIVE_POOLS.discard(self)
        for record in idle:  # in this thread: a helper thread's start costs more than the closes
            close_quietly(record.conn)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
            if worker.is_alive():
                log.warning("Pool %s: worker still running after close(timeout=%s)", self.name, timeout)
        while self._abandoned:
            self._abandoned.pop().interrupt(self._interrupt)
        self._notify_stats()
        log.debug("Pool %s closed", self.name)

    def __enter__(self) -> ConnectionPool[C]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"size={self._size}, in_use={self._in_use}"
        return f"<ConnectionPool {self.name!r} {state}>"

    # --- checkout and return ---------------------------------------------------------

    def _checkout(self, timeout: float | None) -> Record:
        if timeout is None:
            timeout = self.config.acquire_timeout
        deadline = monotonic() + timeout
        while True:
            record = self._take(deadline, timeout)
            if self._usable(record, deadline):
                self._notify_stats()
                return record

    def _take(self, deadline: float, timeout: float) -> Record:
        """Pop the most recently used idle connection, or queue and wait for one."""
        with self._lock:
            if self._closed:
                raise PoolClosed(self._closed_message())
            if self._idle and not self._waiters:
                self._in_use += 1
                self._acquired += 1
                return self._idle.pop()
            self._reap_dropped_locked()
            waiter = Waiter()
            self._waiters.append(waiter)
            connects = self._reserve_connects_locked()
        self._start_connectors(connects)
        if self._worker is None:
            self._ensure_worker()
        remaining = deadline - monotonic()
        if not (
            waiter.lock.acquire(True, min(remaining, threading.TIMEOUT_MAX))
            if remaining > 0
            else waiter.lock.acquire(False)
        ):
            with self._lock:
                timed_out = waiter.record is None and waiter.error is None
                if timed_out:
                    self._waiters.remove(waiter)
                    self._timeouts += 1
                    error = PoolTimeout(
                        f"Pool {self.name!r} had no connection available within {timeout:.3f}s "
                        f"(size {self._size}/{self.config.max_size}, {self._in_use} in use, "
                        f"{len(self._waiters)} other waiting). Return connections sooner, raise "
                        "max_size, or raise the acquire timeout."
                    )
                    cause = self._last_connect_error
            if timed_out:
                self._notify_stats()
                raise error from cause
        if waiter.error is not None:
            raise waiter.error
        assert waiter.record is not None
        return waiter.record

    def _usable(self, record: Record, deadline: float) -> bool:
        """Return whether a taken connection may be handed out; discard it when not."""
        expired = record.expires <= monotonic()
        if not expired and not self.config.validate_on_checkout:
            return True
        healthy = False
        if not expired:
            check = Validation(self._check, record.conn, self._thread_name("validate"))
            check.finished.wait(max(0.0, min(self.config.validation_timeout, deadline - monotonic())))
            healthy = self._outcome(check, record)
        with self._lock:
            if not expired:
                self._checks += 1
                self._check_failures += not healthy
            if healthy:
                return True
            self._in_use -= 1
            self._acquired -= 1
            self._forget_locked(evicted=True)
            connects = self._reserve_connects_locked()
        if expired:
            close_quietly(record.conn)
        self._start_connectors(connects)
        return False

    def _release(self, record: Record, error: BaseException | None) -> None:
        """Return a checked-out connection: reset and keep it, or discard it."""
        conn = record.conn
        if record.generation != self._generation:  # checked out before os.fork(): the parent's
            _INHERITED.append(conn)
            return
        broken = error is not None and self._is_disconnect(error, conn)
        if not broken and not self._closed:
            try:
                self._reset(conn)
            except Exception as reset_error:  # noqa: BLE001 - any failure: the connection is discarded
                log.warning(
                    "Pool %s: discarding a connection whose reset failed: %s: %s",
                    self.name,
                    type(reset_error).__name__,
                    reset_error,
                )
                broken = True
        now = monotonic()
        with self._lock:
            self._in_use -= 1
            discard = broken or self._closed or record.expires <= now
            if discard:
                self._forget_locked(evicted=not self._closed)
                connects = self._reserve_connects_locked()
            else:
                record.returned = now
                self._put_locked(record)
                connects = 0
        if discard:
            close_quietly(conn)
            self._start_connectors(connects)
        self._notify_stats()

    def _put_locked(self, record: Record) -> None:
        """Hand a healthy connection to the first waiter, else put it back idle in order."""
        if self._waiters:
            self._in_use += 1
            self._acquired += 1
            self._waiters.popleft().wake(record)
        elif not self._idle or self._idle[-1].returned <= record.returned:
            self._idle.append(record)
        else:
            insort(self._idle, record, key=_RETURNED)

    def _forget_locked(self, *, evicted: bool) -> None:
        """Count one connection as gone from the pool (the caller closes it)."""
        self._size -= 1
        self._closed_count += 1
        self._evicted += evicted

    def _reap_dropped_locked(self) -> None:
        """Free the slots of checked-out proxies that were garbage-collected unreturned."""
        while self._dropped:
            record = self._dropped.popleft()
            if record.generation == self._generation:
                self._in_use -= 1
                self._forget_locked(evicted=True)

    # --- growth ----------------------------------------------------------------------

    def _reserve_connects_locked(self) -> int:
        """Count how many more connections to open now, and reserve them."""
        if self._closed:
            return 0
        missing = self._wanted_locked() - self._size - self._connecting
        if missing <= 0:
            return 0
        self._connecting += missing
        return missing

    def _wanted_locked(self) -> int:
        cfg = self.config
        return min(cfg.max_size, max(cfg.min_size, self._size + len(self._waiters)))

    def _start_connectors(self, count: int) -> None:
        for _ in range(count):
            spawn(self._thread_name("connect"), self._connect_until_done)

    def _connect_until_done(self) -> None:
        """Open one connection, retrying with backoff while the pool still wants it."""
        cfg = self.config
        attempt = 0
        while True:
            try:
                conn = self._connect()
            except Exception as error:  # noqa: BLE001 - any failure is retried and chained to PoolTimeout
                with self._lock:
                    self._last_connect_error = error
                    wanted = not self._closed and self._size + self._connecting <= self._wanted_locked()
                    if not wanted:
                        self._connecting -= 1
                if not wanted:
                    return
                delay = backoff_delay(attempt, cfg.connect_backoff, cfg.connect_backoff_max)
                attempt += 1
                log.warning(
                    "Pool %s: connect attempt %d failed (%s: %s); retrying in %.2fs",
                    self.name,
                    attempt,
                    type(error).__name__,
                    error,
                    delay,
                )
                if self._closing.wait(delay):
                    with self._lock:
                        self._connecting -= 1
                    return
                continue
            now = monotonic()
            lifetime = cfg.max_lifetime * (1 - cfg.lifetime_spread * random.random())
            record = Record(conn, now, lifetime, self._generation)
            with self._lock:
                self._connecting -= 1
                if not self._closed:
                    self._size += 1
                    self._created += 1
                    self._last_connect_error = None
                    self._put_locked(record)
                    self._filled.notify_all()
                    return
            close_quietly(conn)
            return

    # --- the worker ------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is not None or self._closed:
                return
            self._worker = threading.Thread(target=self._work, name=self._thread_name("worker"), daemon=True)
        self._worker.start()

    def _work(self) -> None:
        """Maintain the pool until it closes; between rounds wait on the wake-up Event."""
        interval = self.config.health_check_interval
        next_check = monotonic() + interval
        while not self._closed:
            self._evict_idle(monotonic())
            if self._check_requested or monotonic() >= next_check:
                self._check_requested = False
                self._health_check()
                next_check = monotonic() + interval
            with self._lock:
                connects = self._reserve_connects_locked()
                due = self._next_due_locked(next_check)
            self._start_connectors(connects)
            self._notify_stats()
            if self._closed:  # close() may have set the Event while a health check consumed it
                return
            self._wake.wait(max(0.0, due - monotonic()))
            self._wake.clear()

    def _next_due_locked(self, next_check: float) -> float:
        """Return when the next health check, expiry or idle timeout falls due."""
        cfg = self.config
        now = monotonic()
        # a connection opened or returned from now on falls due no earlier than these
        due = min(next_check, now + cfg.max_idle, now + cfg.max_lifetime * (1 - cfg.lifetime_spread))
        if self._idle:
            due = min(due, min(record.expires for record in self._idle))
            if self._size > cfg.min_size:
                due = min(due, self._idle[0].returned + cfg.max_idle)
        return due

    def _evict_idle(self, now: float) -> None:
        """Close idle connections past ``max_lifetime``, and past ``max_idle`` above ``min_size``."""
        cfg = self.config
        with self._lock:
            keep = [record for record in self._idle if record.expires > now]
            victims = [record for record in self._idle if record.expires <= now]
            surplus = self._size - len(victims) - cfg.min_size
            while surplus > 0 and keep and now - keep[0].returned >= cfg.max_idle:
                victims.append(keep.pop(0))
                surplus -= 1
            self._idle = keep
            for _ in victims:
                self._forget_locked(evicted=True)
        for record in victims:
            close_quietly(record.conn)
        if victims:
            log.debug("Pool %s: closed %d expired or idle connections", self.name, len(victims))

    def _health_check(self) -> None:
        """Validate each idle connection in turn, outside the lock, and evict broken ones."""
        with self._lock:
            candidates = list(self._idle)
        failures = 0
        for record in candidates:
            with self._lock:
                if self._closed or record not in self._idle:
                    continue
                self._idle.remove(record)
                self._checking += 1
            check = Validation(self._check, record.conn, self._thread_name("validate"), self._wake.set)
            deadline = monotonic() + self.config.validation_timeout
            while not (check.finished.is_set() or self._closed) and (remaining := deadline - monotonic()) > 0:
                self._wake.wait(remaining)
                self._wake.clear()
            healthy = self._outcome(check, record)
            with self._lock:
                self._checking -= 1
                closed = self._closed
                if not closed:
                    self._checks += 1
                    self._check_failures += not healthy
                if healthy and not closed:
                    self._put_locked(record)
                else:
                    self._forget_locked(evicted=not closed)
            if healthy and closed:
                close_quietly(record.conn)
            failures += not healthy and not closed
        if failures:
            log.warning("Pool %s: health check evicted %d broken connections", self.name, failures)

    def _check(self, conn: C) -> None:
        self._validate(conn)
        self._reset(conn)

    def _outcome(self, check: Validation, record: Record) -> bool:
        """Return whether a validation passed; arrange for a failed connection to be closed."""
        if not check.finished.is_set() and check.abandon():
            if self._closed:  # close() interrupts it once the worker is gone: no GIL contention
                log.debug("Pool %s: abandoning a validation still running at close", self.name)
                self._abandoned.append(check)
            else:
                check.interrupt(self._interrupt)
                log.warning(
                    "Pool %s: validation did not finish within %.1fs; abandoning its connection",
                    self.name,
                    self.config.validation_timeout,
                )
            return False
        if check.error is None:
            return True
        log.info(
            "Pool %s: connection failed validation: %s: %s",
            self.name,
            type(check.error).__name__,
            check.error,
        )
        close_quietly(record.conn)
        return False

    # --- helpers ---------------------------------------------------------------------

    def _notify_stats(self) -> None:
        if self._on_stats is None:
            return
        try:
            self._on_stats(self.stats())
        except Exception:
            log.exception("Pool %s: on_stats callback failed", self.name)

    def _thread_name(self, role: str) -> str:
        return f"sophia-pool-{self.name}-{role}"

    def _closed_message(self) -> str:
        return f"Pool {self.name!r} is closed; create a new pool (or hook) to get connections."

    def _after_fork_in_child(self) -> None:
        """Start empty: keep the parent's connections referenced but never use or close them."""
        _INHERITED.extend(record.conn for record in self._idle)
        _INHERITED.extend(record.conn for record in self._dropped)
        self._generation += 1
        self._init_state()


class _Checkout(Generic[C]):
    """The context manager of :meth:`ConnectionPool.connection`."""

    __slots__ = ("_pool", "_record", "_timeout")

    def __init__(self, pool: ConnectionPool[C], timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._record: Record | None = None

    def __enter__(self) -> C:
        self._record = self._pool._checkout(self._timeout)
        return self._record.conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        record, self._record = self._record, None
        if record is not None:
            self._pool._release(record, exc)


class PooledConnection:
    """A checked-out connection whose :meth:`close` returns it to its pool.

    Every other attribute (read or written) is the underlying connection's. Close it: one
    garbage-collected unclosed frees its pool slot with a :class:`ResourceWarning` and leaves
    the connection to the driver.
    """

    __slots__ = ("_pool", "_record")

    def __init__(self, pool: ConnectionPool[Any], record: Record) -> None:
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_record", record)

    @property
    def raw(self) -> Any:
        """Return the underlying DB-API connection."""
        record = self._record
        if record is None:
            raise ValueError(f"This connection was already returned to pool {self._pool.name!r}.")
        return record.conn

    def __getattr__(self, name: str) -> Any:
        if name in PooledConnection.__slots__:  # not yet set: never recurse into ``raw``
            raise AttributeError(name)
        return getattr(self.raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.raw, name, value)

    def close(self) -> None:
        """Return the connection to the pool; idempotent."""
        self._return(None)

    def __enter__(self) -> PooledConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._return(exc)

    def _return(self, error: BaseException | None) -> None:
        record = self._record
        if record is not None:
            object.__setattr__(self, "_record", None)
            self._pool._release(record, error)

    def __del__(self) -> None:
        record = getattr(self, "_record", None)
        if record is not None:
            self._pool._dropped.append(record)  # no lock here: __del__ may run under the pool lock
            warnings.warn(
                f"A connection of pool {self._pool.name!r} was garbage-collected without close()",
                ResourceWarning,
                stacklevel=1,
            )


_RETURNED = attrgetter("returned")
_LIVE_POOLS: weakref.WeakSet[ConnectionPool[Any]] = weakref.WeakSet()
#: connections a forked child inherited: referenced for the life of the process (so no
#: finalizer touches the parent's sockets), never used, never closed.
_INHERITED: list[Any] = []


def _after_fork_in_child() -> None:
    for pool in list(_LIVE_POOLS):
        pool._after_fork_in_child()


def _close_open_pools_at_exit() -> None:
    """Close pools left open, giving up after :data:`EXIT_CLOSE_TIMEOUT` (a driver may hang)."""
    pools = list(_LIVE_POOLS)
    if pools:
        closer = spawn("sophia-pool-atexit", _close_all, pools)
        closer.join(EXIT_CLOSE_TIMEOUT)


def _close_all(pools: list[ConnectionPool[Any]]) -> None:
    for pool in pools:
        pool.close(timeout=EXIT_CLOSE_TIMEOUT)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_open_pools_at_exit)
