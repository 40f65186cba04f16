"""Progress reporting: the callback type scenarios call, and a plain stderr progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

#: ``progress(fraction_done, label)``: called by scenarios as they advance (0.0 .. 1.0).
Progress = Callable[[float, str], None]


def silent(fraction: float, label: str) -> None:
    """Ignore progress (the default callback)."""


class ProgressBar:
    """A one-line text bar on a stream (stderr by default), redrawn at most every ``interval``.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) one line per
    ``interval`` is printed so that the output stays readable.

    :param stream: where to draw.
    :param width: characters of the bar itself.
    :param interval: minimum seconds between redraws.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30, interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = interval
        self._tty = self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, fraction: float, label: str) -> None:
        """Draw the bar at ``fraction`` (0..1) with ``label``.

        :param fraction: share of the work done.
        :param label: what is running now.
        """
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < (self.interval if self._tty else max(self.interval, 5.0)):
            return
        self._last = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {fraction:4.0%} {now - self._started:6.1f}s {label}"
        if self._tty:
            self.stream.write("\r" + line[:120].ljust(120))
            if fraction >= 1.0:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
