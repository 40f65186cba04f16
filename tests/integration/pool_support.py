"""The concurrency check both real-connection pool suites run."""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

from airflow_provider_sophia.pool import ConnectionPool


def hammer(
    pool: ConnectionPool,
    *,
    threads: int,
    rounds: int,
    check: Callable[[Any], None],
    check_every: int,
    timeout: float,
) -> set[int]:
    """Acquire ``threads`` x ``rounds`` times concurrently; return the ids of connections seen.

    Fails when a connection is handed to two threads at once, a worker raises, or a worker
    is still running after ``timeout`` seconds (a deadlock). ``check(conn)`` runs a query
    every ``check_every`` rounds.
    """
    owners: dict[int, threading.Lock] = {}
    owners_lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(rounds):
                with pool.connection(timeout=timeout) as conn:
                    with owners_lock:
                        owner = owners.setdefault(id(conn), threading.Lock())
                    assert owner.acquire(blocking=False), "a connection was handed to two threads at once"
                    try:
                        if i % check_every == 0:
                            check(conn)
                    finally:
                        owner.release()
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout * 4)
    assert not any(worker.is_alive() for worker in workers), "deadlock: workers still running"
    assert failures == []
    return set(owners)


def report_from_fork(child: Callable[[], str]) -> list[str]:
    """Run ``child()`` in a forked process; return the words of the report it returned.

    The child leaves with ``os._exit`` (never running the parent's test machinery); the
    parent fails with the child's traceback when it raised.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status, report = 1, "the child raised"
        try:
            report, status = child(), 0
        except BaseException:  # noqa: BLE001 - reported to the parent, which fails with it
            report = traceback.format_exc()
        finally:
            os.write(write_end, report.encode()[-4096:])  # what fits the pipe without a reader
            os._exit(status)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    report = os.read(read_end, 4096).decode()
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0, f"the forked child failed:\n{report}"
    return report.split()
