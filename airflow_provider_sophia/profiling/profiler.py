"""``Profiler``: wall and CPU time, peak and sampled RSS, counters and latency histograms.

Use it as a context manager or a decorator::

    with Profiler("load") as prof:
        with prof.time("query"):
            run_query()
        prof.count("rows", 5000)
    prof.result.wall_s, prof.result.histograms["query"]["p99"]

    prof = Profiler("load")

    @prof
    def load(): ...

    load()
    prof.result.peak_rss

The RSS sampler is one daemon thread waking every ``sample_interval`` seconds; with the
default 0.1 s it costs well under 1 % of a task's wall time (``bench/profiler_overhead.py``).
Peak RSS is the kernel's exact high-water mark on Linux, reset when the outermost profiler
starts, and the sampled maximum elsewhere (or for a profiler nested in another).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ContextDecorator, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_sophia.profiling.histogram import LatencyHistogram
from airflow_provider_sophia.profiling.memory import current_rss, peak_rss, reset_peak_rss

_active_lock = threading.Lock()
_active = 0


@dataclass
class ProfileResult:
    """What one profiled block measured. Times in seconds, memory in bytes.

    ``rss_samples`` holds ``(seconds since start, rss)`` pairs; ``histograms`` holds each
    histogram's summary (count, mean, p50, p90, p99, max).
    """

    name: str
    wall_s: float
    cpu_s: float
    rss_start: int
    rss_end: int
    peak_rss: int
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def peak_rss_growth(self) -> int:
        """Return how far the peak RSS rose above the RSS at the start."""
        return max(self.peak_rss - self.rss_start, 0)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-able dict."""
        return asdict(self)


class _RssSampler(threading.Thread):
    """Append ``(elapsed, rss)`` every ``interval`` seconds until stopped."""

    def __init__(self, interval: float, started: float) -> None:
        super().__init__(name="sophia-profiler-rss", daemon=True)
        self.interval = interval
        self.started = started
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.samples.append((time.perf_counter() - self.started, current_rss()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class Profiler(ContextDecorator):
    """Measure a block of code; the outcome is in :attr:`result` once the block exits.

    Not re-entrant: one instance profiles one block at a time.

    :param name: a label carried into the result.
    :param sample_interval: seconds between RSS samples; ``None`` disables the sampler.
    """

    def __init__(self, name: str = "profile", *, sample_interval: float | None = 0.1) -> None:
        if sample_interval is not None and sample_interval <= 0:
            raise ValueError(f"sample_interval must be positive or None, got {sample_interval!r}")
        self.name = name
        self.sample_interval = sample_interval
        self.result: ProfileResult | None = None
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._histograms: dict[str, LatencyHistogram] = {}
        self._sampler: _RssSampler | None = None
        self._exact_peak = False
        self._wall0 = 0.0
        self._cpu0 = 0.0
        self._rss0 = 0

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``.

        :param name: the counter.
        :param n: the increment.
        """
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def histogram(self, name: str) -> LatencyHistogram:
        """Return the latency histogram ``name``, created on first use.

        :param name: the histogram.
        """
        with self._lock:
            histogram = self._histograms.get(name)
            if histogram is None:
                histogram = self._histograms[name] = LatencyHistogram()
            return histogram

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        """Record the wall time of the enclosed block into the histogram ``name``.

        :param name: the histogram.
        """
        histogram = self.histogram(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            histogram.record(time.perf_counter() - start)

    def __enter__(self) -> Profiler:
        global _active
        with _active_lock:
            self._exact_peak = _active == 0 and reset_peak_rss()
            _active += 1
        self.result = None
        self._counters = {}
        self._histograms = {}
        self._rss0 = current_rss()
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        if self.sample_interval is not None:
            self._sampler = _RssSampler(self.sample_interval, self._wall0)
            self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _active
        wall = time.perf_counter() - self._wall0
        cpu = time.process_time() - self._cpu0
        samples: list[tuple[float, int]] = []
        if self._sampler is not None:
            self._sampler.stop()
            samples = self._sampler.samples
            self._sampler = None
        rss_end = current_rss()
        peaks = [self._rss0, rss_end, *(rss for _, rss in samples)]
        kernel_peak = peak_rss() if self._exact_peak else None
        if kernel_peak is not None:
            peaks.append(kernel_peak)
        with _active_lock:
            _active -= 1
        self.result = ProfileResult(
            name=self.name,
            wall_s=wall,
            cpu_s=cpu,
            rss_start=self._rss0,
            rss_end=rss_end,
            peak_rss=max(peaks),
            rss_samples=[(0.0, self._rss0), *samples, (wall, rss_end)],
            counters=dict(self._counters),
            histograms={name: hist.summary() for name, hist in self._histograms.items()},
        )
