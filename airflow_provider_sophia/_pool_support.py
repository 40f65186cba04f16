"""Internals of :mod:`airflow_provider_sophia.pool`: records, waiters, timed validation, defaults.

Nothing here takes the pool's lock; the pool decides when each piece runs.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: ``info.transaction_status`` of psycopg 2 and 3 when no transaction is open.
TRANSACTION_IDLE = 0
#: PEP 249 error classes a driver raises for a lost connection (among other failures).
DISCONNECT_ERRORS = frozenset({"OperationalError", "InterfaceError"})


class Record:
    """One pooled connection and its bookkeeping (times from :func:`time.monotonic`).

    :param conn: the DB-API connection.
    :param now: when it was opened; also its first "returned to the pool" time.
    :param lifetime: seconds after which it is replaced.
    :param generation: the pool generation (bumped in a forked child) it belongs to.
    """

    __slots__ = ("conn", "expires", "generation", "returned")

    def __init__(self, conn: Any, now: float, lifetime: float, generation: int) -> None:
        self.conn = conn
        self.expires = now + lifetime
        self.returned = now
        self.generation = generation


class Waiter:
    """A caller queued for a connection; woken exactly once with a record or an error."""

    __slots__ = ("error", "lock", "record")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.record: Record | None = None
        self.error: BaseException | None = None

    def wake(self, record: Record | None = None, error: BaseException | None = None) -> None:
        """Hand the waiter a record (or an error) and release it; call under the pool lock."""
        self.record = record
        self.error = error
        self.lock.release()


def spawn(name: str, target: Callable[..., object], *args: Any) -> threading.Thread:
    """Start and return a daemon thread, so that no pool thread can delay interpreter exit."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def close_quietly(conn: Any) -> None:
    """Close a connection, logging (not raising) a failure: it is being dropped anyway."""
    try:
        conn.close()
    except Exception as error:  # noqa: BLE001 - any driver error: the connection is dropped anyway
        log.debug("Closing a pooled connection failed: %s: %s", type(error).__name__, error)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Return the wait before connect retry ``attempt`` (0-based).

    Exponential from ``base``, capped at ``cap``, then jittered to 50-100 % so that pools
    restarted together do not reconnect in lockstep.

    :param attempt: how many attempts already failed, minus one.
    :param base: the first delay in seconds.
    :param cap: the longest delay in seconds.
    """
    return min(cap, base * 2.0 ** min(attempt, 62)) * (0.5 + random.random() / 2)


def default_validate(conn: Any) -> None:
    """Run ``SELECT 1`` on a connection; raise when it is unusable."""
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT 1")
        cursor.fetchall()
    finally:
        cursor.close()


def default_reset(conn: Any) -> None:
    """Roll back whatever transaction a caller left open (failed ones included).

    Drivers that report their transaction status (psycopg 2 and 3) skip the call when no
    transaction is open; for others this is a plain ``rollback()``, like SQLAlchemy's
    ``reset_on_return``.
    """
    status = getattr(getattr(conn, "info", None), "transaction_status", None)
    if status != TRANSACTION_IDLE:
        conn.rollback()


def default_is_disconnect(error: BaseException, conn: Any) -> bool:
    """Return whether ``error`` means ``conn`` is no longer usable.

    True when the connection reports itself closed (``closed`` attribute or ``is_closed()``)
    or the error is a PEP 249 ``OperationalError``/``InterfaceError``, the classes drivers
    raise for a lost connection. Discarding a healthy connection only costs a reconnect.
    """
    closed = getattr(conn, "closed", False)
    if callable(closed):
        closed = False
    is_closed = getattr(conn, "is_closed", None)
    if closed or (callable(is_closed) and is_closed()):
        return True
    return any(cls.__name__ in DISCONNECT_ERRORS for cls in type(error).__mro__)


def default_interrupt(conn: Any) -> None:
    """Cancel the statement a connection is running, if its driver can (psycopg 2 and 3)."""
    cancel = getattr(conn, "cancel_safe", None) or getattr(conn, "cancel", None)
    if callable(cancel):
        cancel()


class Validation:
    """Run ``check(conn)`` in a daemon thread so that a hung check can be abandoned.

    An abandoned check keeps its thread until the database answers; that thread then closes
    the connection. :meth:`interrupt` cancels the statement, so "until" is usually
    milliseconds rather than the length of the stuck query.

    :param check: raises when the connection is unusable.
    :param conn: the connection to check; nobody else may use it meanwhile.
    :param thread_name: name of the helper thread.
    :param notify: called from the helper thread when a (not abandoned) check finishes.
    """

    def __init__(
        self,
        check: Callable[[Any], object],
        conn: Any,
        thread_name: str,
        notify: Callable[[], object] | None = None,
    ) -> None:
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._check = check
        self._conn = conn
        self._notify = notify
        self._lock = threading.Lock()
        self._done = False
        self._abandoned = False
        self._thread_name = thread_name
        spawn(thread_name, self._run)

    def _run(self) -> None:
        try:
            self._check(self._conn)
        except Exception as error:  # noqa: BLE001 - any error fails the check; the pool reports it
            self.error = error
        with self._lock:
            self._done = True
            abandoned = self._abandoned
        if abandoned:
            close_quietly(self._conn)
            return
        self.finished.set()
        if self._notify is not None:
            self._notify()

    def abandon(self) -> bool:
        """Give up on a check still running; return ``False`` when it had already finished.

        The helper thread closes the connection once the check returns; :meth:`interrupt`
        makes that happen now rather than when the database answers.
        """
        with self._lock:
            if self._done:
                return False
            self._abandoned = True
        return True

    def interrupt(self, interrupt: Callable[[Any], object]) -> None:
        """Cancel the abandoned check's statement from a daemon thread; return at once.

        :param interrupt: cancels the statement running on a connection.
        """
        spawn(f"{self._thread_name}-interrupt", _interrupt_quietly, interrupt, self._conn)


def _interrupt_quietly(interrupt: Callable[[Any], object], conn: Any) -> None:
    try:
        interrupt(conn)
    except Exception as error:  # noqa: BLE001 - best effort: the connection is abandoned anyway
        log.debug("Interrupting an abandoned validation failed: %s: %s", type(error).__name__, error)
