"""PNG charts of scenario results, drawn with matplotlib's Agg renderer (no display needed).

One chart per scenario that has one, from the JSON-able ``series`` of its result, so
charts can be redrawn from a saved run. Figures are built with :class:`matplotlib.figure.Figure`
directly (no ``pyplot`` global state), which renders PNG through Agg.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_sophia.profiling.results import RunResult, ScenarioResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BEFORE_COLOR = "#d95f02"
AFTER_COLOR = "#1b9e77"
COLORS = ("#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e")


def _figure(width: float = 9.0, height: float = 4.5, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def ingest_rss(result: ScenarioResult) -> Figure:
    """Draw RSS over time, one line per ingest method, one panel per table size.

    :param result: an ``ingest_memory`` result.
    """
    runs = result.series["runs"]
    sizes = sorted({run["rows"] for run in runs})
    figure, axes = _figure(5.5 * len(sizes), 4.5, len(sizes))
    methods = list(dict.fromkeys(run["method"] for run in runs))
    for ax, rows in zip(axes, sizes, strict=True):
        for run in (run for run in runs if run["rows"] == rows):
            color = COLORS[methods.index(run["method"]) % len(COLORS)]
            times = [point[0] for point in run["rss_mib"]]
            values = [point[1] for point in run["rss_mib"]]
            ax.plot(times, values, color=color, label=f"{run['method']} (peak {run['peak_rss_mib']:.0f} MiB)")
        ax.set_title(f"{rows:,} rows")
        ax.set_xlabel("seconds")
        ax.set_ylabel("RSS (MiB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle("ingest_memory: resident memory over time, each method in its own process")
    return figure


def acquire_latency(result: ScenarioResult) -> Figure:
    """Draw the acquire latency histograms of the naive pool and ours (log scale).

    :param result: a ``pool_acquire`` result.
    """
    figure, (ax,) = _figure()
    for side, label, color in (
        ("before", "naive pool (polls)", BEFORE_COLOR),
        ("after", "ours", AFTER_COLOR),
    ):
        data = result.series[side]
        buckets = data["buckets"]
        total = sum(count for _, _, count in buckets) or 1
        lows = [max(low, 1e-7) * 1e6 for low, _, _ in buckets]
        widths = [(high - low) * 1e6 for low, high, _ in buckets]
        shares = [count / total for _, _, count in buckets]
        ax.bar(lows, shares, width=widths, align="edge", alpha=0.55, color=color, label=label)
        for stat, style in (("p50", "--"), ("p99", ":"), ("max", "-")):
            value = data["summary"][stat] * 1e6
            ax.axvline(value, color=color, linestyle=style, linewidth=1.2)
            ax.annotate(
                f"{stat} {value:,.0f} µs",
                (value, 0.95),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                color=color,
                ha="right",
                va="top",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("acquire latency (µs, log scale)")
    ax.set_ylabel("share of acquisitions (log scale)")
    params = result.parameters
    ax.set_title(f"pool_acquire: {params['threads']} threads on {params['max_size']} connections")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure


def shutdown_latency(result: ScenarioResult) -> Figure:
    """Draw median close latency per situation: naive (implied and capped) vs ours, log scale.

    :param result: a ``pool_shutdown`` result.
    """
    import statistics

    figure, (ax,) = _figure()
    situations = list(result.series)
    bars = (
        ("before_implied", "naive: implied by its sleep/hang", BEFORE_COLOR),
        ("before_measured", f"naive: measured, join cut at {result.parameters['cap_s']} s", "#fdb863"),
        ("after", "ours", AFTER_COLOR),
    )
    width = 0.8 / len(bars)
    for offset, (key, label, color) in enumerate(bars):
        xs = [i + (offset - 1) * width for i in range(len(situations))]
        values = [max(statistics.median(result.series[s][key]), 1e-6) for s in situations]
        ax.bar(xs, values, width=width, color=color, label=label)
        for x, value in zip(xs, values, strict=True):
            text = f"{value:.3g} s" if value >= 1 else f"{value * 1000:.3g} ms"
            ax.annotate(text, (x, value), ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(situations)))
    interval = result.parameters["health_check_interval"]
    ax.set_xticklabels([f"idle worker (interval {interval:g} s)", "validation hung"][: len(situations)])
    ax.set_ylabel("close() latency, median (s, log scale)")
    ax.set_title("pool_shutdown: time for close() to return")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return figure


def requests_while_down(result: ScenarioResult) -> Figure:
    """Draw cumulative requests reaching the failing upstream over time: naive loop vs ours.

    :param result: an ``http_retry`` result.
    """
    figure, (ax,) = _figure()
    for side, label, color in (("before", "naive retry loop", BEFORE_COLOR), ("after", "ours", AFTER_COLOR)):
        times = sorted(result.series[side]["request_times"])
        ax.step(
            [0.0, *times],
            range(len(times) + 1),
            where="post",
            color=color,
            label=f"{label}: {len(times)} requests",
        )
        outcome = result.series[side].get("outcome")
        if times and outcome:
            ax.annotate(
                outcome,
                (times[-1], len(times)),
                xytext=(-4, 8),
                textcoords="offset points",
                ha="right",
                fontsize=8,
                color=color,
            )
    ax.axvline(result.series["window_s"], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("seconds since the first request (upstream down the whole time)")
    ax.set_ylabel("requests sent to the upstream")
    ax.set_title("http_retry: requests sent while the upstream was down")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure


#: scenario -> (file name, chart function)
CHARTS: dict[str, tuple[str, Callable[[ScenarioResult], Figure]]] = {
    "ingest_memory": ("ingest_rss_over_time.png", ingest_rss),
    "pool_acquire": ("pool_acquire_latency.png", acquire_latency),
    "pool_shutdown": ("pool_shutdown_latency.png", shutdown_latency),
    "http_retry": ("http_retry_requests.png", requests_while_down),
}


def write_charts(run: RunResult, directory: str | Path) -> dict[str, Path]:
    """Write the chart of every scenario in ``run`` that has one; return ``{scenario: png}``.

    :param run: the results.
    :param directory: where the PNG files go (created when missing).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for result in run.results:
        if result.scenario not in CHARTS or not result.series:
            continue
        name, draw = CHARTS[result.scenario]
        path = directory / name
        draw(result).savefig(path, format="png")
        written[result.scenario] = path
    return written
