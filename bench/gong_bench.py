"""Gong client vs a plain requests loop with urllib3 ``Retry(backoff_factor=1)``.

Each contender fetches every call (5,000 calls = 50 pages by default) from the Gong
simulator, which enforces Gong's 3 requests/second (429 + ``Retry-After``) and answers
10 % of requests with a 5xx: ours as 3 time slices paged at once, ours as one cursor
stream (with its "3 calls per one-second window" limiter, and with calls spaced evenly),
and the plain loop. Measured from the simulator's request log: wall time, pages per
second, the busiest second, the sustained share of the allowed rate, 429s received, and
whether every record arrived exactly once. Results go to ``bench/results/gong_bench.json``.

Run: ``python -m bench.gong_bench`` (about two minutes).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.gong.simulator import Fault, GongSimulator, Settings
from airflow_provider_sophia.resilience import RateLimiter

RESULTS = Path(__file__).resolve().parent / "results" / "gong_bench.json"
FROM = "2024-01-01T00:00:00+00:00"

Fetch = Callable[[GongSimulator], list[str]]


def fetch_ours(rate_limiter: RateLimiter | None = None) -> Fetch:
    """Return a fetch of one cursor stream with our client at its defaults (3 rps, retries, breaker).

    :param rate_limiter: a limiter to use instead of the client's own.
    """

    def fetch(sim: GongSimulator) -> list[str]:
        with GongClient(sim.url, sim.access_key, sim.access_key_secret, rate_limiter=rate_limiter) as client:
            return [call["id"] for call in client.iter_calls(FROM)]

    return fetch


def fetch_ours_sliced(sim: GongSimulator) -> list[str]:
    """Fetch with our client at its defaults, the data's 90 days as 3 time slices paged at once."""
    until = sim.data.start + timedelta(days=sim.data.days)
    with GongClient(sim.url, sim.access_key, sim.access_key_secret) as client:
        pages = client.iter_pages_parallel("calls", FROM, until, slices=3)
        return [call["id"] for page in pages for call in page.records]


def busiest_second(times: list[float]) -> int:
    """Return the most requests the server received in any one-second window."""
    return max((sum(1 for t in times if start <= t < start + 1.0) for start in times), default=0)


def fetch_plain(sim: GongSimulator) -> list[str]:
    """Fetch with a plain requests loop and urllib3 ``Retry(backoff_factor=1)``, no limiter."""
    retry = Retry(total=5, backoff_factor=1, status_forcelist=(429, 500, 502, 503, 504))
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    ids: list[str] = []
    cursor = None
    while True:
        params = {"fromDateTime": FROM} | ({"cursor": cursor} if cursor else {})
        response = session.get(
            f"{sim.url}/v2/calls", params=params, auth=(sim.access_key, sim.access_key_secret), timeout=60
        )
        response.raise_for_status()
        body = response.json()
        ids += [call["id"] for call in body["calls"]]
        cursor = body["records"].get("cursor")
        if not cursor:
            return ids


def run(name: str, fetch: Fetch, sim: GongSimulator, error_rate: float, rate: float) -> dict[str, Any]:
    """Run one contender against a freshly reset simulator and measure it."""
    sim.reset()
    sim.add_fault(Fault("status", status=503, rate=error_rate))
    time.sleep(1.5)  # a full rate-limit bucket for everyone
    started = time.monotonic()
    error = None
    try:
        ids = fetch(sim)
    except Exception as failure:  # noqa: BLE001 - a contender's failure is a result to record
        ids, error = [], f"{type(failure).__name__}: {failure}"
    wall = time.monotonic() - started
    log = sim.requests()
    statuses = [entry["status"] for entry in log]
    arrivals = [entry["time"] for entry in log]
    pages = statuses.count(200)
    expected = [call["id"] for call in sim.data.select("calls")]
    result = {
        "contender": name,
        "wall_seconds": round(wall, 2),
        "records_fetched": len(ids),
        "records_expected": len(expected),
        "every_record_exactly_once": sorted(ids) == sorted(expected),
        "error": error,
        "requests_sent": len(log),
        "pages_received": pages,
        "responses_429": statuses.count(429),
        "responses_5xx": sum(1 for status in statuses if status and status >= 500),
        "pages_per_second": round(pages / wall, 3),
        "requests_per_second": round(len(log) / wall, 3),
        "busiest_second_requests": busiest_second(arrivals),
        # After the first second's burst: requests per second between the first and last arrival.
        "sustained_rate_used": round((len(log) - rate) / (arrivals[-1] - arrivals[0]) / rate, 3),
    }
    print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print and write its JSON, and return it.

    :param argv: command-line arguments (``--calls``, ``--error-rate``, ``--output``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--error-rate", type=float, default=0.10)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rate = 3.0
    contenders: list[tuple[str, Fetch]] = [
        ("ours, 3 time slices at once (iter_pages_parallel)", fetch_ours_sliced),
        ("ours, one cursor stream (iter_calls)", fetch_ours()),
        ("ours, one cursor stream, calls spaced evenly at 1/3 s", fetch_ours(RateLimiter(rate))),
        ("plain requests + urllib3 Retry(backoff_factor=1)", fetch_plain),
    ]
    with GongSimulator(seed=42, calls=args.calls, days=90, settings=Settings(rate_limit=rate)) as sim:
        results = [run(name, fetch, sim, args.error_rate, rate) for name, fetch in contenders]
    ours, baseline = results[0], results[-1]
    report = {
        "benchmark": "gong_bench",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "setup": {
            "calls": args.calls,
            "pages": -(-args.calls // 100),
            "simulator_rate_limit_rps": rate,
            "injected_5xx_rate": args.error_rate,
        },
        "results": results,
        "ratios_ours_sliced_vs_plain": {
            "wall_time": round(ours["wall_seconds"] / baseline["wall_seconds"], 3),
            "pages_per_second": round(ours["pages_per_second"] / baseline["pages_per_second"], 3),
            "responses_429": f"{ours['responses_429']} vs {baseline['responses_429']}",
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main()
