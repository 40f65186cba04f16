"""Scenario ``http_retry``: a task's requests while Gong is down, naive retry loop vs our client.

The Gong simulator (real HTTP on loopback) answers every ``/v2`` request with 503 for the
whole scenario. A task wants ``requests`` responses from ``GET /v2/users``:

* before: the original's loop, ``while True: get; if ok: break; sleep(naive_delay_s)``.
  It never gives up while the upstream is down, so the scenario cuts it at ``cap_s``:
  its time to give up is unbounded (reported as "≥ cap") and its requests grow with time;
* after: :class:`~airflow_provider_sophia.gong.client.GongClient` with ``max_attempts``
  attempts per request (full-jitter backoff from ``base_delay`` to ``max_delay``) and a
  circuit breaker that opens after ``breaker_fail_max`` failures, after which the
  remaining requests are refused locally without touching the network.

Requests reaching the upstream are counted from the simulator's request log.
"""

from __future__ import annotations

import math
import time
from typing import Any

import requests

from airflow_provider_sophia.profiling.progress import Progress, silent
from airflow_provider_sophia.profiling.results import ScenarioResult

DESCRIPTION = "Requests sent and time to give up while Gong returns 503: unbounded retry loop vs our client."
DEFAULTS: dict[str, Any] = {
    "requests": 20,
    "cap_s": 10.0,
    "naive_delay_s": 0.25,
    "max_attempts": 5,
    "base_delay": 0.25,
    "max_delay": 2.0,
    "breaker_fail_max": 5,
    "rate_limit_per_second": 3.0,
    "status": 503,
}
SMALL: dict[str, Any] = {
    "requests": 5,
    "cap_s": 1.0,
    "naive_delay_s": 0.05,
    "base_delay": 0.02,
    "max_delay": 0.1,
}
PATH = "/v2/users"


def _naive(base_url: str, auth: tuple[str, str], p: dict[str, Any], progress: Progress) -> tuple[float, int]:
    """Run the naive loop until every request succeeded or ``cap_s`` passed; return (seconds, done)."""
    started = time.perf_counter()
    done = 0
    with requests.Session() as session:
        while done < p["requests"]:
            while time.perf_counter() - started < p["cap_s"]:
                if session.get(f"{base_url}{PATH}", auth=auth, timeout=10).ok:
                    done += 1
                    break
                time.sleep(p["naive_delay_s"])
                progress(min((time.perf_counter() - started) / p["cap_s"], 1.0) / 2, "http_retry: naive loop")
            else:
                break
    return time.perf_counter() - started, done


def _ours(
    base_url: str, auth: tuple[str, str], p: dict[str, Any], progress: Progress
) -> tuple[float, dict[str, int], float]:
    """Send the requests through our client; return (seconds, outcome counts, policy bound)."""
    from airflow_provider_sophia.exceptions import GongCircuitOpen, GongRetryExhausted
    from airflow_provider_sophia.gong.client import GongClient

    outcomes = {"ok": 0, "retry_exhausted": 0, "circuit_open": 0}
    client = GongClient(
        base_url,
        *auth,
        max_attempts=p["max_attempts"],
        base_delay=p["base_delay"],
        max_delay=p["max_delay"],
        timeout=10.0,
        rate_limit_per_second=p["rate_limit_per_second"],
        breaker_fail_max=p["breaker_fail_max"],
        breaker_reset_timeout=3600.0,
        breaker_name=f"profiling-http-retry-{time.monotonic_ns()}",
    )
    started = time.perf_counter()
    with client:
        for index in range(p["requests"]):
            try:
                client.request("GET", PATH)
                outcomes["ok"] += 1
            except GongRetryExhausted:
                outcomes["retry_exhausted"] += 1
            except GongCircuitOpen:
                outcomes["circuit_open"] += 1
            progress(0.5 + (index + 1) / p["requests"] / 2, "http_retry: our client")
    elapsed = time.perf_counter() - started
    requests_to_open = math.ceil(p["breaker_fail_max"] / p["max_attempts"])
    attempts = requests_to_open * p["max_attempts"]
    bound = client.policy.worst_case_seconds(0.0) * requests_to_open + attempts / p["rate_limit_per_second"]
    return elapsed, outcomes, bound


def _next_seq(sim: Any) -> int:
    """Return the sequence number the simulator will give its next request."""
    return max((entry["seq"] for entry in sim.requests()), default=0) + 1


def run(progress: Progress = silent, **params: Any) -> ScenarioResult:
    """Run the naive loop and our client against a simulator that answers ``status`` to everything.

    :param progress: called with the share of the work done.
    :param params: overrides of :data:`DEFAULTS`: ``requests`` (the task's requests),
        ``cap_s`` (where the naive loop is cut), ``naive_delay_s``, ``max_attempts``,
        ``base_delay``, ``max_delay``, ``breaker_fail_max``, ``rate_limit_per_second`` (our
        client's limiter), ``status`` (the failure answered).
    """
    from airflow_provider_sophia.gong.simulator import Fault, GongSimulator

    p = DEFAULTS | params
    result = ScenarioResult("http_retry", dict(p))
    with GongSimulator(seed=8, users=10, calls=10) as sim:
        sim.configure(rate_limit=None)
        sim.add_fault(Fault(kind="status", status=p["status"], path="/v2"))
        auth = (sim.access_key, sim.access_key_secret)

        mark, wall0 = _next_seq(sim), time.time()
        naive_s, naive_done = _naive(sim.url, auth, p, progress)
        naive_times = [entry["time"] - wall0 for entry in sim.requests(mark)]

        mark, wall0 = _next_seq(sim), time.time()
        ours_s, outcomes, bound = _ours(sim.url, auth, p, progress)
        our_times = [entry["time"] - wall0 for entry in sim.requests(mark)]

    capped = naive_done < p["requests"]
    result.add("time_to_give_up_s", naive_s, "s", "lower", "before", capped=capped)
    result.add("requests_while_down", len(naive_times), "requests", "lower", "before")
    result.add("time_to_give_up_s", ours_s, "s", "lower", min_delta=bound)
    result.add("requests_while_down", len(our_times), "requests", "lower", min_delta=1)
    result.add("refused_locally", outcomes["circuit_open"], "requests", "higher")
    result.series = {
        "before": {
            "request_times": naive_times,
            "outcome": f"still retrying when cut at {p['cap_s']:g} s" if capped else "done",
        },
        "after": {
            "request_times": our_times,
            "outcome": f"gave up; {outcomes['circuit_open']} more refused locally by the open breaker",
        },
        "window_s": max(naive_s, ours_s),
    }
    rate = len(naive_times) / naive_s if naive_s else 0.0
    result.notes += [
        f"Naive loop: {'still retrying' if capped else 'finished'} after {naive_s:.3g} s with "
        f"{len(naive_times)} requests ({rate:.3g}/s, for as long as the upstream stays down); "
        f"{naive_done}/{p['requests']} requests done.",
        f"Ours: gave up on all {p['requests']} requests in {ours_s:.3g} s (bound {bound:.3g} s: backoff "
        f"caps plus rate-limited attempts) after {len(our_times)} requests reached the upstream; "
        f"{outcomes['retry_exhausted']} raised GongRetryExhausted, {outcomes['circuit_open']} were "
        "refused by the open circuit breaker without a request.",
    ]
    progress(1.0, "http_retry done")
    return result
