from __future__ import annotations

import time

import pytest

from airflow_provider_sophia.profiling import LatencyHistogram, Profiler

MIB = 2**20


def test_known_allocation_shows_in_peak_rss() -> None:
    with Profiler("alloc", sample_interval=0.01) as profiler:
        block = bytearray(b"\x01") * (200 * MIB)  # written, so resident
        del block
    result = profiler.result
    assert result is not None
    assert result.peak_rss_growth >= 180 * MIB
    assert result.rss_end < result.peak_rss


def test_sleep_counts_in_wall_time_not_cpu_time() -> None:
    with Profiler("sleep") as profiler:
        time.sleep(0.3)
    result = profiler.result
    assert result is not None
    assert 0.3 <= result.wall_s < 0.6
    assert result.cpu_s < 0.1


def test_busy_loop_counts_in_cpu_time() -> None:
    # Spin until 0.2 s of CPU are used (wall time varies with other load on the machine).
    with Profiler("busy", sample_interval=None) as profiler:
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
    result = profiler.result
    assert result is not None
    assert 0.2 <= result.cpu_s <= result.wall_s + 0.05
    assert result.rss_samples[0][0] == 0.0  # start and end points even without the sampler


def test_rss_is_sampled_over_time() -> None:
    with Profiler(sample_interval=0.01) as profiler:
        time.sleep(0.2)
    result = profiler.result
    assert result is not None
    times = [t for t, _ in result.rss_samples]
    assert len(times) >= 8
    assert times == sorted(times)
    assert all(rss > 0 for _, rss in result.rss_samples)


def test_counters_histograms_and_timers() -> None:
    with Profiler() as profiler:
        profiler.count("rows", 100)
        profiler.count("rows", 23)
        profiler.count("chunks")
        profiler.histogram("latency").record_many(i / 1000 for i in range(1, 1001))
        with profiler.time("block"):
            time.sleep(0.05)
    result = profiler.result
    assert result is not None
    assert result.counters == {"rows": 123, "chunks": 1}
    latency = result.histograms["latency"]
    assert latency["count"] == 1000
    assert latency["p50"] == pytest.approx(0.5, rel=0.02)
    assert latency["p90"] == pytest.approx(0.9, rel=0.02)
    assert latency["p99"] == pytest.approx(0.99, rel=0.02)
    assert latency["max"] == 1.0
    assert result.histograms["block"]["count"] == 1
    assert result.histograms["block"]["max"] >= 0.05


def test_profiler_as_decorator_keeps_the_last_result() -> None:
    profiler = Profiler("decorated", sample_interval=None)

    @profiler
    def work(n: int) -> int:
        profiler.count("calls")
        return sum(range(n))

    assert work(1000) == 499500
    assert profiler.result is not None
    assert profiler.result.name == "decorated"
    assert profiler.result.counters == {"calls": 1}


def test_nested_profilers_both_report_a_peak() -> None:
    with Profiler("outer", sample_interval=0.01) as outer, Profiler("inner", sample_interval=0.01) as inner:
        block = bytearray(b"\x01") * (64 * MIB)
        time.sleep(0.05)
        del block
    assert inner.result is not None
    assert outer.result is not None
    assert inner.result.peak_rss_growth >= 48 * MIB  # sampled: inner cannot reset the kernel mark
    assert outer.result.peak_rss_growth >= 60 * MIB  # exact kernel mark


def test_histogram_edge_cases() -> None:
    histogram = LatencyHistogram()
    assert histogram.summary() == {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    histogram.record(-1.0)
    histogram.record(0.0)
    histogram.record(2e-6)
    assert histogram.count == 3
    assert histogram.min == 0.0
    assert histogram.quantile(1.0) == pytest.approx(2e-6, rel=0.01)
    assert sum(count for _, _, count in histogram.buckets()) == 3


def test_invalid_sample_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="sample_interval"):
        Profiler(sample_interval=0)
