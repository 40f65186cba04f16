"""GongClient against the Gong simulator over real HTTP on loopback."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_sophia.exceptions import (
    GongAuthError,
    GongCircuitOpen,
    GongError,
    GongMalformedResponse,
    GongRateLimited,
    GongRetryExhausted,
)
from airflow_provider_sophia.gong.client import GongClient
from airflow_provider_sophia.gong.simulator import Fault, GongSimulator, Settings, SimulatorControl
from airflow_provider_sophia.local.processes import free_port, port_open

pytestmark = pytest.mark.integration

FROM, TO = "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00"


@pytest.fixture
def sim() -> Iterator[GongSimulator]:
    """A simulator with 1,000 calls and no rate limit (tests that need it turn it on)."""
    with GongSimulator(seed=7, calls=1000, settings=Settings(rate_limit=None)) as simulator:
        yield simulator


def make_client(sim: GongSimulator, **overrides: Any) -> GongClient:
    kwargs: dict[str, Any] = {
        "max_attempts": 5,
        "base_delay": 0.01,
        "max_delay": 0.05,
        "rate_limit_per_second": None,
        "timeout": 5.0,
        "breaker_fail_max": 50,
    }
    return GongClient(sim.url, sim.access_key, sim.access_key_secret, **(kwargs | overrides))


def ids(records: list[dict[str, Any]], key: str = "id") -> list[str]:
    return [record[key] for record in records]


# --- paging and every record exactly once --------------------------------------------


def test_every_record_exactly_once_under_20_percent_503s(sim: GongSimulator) -> None:
    sim.add_fault(Fault("status", status=503, rate=0.2))
    client = make_client(sim, max_attempts=8)
    calls = list(client.iter_calls(FROM, TO))
    extensive = list(client.iter_calls_extensive(FROM, TO, content_selector={"exposedFields": {}}))
    transcripts = list(client.iter_transcripts(from_datetime=FROM, to_datetime=TO))
    expected = ids(sim.data.select("calls", None, None))
    assert ids(calls) == expected
    assert [record["metaData"]["id"] for record in extensive] == expected
    assert ids(transcripts, "callId") == expected
    log = sim.requests()
    assert Counter(entry["status"] for entry in log)[503] > 0
    stats = client.stats()
    assert stats.retries == stats.server_errors > 0
    assert stats.pages == 30
    assert stats.records == 3000
    assert stats.requests == len(log)


def test_page_iterator_exposes_cursors_and_get_vs_post_placement(sim: GongSimulator) -> None:
    client = make_client(sim)
    pages = list(client.iter_pages("calls", FROM, TO))
    assert [page.index for page in pages] == list(range(10))
    assert pages[0].request_cursor is None
    assert all(page.cursor == after.request_cursor for page, after in itertools.pairwise(pages))
    assert pages[-1].cursor is None
    assert pages[0].total_records == 1000
    get_log = sim.requests(path="/v2/calls")
    assert all(entry["json"] is None and entry["query"]["fromDateTime"] == FROM for entry in get_log)
    assert [entry["query"].get("cursor") for entry in get_log] == [page.request_cursor for page in pages]

    list(client.iter_calls_extensive(FROM, TO))
    post_log = sim.requests(path="/v2/calls/extensive")
    assert len(post_log) == 10
    assert all(entry["query"] == {} for entry in post_log)  # filter and cursor in the body
    assert all(entry["json"]["filter"] == {"fromDateTime": FROM, "toDateTime": TO} for entry in post_log)
    assert "cursor" not in post_log[0]["json"]
    assert all(entry["json"]["cursor"] for entry in post_log[1:])


def test_transcripts_batch_call_ids(sim: GongSimulator) -> None:
    call_ids = ids(sim.data.select("calls"))[:250]
    client = make_client(sim, call_id_batch_size=100)
    transcripts = list(client.iter_transcripts(call_ids=iter(call_ids)))
    assert ids(transcripts, "callId") == call_ids
    bodies = [entry["json"] for entry in sim.requests(path="/v2/calls/transcript")]
    assert [len(body["filter"]["callIds"]) for body in bodies] == [100, 100, 50]


def test_time_slices_at_once_give_every_record_exactly_once_under_20_percent_503s(
    sim: GongSimulator,
) -> None:
    sim.add_fault(Fault("status", status=503, rate=0.2))
    client = make_client(sim, max_attempts=8)
    pages = list(client.iter_pages_parallel("calls_extensive", FROM, TO, slices=3))
    fetched = [record["metaData"]["id"] for page in pages for record in page.records]
    assert sorted(fetched) == sorted(ids(sim.data.select("calls")))
    log = sim.requests()
    filters = [entry["json"]["filter"] for entry in log]
    windows = [(window["fromDateTime"], window["toDateTime"]) for window in filters]
    assert sorted(set(windows)) == [
        ("2024-01-01T00:00:00+00:00", "2024-01-11T08:00:00+00:00"),
        ("2024-01-11T08:00:00+00:00", "2024-01-21T16:00:00+00:00"),
        ("2024-01-21T16:00:00+00:00", "2024-02-01T00:00:00+00:00"),
    ]
    assert Counter(entry["status"] for entry in log)[503] > 0


def test_time_slices_are_fetched_at_the_same_time(sim: GongSimulator) -> None:
    sim.add_fault(Fault("latency", latency=0.1))
    started = time.monotonic()
    pages = list(make_client(sim).iter_pages_parallel("calls", FROM, TO, slices=3))
    elapsed = time.monotonic() - started
    assert sum(len(page.records) for page in pages) == 1000
    # One after the other, the requests would take 0.1 s each.
    assert elapsed < 0.6 * 0.1 * len(sim.requests())


def test_a_failing_time_slice_stops_the_others_and_raises(sim: GongSimulator) -> None:
    sim.add_fault(Fault("latency", latency=0.2))
    sim.add_fault(Fault("status", status=401, count=1))
    client = make_client(sim)
    with pytest.raises(GongAuthError):
        list(client.iter_pages_parallel("calls", FROM, TO, slices=3))
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("sophia-gong-")]
    assert len(sim.requests()) <= 6  # each slice stopped after the page it was fetching


@pytest.mark.parametrize(
    ("stream", "window", "slices"),
    [
        ("users", (FROM, TO), 3),
        ("calls", (FROM, TO), 0),
        ("calls", (TO, FROM), 2),
        ("calls", ("soon", TO), 2),
        ("calls", (None, TO), 2),
    ],
)
def test_time_slices_reject_bad_input_before_any_request(
    sim: GongSimulator, stream: str, window: tuple[str, str], slices: int
) -> None:
    with pytest.raises(ValueError):
        make_client(sim).iter_pages_parallel(stream, *window, slices=slices)
    assert sim.requests() == []


def test_no_calls_found_is_an_empty_result(sim: GongSimulator) -> None:
    client = make_client(sim)
    assert list(client.iter_calls("2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")) == []
    assert list(client.iter_transcripts(call_ids=["999"])) == []
    assert [entry["status"] for entry in sim.requests()] == [404, 404]


def test_resume_from_the_page_cursor_after_rate_limited(sim: GongSimulator) -> None:
    client = make_client(sim)
    pages = client.iter_pages("calls", FROM, TO)
    fetched = [record for _, page in zip(range(3), pages, strict=False) for record in page.records]
    sim.configure(daily_quota=0, quota_retry_after=7200)
    with pytest.raises(GongRateLimited) as limited:
        next(pages)
    assert limited.value.retry_after == 7200
    assert pages.cursor is not None
    assert pages.pages == 3
    assert not pages.done
    sim.configure(daily_quota=None)
    resumed = client.iter_pages("calls", FROM, TO, cursor=pages.cursor, batch=pages.batch)
    fetched += [record for page in resumed for record in page.records]
    assert resumed.done
    assert ids(fetched) == ids(sim.data.select("calls"))


def test_resuming_time_slices_needs_their_windows(sim: GongSimulator) -> None:
    with pytest.raises(ValueError, match="needs 'from' and 'to'"):
        make_client(sim).iter_pages_parallel("calls", resume=[{"from": FROM, "cursor": "x"}])
    assert sim.requests() == []


def test_time_slices_resume_where_each_stopped_after_rate_limited(sim: GongSimulator) -> None:
    client = make_client(sim)
    sim.configure(daily_quota=5, quota_retry_after=7200)
    pages = client.iter_pages_parallel("calls", FROM, TO, slices=3)
    fetched: list[dict[str, Any]] = []

    def take_all() -> None:
        for page in pages:
            fetched.extend(page.records)

    with pytest.raises(GongRateLimited):
        take_all()
    assert 0 < pages.pages <= 5
    point = json.loads(json.dumps(pages.resume_point()))  # what a deferred task keeps
    assert point == pages.resume_point()
    assert 1 <= len(point["resume"]) <= 3
    sim.configure(daily_quota=None)
    resumed = client.iter_pages_parallel("calls", slices=3, **point)
    fetched += [record for page in resumed for record in page.records]
    assert resumed.done
    assert resumed.resume_point() == {"resume": []}
    assert sorted(ids(fetched)) == sorted(ids(sim.data.select("calls")))  # each record once


def test_a_changed_record_is_served_changed(sim: GongSimulator) -> None:
    client = make_client(sim)
    before = list(client.iter_calls(FROM, TO))
    target = before[500]["id"]
    SimulatorControl(sim.url).update_record(target, {"title": "Renamed"})
    after = list(client.iter_calls(FROM, TO))
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert [(old["id"], new["title"]) for old, new in changed] == [(target, "Renamed")]


# --- bounded retries -----------------------------------------------------------------


def test_attempts_never_exceed_max_attempts_and_time_is_bounded(sim: GongSimulator) -> None:
    sim.add_fault(Fault("status", status=503))
    client = make_client(sim, max_attempts=4, base_delay=0.05, max_delay=0.1)
    started = time.monotonic()
    with pytest.raises(GongRetryExhausted) as exhausted:
        client.request("GET", "/v2/users")
    elapsed = time.monotonic() - started
    assert exhausted.value.attempts == 4
    assert exhausted.value.last_status == 503
    assert len(sim.requests()) == 4
    # Backoffs of at most 0.05 + 0.1 + 0.1 s, plus four fast loopback attempts.
    assert elapsed <= client.policy.worst_case_seconds(attempt_seconds=0.1)


def test_attempts_per_request_under_random_faults(sim: GongSimulator) -> None:
    sim.add_fault(Fault("status", status=502, rate=0.5))
    client = make_client(sim, max_attempts=3)
    attempts, exhausted = [], []
    for _ in range(30):
        before = client.stats().requests
        try:
            client.request("GET", "/v2/users")
        except GongRetryExhausted as error:
            exhausted.append(error.attempts)
        attempts.append(client.stats().requests - before)
    assert exhausted  # some requests used up their attempts ...
    assert set(exhausted) == {3}
    assert max(attempts) == 3  # ... and none made more than max_attempts
    assert sum(attempts) == len(sim.requests())


def test_deadline_bounds_a_request(sim: GongSimulator) -> None:
    sim.add_fault(Fault("latency", latency=0.3))
    client = make_client(sim, max_attempts=10, timeout=0.1, deadline=0.5)
    started = time.monotonic()
    with pytest.raises(GongRetryExhausted) as exhausted:
        client.request("GET", "/v2/users")
    assert time.monotonic() - started < 0.9
    assert exhausted.value.last_status is None  # read timeouts


def test_401_after_exactly_one_request(sim: GongSimulator) -> None:
    client = GongClient(sim.url, sim.access_key, "wrong-secret", base_delay=0.01, rate_limit_per_second=None)
    with pytest.raises(GongAuthError, match="check the access key"):
        list(client.iter_users())
    assert [entry["status"] for entry in sim.requests()] == [401]


def test_other_4xx_are_not_retried(sim: GongSimulator) -> None:
    client = make_client(sim)
    with pytest.raises(GongError, match=r"HTTP 400 .*Invalid cursor") as error:
        client.request("GET", "/v2/calls", params={"cursor": "not-a-cursor"})
    assert not isinstance(error.value, GongRetryExhausted)
    assert len(sim.requests()) == 1


def test_retry_after_is_honoured(sim: GongSimulator) -> None:
    sim.add_fault(Fault("status", status=429, retry_after=1, count=1))
    client = make_client(sim)
    started = time.monotonic()
    assert client.request("GET", "/v2/users")["records"]["totalRecords"] == 25
    assert time.monotonic() - started >= 1.0
    first, second = sim.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 1.0
    assert client.stats().throttled == 1


def test_retry_after_over_the_cap_raises_at_once(sim: GongSimulator) -> None:
    sim.configure(daily_quota=2, quota_retry_after=5 * 3600)
    client = make_client(sim, max_retry_after=300.0)
    client.request("GET", "/v2/users")
    client.request("GET", "/v2/users")
    started = time.monotonic()
    with pytest.raises(GongRateLimited, match="asked to wait 18000s") as limited:
        client.request("GET", "/v2/users")
    assert time.monotonic() - started < 0.5
    assert limited.value.retry_after == 18000
    assert len(sim.requests()) == 3


# --- transport faults ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["drop", "truncate"])
def test_network_faults_are_retried(sim: GongSimulator, kind: str) -> None:
    sim.add_fault(Fault(kind, count=2))
    client = make_client(sim)
    assert len(list(client.iter_users())) == 25
    assert [entry["fault"] for entry in sim.requests()] == [kind, kind, None]
    assert client.stats().network_errors == 2


def test_malformed_json_is_retried_once(sim: GongSimulator) -> None:
    sim.add_fault(Fault("malformed", count=1))
    client = make_client(sim)
    assert len(list(client.iter_users())) == 25
    assert len(sim.requests()) == 2


def test_malformed_json_twice_names_endpoint_and_request_id(sim: GongSimulator) -> None:
    sim.add_fault(Fault("malformed", count=2))
    client = make_client(sim)
    with pytest.raises(GongMalformedResponse) as error:
        client.request("GET", "/v2/users")
    assert len(sim.requests()) == 2
    assert error.value.endpoint == "GET /v2/users"
    assert "GET /v2/users" in str(error.value)


def test_a_repeating_cursor_is_detected(sim: GongSimulator) -> None:
    sim.add_fault(Fault("repeat_cursor"))
    client = make_client(sim)
    with pytest.raises(GongError, match="a second time"):
        list(client.iter_calls(FROM, TO))
    assert len(sim.requests()) == 2  # the first page, then the page that repeated its cursor


# --- circuit breaker -----------------------------------------------------------------


def test_breaker_opens_refuses_without_network_half_opens_and_closes(sim: GongSimulator) -> None:
    sim.add_fault(Fault("status", status=500))
    client = make_client(sim, max_attempts=5, breaker_fail_max=3, breaker_reset_timeout=0.5)
    with pytest.raises(GongCircuitOpen):
        client.request("GET", "/v2/users")
    assert len(sim.requests()) == 3  # opened at the 3rd consecutive failure, no 4th attempt
    assert client.breaker.current_state == "open"
    for _ in range(5):
        with pytest.raises(GongCircuitOpen, match="retry in"):
            client.request("GET", "/v2/users")
    assert len(sim.requests()) == 3  # zero requests while open
    time.sleep(0.55)
    with pytest.raises(GongCircuitOpen):  # the half-open trial fails: open again
        client.request("GET", "/v2/users")
    assert len(sim.requests()) == 4
    sim.clear_faults()
    time.sleep(0.55)
    assert client.request("GET", "/v2/users")["records"]["totalRecords"] == 25
    assert client.breaker.current_state == "closed"
    assert client.stats().circuit_rejections >= 6


def test_4xx_and_429_do_not_count_for_the_breaker(sim: GongSimulator) -> None:
    sim.add_fault(Fault("status", status=429, retry_after=0, count=4))
    client = make_client(sim, breaker_fail_max=2)
    client.request("GET", "/v2/users")
    for _ in range(3):
        with pytest.raises(GongError):
            client.request("GET", "/v2/calls", params={"cursor": "bad"})
    assert client.breaker.current_state == "closed"
    assert client.breaker.fail_counter == 0


# --- rate limiting -------------------------------------------------------------------


@pytest.mark.slow
def test_no_429_in_60_pages_at_3_rps_while_a_naive_client_gets_429s() -> None:
    with GongSimulator(seed=3, calls=6000, days=60) as sim:  # the simulator enforces 3 rps
        naive = requests.Session()
        statuses = [
            naive.get(f"{sim.url}/v2/users", auth=(sim.access_key, sim.access_key_secret)).status_code
            for _ in range(10)
        ]
        assert statuses.count(429) > 0
        time.sleep(1.0)  # let the simulator's bucket refill
        since = len(sim.requests()) + 1
        client = GongClient(sim.url, sim.access_key, sim.access_key_secret, rate_limit_per_second=3.0)
        started = time.monotonic()
        pages = list(client.iter_pages("calls", "2024-01-01T00:00:00Z"))
        elapsed = time.monotonic() - started
        log = sim.requests(since=since)
    assert len(pages) == 60
    assert sum(len(page.records) for page in pages) == 6000
    assert [entry["status"] for entry in log] == [200] * 60
    assert client.stats().throttled == 0
    arrivals = [entry["time"] for entry in log]
    assert max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals) <= 3
    assert 57 / 3.0 - 0.1 <= elapsed < 59 / 3.0 + 3.0  # bursts of 3, one second apart


# --- secrets and the simulator's own interfaces ------------------------------------


def test_secret_and_authorization_header_never_logged(
    sim: GongSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.add_fault(Fault("status", status=503, count=2))
    client = make_client(sim)
    list(client.iter_users())
    with pytest.raises(GongAuthError) as error:
        GongClient(sim.url, sim.access_key, "a-wrong-secret", rate_limit_per_second=None).request(
            "GET", "/v2/users"
        )
    header = requests.auth._basic_auth_str(sim.access_key, sim.access_key_secret)
    for text in (caplog.text, str(error.value), repr(client)):
        assert sim.access_key_secret not in text
        assert header.split()[1] not in text
        assert "a-wrong-secret" not in text


def test_simulator_control_over_http(sim: GongSimulator) -> None:
    control = SimulatorControl(sim.url)
    control.add_fault(Fault("status", status=504, count=1))
    assert control.configure(rate_limit=100.0)["rate_limit"] == 100.0
    client = make_client(sim)
    list(client.iter_users())
    log = control.requests()
    assert [entry["status"] for entry in log] == [504, 200]
    assert control.requests(since=log[-1]["seq"]) == log[-1:]
    control.reset()
    assert control.requests() == []
    assert sim.settings.rate_limit is None
    assert sim.faults == []


def test_simulator_runs_as_a_process() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_sophia.gong.simulator", "--port", str(port), "--seed", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert process.poll() is None, "simulator exited"
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        client = GongClient(f"http://127.0.0.1:{port}", "sim-access-key", "sim-access-key-secret")
        assert len(list(client.iter_users())) == 25
        assert [entry["path"] for entry in SimulatorControl(client.base_url).requests()] == ["/v2/users"]
    finally:
        process.terminate()
        process.wait(timeout=10)
