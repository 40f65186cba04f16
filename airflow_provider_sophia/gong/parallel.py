"""Drain several iterators at once into one, with bounded memory and clean cancellation (no Airflow)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_ITEM, _DONE, _FAILED = "item", "done", "failed"


def interleave(sources: Sequence[Iterator[T]], name: str = "sophia-source") -> Generator[T, None, None]:
    """Yield the items of every source as they arrive, each source drained by its own thread.

    At most one item per source waits in memory besides the one each thread is producing.
    The first exception a source raises stops the others and is raised here; closing the
    generator early stops them too. Either way every thread has ended (after the item it
    was producing) when this generator finishes.

    :param sources: the iterators; each is only ever advanced by its own thread.
    :param name: prefix of the threads' names (shown in thread dumps).
    """
    entries: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, len(sources)))
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                entries.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def drain(source: Iterator[T]) -> None:
        try:
            for item in source:
                if not put((_ITEM, item)):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            put((_FAILED, error))
        else:
            put((_DONE, None))

    threads = [
        threading.Thread(target=drain, args=(source,), name=f"{name}-{index}", daemon=True)
        for index, source in enumerate(sources)
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            kind, payload = entries.get()
            if kind == _FAILED:
                raise payload
            if kind == _DONE:
                running -= 1
            else:
                yield payload
    finally:
        stop.set()
        for thread in threads:
            thread.join()
