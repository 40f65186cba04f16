"""A log-bucketed latency histogram: constant memory, ~1 % relative error on quantiles."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

#: Relative width of one bucket: quantiles are exact to within this fraction.
PRECISION = 0.01
_LOG_BASE = math.log1p(PRECISION)
#: Values at or below this (seconds) share the lowest bucket.
FLOOR = 1e-9


class LatencyHistogram:
    """Count latencies (seconds) in logarithmic buckets; thread-safe.

    Memory grows with the spread of the values (a few hundred buckets per decade at most),
    never with how many are recorded. ``min``, ``max``, ``count`` and ``sum`` are exact.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    @staticmethod
    def _bucket(value: float) -> int:
        return math.floor(math.log(max(value, FLOOR)) / _LOG_BASE)

    @staticmethod
    def _bucket_value(index: int) -> float:
        """Return the middle of a bucket (geometric), the value a quantile reports."""
        return math.exp((index + 0.5) * _LOG_BASE)

    def record(self, value: float) -> None:
        """Record one latency.

        :param value: seconds; negative values are treated as zero.
        """
        value = max(value, 0.0)
        index = self._bucket(value)
        with self._lock:
            self._buckets[index] = self._buckets.get(index, 0) + 1
            self.count += 1
            self.total += value
            self.min = min(self.min, value)
            self.max = max(self.max, value)

    def record_many(self, values: Iterable[float]) -> None:
        """Record many latencies under one lock acquisition (merge a thread's local list).

        :param values: seconds each.
        """
        with self._lock:
            buckets = self._buckets
            for raw in values:
                value = max(raw, 0.0)
                index = self._bucket(value)
                buckets[index] = buckets.get(index, 0) + 1
                self.count += 1
                self.total += value
                self.min = min(self.min, value)
                self.max = max(self.max, value)

    def quantile(self, q: float) -> float:
        """Return the ``q`` quantile (0..1), clamped to the exact min and max; 0.0 when empty.

        :param q: the quantile, e.g. 0.99.
        """
        with self._lock:
            if not self.count:
                return 0.0
            rank = q * (self.count - 1)
            seen = 0
            for index in sorted(self._buckets):
                seen += self._buckets[index]
                if seen > rank:
                    return min(max(self._bucket_value(index), self.min), self.max)
            return self.max

    def buckets(self) -> list[tuple[float, float, int]]:
        """Return ``(low, high, count)`` per non-empty bucket, ascending (chart data)."""
        with self._lock:
            return [
                (math.exp(index * _LOG_BASE), math.exp((index + 1) * _LOG_BASE), count)
                for index, count in sorted(self._buckets.items())
            ]

    def summary(self) -> dict[str, Any]:
        """Return count, mean, p50, p90, p99 and max (seconds) as a JSON-able dict."""
        return {
            "count": self.count,
            "mean": self.total / self.count if self.count else 0.0,
            "p50": self.quantile(0.50),
            "p90": self.quantile(0.90),
            "p99": self.quantile(0.99),
            "max": self.max,
        }
