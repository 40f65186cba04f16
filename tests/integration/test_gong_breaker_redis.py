"""Two real processes share one Gong circuit breaker through Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_sophia.gong.simulator import Fault, GongSimulator, Settings

pytestmark = pytest.mark.integration

#: A worker process: one request per line read from stdin, each reported as a JSON line.
WORKER = """
import json, sys
from airflow_provider_sophia.exceptions import GongError
from airflow_provider_sophia.gong.client import GongClient

url, key, secret, redis_url, name = sys.argv[1:6]
client = GongClient(url, key, secret, max_attempts=2, base_delay=0.01, rate_limit_per_second=None,
                    breaker_redis_url=redis_url, breaker_name=name, breaker_fail_max=4,
                    breaker_reset_timeout=2)
for _ in sys.stdin:
    before = client.stats().requests
    try:
        client.request("GET", "/v2/users")
        outcome = "ok"
    except GongError as error:
        outcome = type(error).__name__
    print(json.dumps({"outcome": outcome, "state": client.breaker.current_state,
                      "requests": client.stats().requests - before}), flush=True)
"""


class Worker:
    """A separate Python process holding its own GongClient with a Redis-backed breaker."""

    def __init__(self, sim: GongSimulator, redis_url: str, name: str) -> None:
        args = [sim.url, sim.access_key, sim.access_key_secret, redis_url, name]
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def request(self) -> dict[str, Any]:
        """Make the worker send one request; return its report."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def breaker_name(redis_url: str) -> Iterator[str]:
    """A breaker namespace unique to this test; its Redis keys are deleted afterwards."""
    import redis

    name = f"sophia-test:gong:{os.getpid()}:{os.urandom(3).hex()}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)


def test_two_processes_share_breaker_state(redis_url: str, breaker_name: str) -> None:
    with GongSimulator(seed=2, settings=Settings(rate_limit=None)) as sim:
        a, b = Worker(sim, redis_url, breaker_name), Worker(sim, redis_url, breaker_name)
        try:
            sim.add_fault(Fault("status", status=503))
            # A: 2 failures (fail_max is 4), the breaker stays closed.
            assert a.request() == {"outcome": "GongRetryExhausted", "state": "closed", "requests": 2}
            # B: 2 more failures; with A's they open the shared breaker.
            assert b.request() == {"outcome": "GongRetryExhausted", "state": "open", "requests": 2}
            assert len(sim.requests()) == 4
            # Both processes are now refused locally: not one request is sent.
            refused = {"outcome": "GongCircuitOpen", "state": "open", "requests": 0}
            assert [a.request(), b.request(), a.request()] == [refused] * 3
            assert len(sim.requests()) == 4
            # After the reset timeout, B's successful trial closes the breaker for A too.
            sim.clear_faults()
            time.sleep(2.1)
            assert b.request() == {"outcome": "ok", "state": "closed", "requests": 1}
            assert a.request() == {"outcome": "ok", "state": "closed", "requests": 1}
        finally:
            a.close()
            b.close()
