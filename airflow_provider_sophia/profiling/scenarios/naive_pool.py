"""The original Sophia connection pool, kept only as the "before" of the pool scenarios.

Do not use it for anything else. It reproduces the original's flaws on purpose:

* its health-check worker sleeps with ``time.sleep(health_check_interval)``, so
  ``close()`` waits until the sleep ends (up to a whole interval) or, with the original
  "fix", gives up after ``join(timeout)`` and leaves the thread running;
* the worker validates idle connections one by one while holding nothing back: a
  validation stuck in the database keeps the worker (and so ``close()``) stuck with it;
* when every connection is in use, ``get()`` raises :class:`NaivePoolExhausted`
  instead of waiting, so callers poll with a sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class NaivePoolExhausted(RuntimeError):
    """Every connection of the naive pool is in use (the original raised instead of waiting)."""


class NaivePool:
    """A list of connections behind a lock, with a sleeping health-check thread.

    :param connect: makes a connection.
    :param validate: checks a connection (the health check); the default runs ``SELECT 1``.
    :param min_size: connections opened up front.
    :param max_size: most connections open at once.
    :param health_check_interval: seconds the worker sleeps between health checks.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        validate: Callable[[Any], object] | None = None,
        min_size: int = 2,
        max_size: int = 8,
        health_check_interval: float = 60.0,
    ) -> None:
        self._connect = connect
        self._validate = validate or (lambda conn: conn.cursor().execute("SELECT 1"))
        self.max_size = max_size
        self.health_check_interval = health_check_interval
        self._lock = threading.Lock()
        self._idle = [connect() for _ in range(min_size)]
        self._size = min_size
        self._running = True
        #: ``time.perf_counter()`` at which the worker's current sleep ends.
        self.sleep_until = 0.0
        self._worker = threading.Thread(target=self._health_loop, name="naive-pool-health", daemon=True)
        self._worker.start()

    def _health_loop(self) -> None:
        while self._running:
            self.sleep_until = time.perf_counter() + self.health_check_interval
            time.sleep(self.health_check_interval)
            if not self._running:
                return
            with self._lock:
                idle = list(self._idle)
            for conn in idle:
                self._validate(conn)

    def get(self) -> Any:
        """Return an idle connection, opening one when below ``max_size``.

        :raises NaivePoolExhausted: when all ``max_size`` connections are in use.
        """
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._size >= self.max_size:
                raise NaivePoolExhausted(f"pool exhausted ({self._size} connections in use)")
            self._size += 1
        return self._connect()

    def put(self, conn: Any) -> None:
        """Give a connection back.

        :param conn: a connection from :meth:`get`.
        """
        with self._lock:
            self._idle.append(conn)

    def close(self, join_timeout: float | None = None) -> bool:
        """Stop the worker and close idle connections; return whether the worker stopped.

        :param join_timeout: the original waited for the worker (``None``); its "fix" used 5 s.
        """
        self._running = False
        self._worker.join(join_timeout)
        with self._lock:
            for conn in self._idle:
                conn.close()
            self._idle.clear()
        return not self._worker.is_alive()
