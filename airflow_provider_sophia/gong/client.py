"""A Gong REST v2 client that never retries forever and never hammers a sick upstream.

Every request is bounded by a :class:`~airflow_provider_sophia.resilience.RetryPolicy`,
held to Gong's calls-per-second window by a :class:`~airflow_provider_sophia.resilience.RateLimiter`
(so a healthy run never sees a 429) and guarded by a circuit breaker that counts 5xx and
network failures only. Lists stream page by page; a :class:`PageIterator` tells where
to resume (``cursor`` and ``batch``) after an error such as :class:`GongRateLimited`, and
:meth:`GongClient.iter_pages_parallel` pages time slices at once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pybreaker
import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth

from airflow_provider_sophia.exceptions import (
    GongAuthError,
    GongCircuitOpen,
    GongError,
    GongMalformedResponse,
    GongRateLimited,
    GongRetryExhausted,
)
from airflow_provider_sophia.gong.parallel import interleave
from airflow_provider_sophia.resilience import (
    BreakerGuard,
    CircuitOpenError,
    RateLimiter,
    RetryBudget,
    RetryPolicy,
    parse_retry_after,
    redis_breaker,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.gong.io"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
EMPTY_RESULT = re.compile(r"\bno \w+ found\b", re.IGNORECASE)
CALL_ID = re.compile(r"[0-9]{1,32}\Z")


@dataclass(frozen=True)
class Endpoint:
    """How one stream is fetched: method, path and the JSON key holding its records."""

    method: str
    path: str
    records_key: str
    takes_call_ids: bool = False


STREAMS = {
    "users": Endpoint("GET", "/v2/users", "users"),
    "calls": Endpoint("GET", "/v2/calls", "calls"),
    "calls_extensive": Endpoint("POST", "/v2/calls/extensive", "calls", takes_call_ids=True),
    "transcripts": Endpoint("POST", "/v2/calls/transcript", "callTranscripts", takes_call_ids=True),
}


@dataclass(frozen=True)
class GongClientStats:
    """Counters of one client since it was created (a snapshot).

    :param requests: HTTP attempts sent (retries included).
    :param retries: attempts that were retries.
    :param pages: list pages received.
    :param records: records in those pages.
    :param throttled: 429 answers received.
    :param server_errors: 5xx answers received.
    :param network_errors: connection errors, timeouts and bodies cut off.
    :param circuit_rejections: requests refused locally by the open breaker.
    :param sleep_seconds: seconds slept between attempts (backoff and ``Retry-After``).
    """

    requests: int = 0
    retries: int = 0
    pages: int = 0
    records: int = 0
    throttled: int = 0
    server_errors: int = 0
    network_errors: int = 0
    circuit_rejections: int = 0
    sleep_seconds: float = 0.0


@dataclass(frozen=True)
class Page:
    """One page of a stream.

    :param stream: the stream name.
    :param records: the page's records.
    :param index: 0-based position of the page within its iteration.
    :param batch: index of the ``callIds`` batch it belongs to (0 without batching).
    :param request_cursor: the cursor that fetched it (``None`` for a first page).
    :param cursor: the cursor of the next page, ``None`` when this was the last of its batch.
    :param total_records: Gong's ``records.totalRecords`` of the query.
    :param request_id: Gong's ``requestId``.
    """

    stream: str
    records: list[dict[str, Any]]
    index: int
    batch: int
    request_cursor: str | None
    cursor: str | None
    total_records: int | None
    request_id: str | None


class _Transient(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, reason: str, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


class _ServerError(_Transient):
    """A 5xx answer: transient, and counted by the circuit breaker."""


def _counts_for_breaker(error: BaseException) -> bool:
    return isinstance(error, (_ServerError, requests.RequestException))


def _iso(value: datetime | str | None, name: str) -> str | None:
    """Return a date-time as ISO-8601 (a naive datetime is taken as UTC); valid ISO strings pass as given.

    :raises ValueError: when ``value`` is neither a datetime nor ISO-8601 text (nothing is sent).
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{name}={value[:100]!r} is not an ISO-8601 date-time; use e.g. '2024-01-16T08:00:00Z'."
            ) from None
        return value
    if not isinstance(value, datetime):
        raise ValueError(f"{name}={value!r} is a {type(value).__name__}, not a datetime or ISO-8601 text.")
    moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def _moment(value: datetime | str, name: str) -> datetime:
    """Return a date-time (datetime or ISO-8601 text) as an aware datetime; naive means UTC."""
    moment = datetime.fromisoformat(str(_iso(value, name)))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _time_slices(from_datetime: datetime | str, to_datetime: datetime | str, slices: int) -> list[str]:
    """Return ``slices + 1`` ISO-8601 edges cutting ``[from_datetime, to_datetime)`` into equal slices.

    :raises ValueError: for ``slices`` below 1, or a window that is empty or not ISO-8601.
    """
    if slices < 1:
        raise ValueError(f"slices must be at least 1, got {slices!r}.")
    start, end = _moment(from_datetime, "from_datetime"), _moment(to_datetime, "to_datetime")
    if end <= start:
        raise ValueError(f"The window [{start.isoformat()}, {end.isoformat()}) is empty.")
    step = (end - start) / slices
    return [(start + step * index).isoformat() for index in range(slices)] + [end.isoformat()]


def _call_ids(call_ids: Iterable[str] | None) -> list[str] | None:
    """Return ``call_ids`` as a list after checking each is a Gong call id (digits).

    :raises ValueError: for a single string instead of a list, or an id that is not 1-32 digits.
    """
    if call_ids is None:
        return None
    if isinstance(call_ids, str | bytes):
        raise ValueError(f"call_ids must be a list of call ids, got the string {call_ids[:100]!r}.")
    ids = list(call_ids)
    for call_id in ids:
        if isinstance(call_id, bool) or not isinstance(call_id, str | int) or not CALL_ID.match(str(call_id)):
            raise ValueError(f"Gong call id {call_id!r:.100} is not a call id (1 to 32 digits).")
    return ids


def _request_id(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("requestId")) if isinstance(body, dict) and body.get("requestId") else None


class GongClient:
    """Gong REST v2 client with bounded retries, a circuit breaker and client-side rate limiting.

    :param base_url: ``https://api.gong.io`` or the company's own ``https://<company>.api.gong.io``.
    :param access_key: the Gong API access key (Basic auth user).
    :param access_key_secret: the access key secret (Basic auth password); never logged.
    :param max_attempts: attempts per request, the first included.
    :param base_delay: base of the full-jitter exponential backoff (seconds).
    :param max_delay: cap of one backoff delay (seconds).
    :param rate_limit_per_second: client-side request rate, counted the way Gong counts it: that
        many calls in any one-second window, each until its response has arrived; ``None`` or 0
        disables the limiter.
    :param timeout: read timeout of one attempt (seconds).
    :param max_retry_after: longest ``Retry-After`` slept; a longer one raises :class:`GongRateLimited`.
    :param breaker: a :class:`pybreaker.CircuitBreaker` to use as given; ``None`` builds one.
    :param breaker_redis_url: keep the built breaker's state in Redis, shared by every process.
    :param breaker_name: name (and Redis namespace) of the built breaker; per host by default.
    :param breaker_fail_max: consecutive 5xx / network failures that open the built breaker.
    :param breaker_reset_timeout: seconds the built breaker stays open before a trial call.
    :param connect_timeout: connect timeout of one attempt (seconds).
    :param deadline: seconds one request may take in total, retries included; ``None`` for none.
    :param rate_limiter: a limiter shared with other clients instead of an own one.
    :param call_id_batch_size: ``callIds`` sent per request when a list of ids is given.
    :param session: a :class:`requests.Session` to use instead of an own one.
    """

    def __init__(
        self,
        base_url: str,
        access_key: str,
        access_key_secret: str,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        rate_limit_per_second: float | None = 3.0,
        timeout: float = 60.0,
        max_retry_after: float = 300.0,
        breaker: pybreaker.CircuitBreaker | None = None,
        *,
        breaker_redis_url: str | None = None,
        breaker_name: str | None = None,
        breaker_fail_max: int = 5,
        breaker_reset_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        deadline: float | None = None,
        rate_limiter: RateLimiter | None = None,
        call_id_batch_size: int = 100,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(base_url or DEFAULT_BASE_URL)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"Gong base URL {base_url!r} is not an http(s) URL; use e.g. {DEFAULT_BASE_URL!r}."
            )
        if not access_key or not access_key_secret:
            raise GongAuthError(
                "A Gong access key and access key secret are both required; set them as the "
                "connection's login and password."
            )
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError(f"Timeouts must be positive seconds, got {timeout!r} / {connect_timeout!r}.")
        if call_id_batch_size < 1:
            raise ValueError(f"call_id_batch_size must be at least 1, got {call_id_batch_size!r}.")
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.policy = RetryPolicy(
            max_attempts=max_attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            deadline=deadline,
            max_retry_after=max_retry_after,
        )
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.call_id_batch_size = call_id_batch_size
        if rate_limiter is None and rate_limit_per_second:
            # Gong counts calls per second: allow one second's calls in any one-second window.
            rate_limiter = RateLimiter(rate_limit_per_second, capacity=max(1, int(rate_limit_per_second)))
        self.rate_limiter = rate_limiter
        if breaker is None:
            name = breaker_name or f"sophia:gong:{parts.netloc}"
            if breaker_redis_url:
                breaker = redis_breaker(breaker_redis_url, name, breaker_fail_max, breaker_reset_timeout)
            else:
                breaker = pybreaker.CircuitBreaker(
                    fail_max=breaker_fail_max, reset_timeout=breaker_reset_timeout, name=name
                )
        self.breaker = breaker
        self._guard = BreakerGuard(breaker, counts=_counts_for_breaker)
        self._auth = HTTPBasicAuth(access_key, access_key_secret)
        self._own_session = session is None
        self._session = session or self._new_session()
        self._rng = random.Random()
        self._stats = GongClientStats()
        self._stats_lock = threading.Lock()

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=16, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-sophia"})
        return session

    def __repr__(self) -> str:
        return f"GongClient(base_url={self.base_url!r})"

    # --- lifecycle and counters -----------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session (when the client created it)."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> GongClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def stats(self) -> GongClientStats:
        """Return a snapshot of the client's counters."""
        with self._stats_lock:
            return self._stats

    def _count(self, **increments: float) -> None:
        with self._stats_lock:
            self._stats = replace(
                self._stats, **{key: getattr(self._stats, key) + value for key, value in increments.items()}
            )

    # --- one request ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one request with bounded retries and return its JSON object.

        The "no calls found" 404 returns an empty page (``records.totalRecords == 0``).

        :param method: HTTP method.
        :param path: path below the base URL, e.g. ``/v2/calls``.
        :param params: query-string parameters.
        :param json: JSON body.
        :raises GongAuthError: on 401/403, after one attempt.
        :raises GongRateLimited: when Gong asks to wait longer than ``max_retry_after``.
        :raises GongRetryExhausted: when every attempt failed transiently.
        :raises GongCircuitOpen: when the breaker is open (nothing is sent).
        :raises GongMalformedResponse: when the body is not JSON twice in a row.
        :raises GongError: on any other 4xx.
        """
        endpoint = f"{method.upper()} {path}"
        budget = self.policy.start()
        malformed_retried = False
        while True:
            self._raise_if_open(endpoint)
            try:
                with self._rate_slot(endpoint, budget):
                    budget.attempts += 1
                    self._count(requests=1, retries=int(budget.attempts > 1))
                    response = self._send(method, path, params, json, budget)
                return self._interpret(response, endpoint)
            except CircuitOpenError as error:
                self._count(circuit_rejections=1)
                raise GongCircuitOpen(f"Gong {endpoint} refused locally: {error}") from error
            except GongMalformedResponse as error:
                if malformed_retried:
                    raise
                malformed_retried = True
                transient = _Transient(str(error), 200)
            except _Transient as error:
                transient = error
            self._wait_before_retry(endpoint, budget, transient)

    @contextlib.contextmanager
    def _rate_slot(self, endpoint: str, budget: RetryBudget) -> Iterator[None]:
        """Hold a rate-limiter token for one attempt (its window starts when the response is in)."""
        if self.rate_limiter is None:
            yield
            return
        with self.rate_limiter.slot(budget.remaining()) as granted:
            if not granted:
                raise GongRetryExhausted(
                    f"Gong {endpoint}: the deadline of {self.policy.deadline}s passes before the rate "
                    f"limiter allows another attempt ({budget.attempts} made).",
                    budget.attempts,
                    None,
                )
            yield

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        budget: RetryBudget,
    ) -> requests.Response:
        """Make one attempt under the breaker; raise :class:`_Transient` for a network error or 5xx."""
        remaining = budget.remaining()
        read_timeout = self.timeout if remaining is None else max(0.001, min(self.timeout, remaining))
        try:
            with self._guard.attempt():
                response = self._session.request(
                    method,
                    f"{self.base_url}{path}",
                    params=params,
                    json=json,
                    auth=self._auth,
                    timeout=(self.connect_timeout, read_timeout),
                )
                # Read the whole body here: a body cut off mid-way is a network failure.
                response.content  # noqa: B018
                if response.status_code >= 500:
                    raise _ServerError(
                        f"HTTP {response.status_code} (requestId {_request_id(response)})",
                        response.status_code,
                        parse_retry_after(response.headers.get("Retry-After")),
                    )
        except _ServerError:
            self._count(server_errors=1)
            raise
        except requests.RequestException as error:
            self._count(network_errors=1)
            raise _Transient(f"{type(error).__name__}: {error}", None) from error
        return response

    def _interpret(self, response: requests.Response, endpoint: str) -> dict[str, Any]:
        """Return the JSON object of a non-5xx response, or raise the matching error."""
        status = response.status_code
        if status == 429:
            self._count(throttled=1)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _Transient(f"HTTP 429 (requestId {_request_id(response)})", status, retry_after)
        if status in (401, 403):
            raise GongAuthError(
                f"Gong rejected the credentials for {endpoint} (HTTP {status}, requestId "
                f"{_request_id(response)}): check the access key and access key secret of the "
                "Gong connection, and that the key may read this endpoint."
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise GongMalformedResponse(
                f"Gong {endpoint} answered HTTP {status} with a body that is not a JSON object "
                f"({len(response.content)} bytes, requestId {_request_id(response)}): the response "
                "was cut off or garbled.",
                endpoint,
                _request_id(response),
            )
        errors = body.get("errors") or []
        if status == 404 and any(EMPTY_RESULT.search(str(message)) for message in errors):
            return {
                "requestId": body.get("requestId"),
                "records": {"totalRecords": 0, "currentPageSize": 0, "currentPageNumber": 0},
            }
        if status >= 400:
            raise GongError(
                f"Gong {endpoint} answered HTTP {status} (requestId {body.get('requestId')}): "
                f"{'; '.join(map(str, errors)) or response.reason}. Client errors are not retried: "
                "fix the request's parameters."
            )
        return body

    def _raise_if_open(self, endpoint: str) -> None:
        remaining = self._guard.open_remaining()
        if remaining > 0:
            self._count(circuit_rejections=1)
            raise GongCircuitOpen(
                f"Gong {endpoint} refused locally: circuit breaker {self.breaker.name!r} is open after "
                f"{self.breaker.fail_max} consecutive failures; retry in {remaining:.1f}s or check "
                "Gong's status."
            )

    def _wait_before_retry(self, endpoint: str, budget: RetryBudget, transient: _Transient) -> None:
        """Sleep before the next attempt, or raise when no further attempt is allowed."""
        if transient.retry_after is not None and transient.retry_after > self.policy.max_retry_after:
            raise GongRateLimited(
                f"Gong {endpoint} asked to wait {transient.retry_after:.0f}s ({transient}), more than "
                f"max_retry_after={self.policy.max_retry_after:g}s: the quota is spent; retry after "
                "that wait.",
                transient.retry_after,
            )
        delay = budget.next_delay(transient.retry_after, self._rng)
        if delay is None:
            raise GongRetryExhausted(
                f"Gong {endpoint} failed {budget.attempts} times in {budget.elapsed():.1f}s; last "
                f"error: {transient}. Gong may be unavailable; retry later.",
                budget.attempts,
                transient.status,
            ) from transient
        self._raise_if_open(endpoint)
        log.warning(
            "Gong %s failed (%s); attempt %d of %d in %.2fs.",
            endpoint,
            transient,
            budget.attempts + 1,
            self.policy.max_attempts,
            delay,
        )
        self._count(sleep_seconds=delay)
        time.sleep(delay)

    # --- paging -----------------------------------------------------------------------

    def iter_pages(
        self,
        stream: str,
        from_datetime: datetime | str | None = None,
        to_datetime: datetime | str | None = None,
        *,
        call_ids: Iterable[str] | None = None,
        content_selector: dict[str, Any] | None = None,
        cursor: str | None = None,
        batch: int = 0,
    ) -> PageIterator:
        """Return an iterator over the pages of ``stream``, fetched one at a time.

        To resume after an error, pass the iterator's ``cursor`` and ``batch`` back in.

        :param stream: ``users``, ``calls``, ``calls_extensive`` or ``transcripts``.
        :param from_datetime: calls started at or after this (ISO-8601 string or datetime).
        :param to_datetime: calls started before this.
        :param call_ids: only these calls (extensive calls and transcripts), sent in batches.
        :param content_selector: ``contentSelector`` of the extensive endpoint.
        :param cursor: resume at this cursor of batch ``batch``.
        :param batch: resume at this ``callIds`` batch.
        :raises ValueError: for an unknown stream, ``call_ids`` on a stream without them, a date
            that is not ISO-8601 or a call id that is not digits (before any request).
        """
        if stream not in STREAMS:
            raise ValueError(f"Unknown Gong stream {stream!r}; expected one of {sorted(STREAMS)}.")
        if call_ids is not None and not STREAMS[stream].takes_call_ids:
            raise ValueError(f"Gong stream {stream!r} cannot be filtered by call ids.")
        return PageIterator(
            self,
            stream,
            _iso(from_datetime, "from_datetime"),
            _iso(to_datetime, "to_datetime"),
            call_ids=_call_ids(call_ids),
            content_selector=content_selector,
            cursor=cursor,
            batch=batch,
        )

    def iter_pages_parallel(
        self,
        stream: str,
        from_datetime: datetime | str | None = None,
        to_datetime: datetime | str | None = None,
        *,
        slices: int = 3,
        content_selector: dict[str, Any] | None = None,
        resume: list[dict[str, Any]] | None = None,
    ) -> SlicedPages:
        """Return the pages of ``stream`` in ``[from_datetime, to_datetime)``, fetched as time slices at once.

        The window is cut into ``slices`` equal half-open slices, each paged by its own thread.
        They share this client's rate limiter and breaker, so while one slice backs off after
        a 5xx or waits for a slow page, the others use the allowed rate. Pages arrive in no
        particular order, every record once; at most ``slices`` pages wait in memory. The
        first error stops every slice and is raised; :meth:`SlicedPages.resume_point` then
        tells where each slice resumes.

        :param stream: ``calls``, ``calls_extensive`` or ``transcripts``.
        :param from_datetime: calls started at or after this.
        :param to_datetime: calls started before this; now by default.
        :param slices: how many slices are fetched at once (>= 1).
        :param content_selector: ``contentSelector`` of the extensive endpoint.
        :param resume: the ``resume`` of an earlier :meth:`SlicedPages.resume_point`: fetch its
            slices from their saved cursors instead of cutting a window.
        :raises ValueError: for ``users``, no window, an empty one or ``slices`` below 1 (before
            any request).
        """
        if stream == "users":
            raise ValueError("Gong users have no date filter; page them with iter_pages('users').")
        if resume is None:
            if from_datetime is None:
                raise ValueError("Time slices need from_datetime (or the resume of an earlier run).")
            edges = _time_slices(from_datetime, to_datetime or datetime.now(timezone.utc), slices)
            resume = [{"from": start, "to": end, "cursor": None} for start, end in itertools.pairwise(edges)]
        return SlicedPages(self, stream, resume, content_selector)

    def iter_users(self) -> Iterator[dict[str, Any]]:
        """Yield every user, page by page."""
        return self.iter_pages("users").iter_records()

    def iter_calls(
        self, from_datetime: datetime | str | None = None, to_datetime: datetime | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the calls started in ``[from_datetime, to_datetime)``, page by page.

        :param from_datetime: inclusive lower bound (ISO-8601 string or datetime).
        :param to_datetime: exclusive upper bound.
        """
        return self.iter_pages("calls", from_datetime, to_datetime).iter_records()

    def iter_calls_extensive(
        self,
        from_datetime: datetime | str | None = None,
        to_datetime: datetime | str | None = None,
        content_selector: dict[str, Any] | None = None,
        *,
        call_ids: Iterable[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield extensive call records (metaData, parties, content...), page by page.

        :param from_datetime: inclusive lower bound of the call start.
        :param to_datetime: exclusive upper bound.
        :param content_selector: Gong's ``contentSelector`` (what to include).
        :param call_ids: only these calls, sent in batches.
        """
        return self.iter_pages(
            "calls_extensive",
            from_datetime,
            to_datetime,
            call_ids=call_ids,
            content_selector=content_selector,
        ).iter_records()

    def iter_transcripts(
        self,
        call_ids: Iterable[str] | None = None,
        from_datetime: datetime | str | None = None,
        to_datetime: datetime | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield call transcripts for ``call_ids`` (in batches) and/or a date range, page by page.

        :param call_ids: only these calls.
        :param from_datetime: inclusive lower bound of the call start.
        :param to_datetime: exclusive upper bound.
        """
        return self.iter_pages("transcripts", from_datetime, to_datetime, call_ids=call_ids).iter_records()

    def _fetch_page(
        self,
        stream: str,
        from_datetime: str | None,
        to_datetime: str | None,
        call_ids: list[str] | None,
        content_selector: dict[str, Any] | None,
        cursor: str | None,
    ) -> dict[str, Any]:
        """Request one page: the filter and cursor go in the query for GET, in the body for POST."""
        endpoint = STREAMS[stream]
        if endpoint.method == "GET":
            params = {"fromDateTime": from_datetime, "toDateTime": to_datetime, "cursor": cursor}
            return self.request("GET", endpoint.path, params={k: v for k, v in params.items() if v})
        filters = {"fromDateTime": from_datetime, "toDateTime": to_datetime, "callIds": call_ids}
        body: dict[str, Any] = {"filter": {k: v for k, v in filters.items() if v is not None}}
        if content_selector:
            body["contentSelector"] = content_selector
        if cursor:
            body["cursor"] = cursor
        return self.request(endpoint.method, endpoint.path, json=body)


class PageIterator(Iterator[Page]):
    """Pages of one stream, fetched one at a time; also where to resume after an error.

    ``cursor`` and ``batch`` always name the next page to fetch: after an exception (for
    example :class:`GongRateLimited`), ``client.iter_pages(..., cursor=it.cursor,
    batch=it.batch)`` continues with the page that failed. ``done`` is ``True`` once the
    last page was returned.
    """

    def __init__(
        self,
        client: GongClient,
        stream: str,
        from_datetime: str | None,
        to_datetime: str | None,
        *,
        call_ids: list[str] | None,
        content_selector: dict[str, Any] | None,
        cursor: str | None,
        batch: int,
    ) -> None:
        self.client = client
        self.stream = stream
        self.from_datetime = from_datetime
        self.to_datetime = to_datetime
        self.content_selector = content_selector
        self.cursor = cursor
        self.batch = batch
        self.pages = 0
        self.records = 0
        size = client.call_id_batch_size
        self._batches = (
            None if call_ids is None else [call_ids[at : at + size] for at in range(0, len(call_ids), size)]
        )
        self.done = self._batches is not None and batch >= len(self._batches)
        self._seen: set[str] = {cursor} if cursor else set()

    def __iter__(self) -> PageIterator:
        return self

    def __next__(self) -> Page:
        if self.done:
            raise StopIteration
        call_ids = None if self._batches is None else self._batches[self.batch]
        body = self.client._fetch_page(
            self.stream, self.from_datetime, self.to_datetime, call_ids, self.content_selector, self.cursor
        )
        meta = body.get("records") or {}
        records = body.get(STREAMS[self.stream].records_key) or []
        next_cursor = meta.get("cursor") or None
        if next_cursor is not None and next_cursor in self._seen:
            raise GongError(
                f"Gong {STREAMS[self.stream].path} returned cursor {next_cursor[:40]!r} a second time "
                f"(page {self.pages}, requestId {body.get('requestId')}): the paging loops; stopped "
                "instead of fetching the same pages again."
            )
        page = Page(
            stream=self.stream,
            records=records,
            index=self.pages,
            batch=self.batch,
            request_cursor=self.cursor,
            cursor=next_cursor,
            total_records=meta.get("totalRecords"),
            request_id=body.get("requestId"),
        )
        self.pages += 1
        self.records += len(records)
        self.client._count(pages=1, records=len(records))
        if next_cursor is not None:
            self._seen.add(next_cursor)
            self.cursor = next_cursor
        else:
            self._seen.clear()
            self.cursor = None
            self.batch += 1
            self.done = self._batches is None or self.batch >= len(self._batches)
        return page

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Yield the records of the remaining pages."""
        for page in self:
            yield from page.records

    def resume_point(self) -> dict[str, Any]:
        """Return the :meth:`GongClient.iter_pages` arguments that continue with the next page."""
        return {"cursor": self.cursor, "batch": self.batch}

    def close(self) -> None:
        """Stop: no further page is fetched."""
        self.done = True


def _numbered(number: int, pages: Iterator[Page]) -> Iterator[tuple[int, Page]]:
    for page in pages:
        yield number, page


class SlicedPages(Iterator[Page]):
    """Pages of one stream's time slices, each slice paged by its own thread.

    The resume point counts the pages returned here, not the pages fetched: a page a slice
    had fetched but nobody took yet is fetched again on resume, so nothing is skipped.
    """

    def __init__(
        self,
        client: GongClient,
        stream: str,
        slices: list[dict[str, Any]],
        content_selector: dict[str, Any] | None,
    ) -> None:
        self.stream = stream
        self.pages = 0
        if not all(isinstance(part, dict) and {"from", "to"} <= part.keys() for part in slices):
            raise ValueError(f"Each slice to resume needs 'from' and 'to', got {slices!r:.200}.")
        self._next = [{key: part.get(key) for key in ("from", "to", "cursor")} for part in slices]
        self._done = [False] * len(self._next)
        sources = [
            _numbered(
                number,
                client.iter_pages(
                    stream, part["from"], part["to"], content_selector=content_selector, cursor=part["cursor"]
                ),
            )
            for number, part in enumerate(self._next)
        ]
        self._pages = interleave(sources, name=f"sophia-gong-{stream}")

    @property
    def done(self) -> bool:
        """Whether every slice returned its last page."""
        return all(self._done)

    def __iter__(self) -> SlicedPages:
        return self

    def __next__(self) -> Page:
        number, page = next(self._pages)
        self._next[number]["cursor"] = page.cursor
        self._done[number] = page.cursor is None
        self.pages += 1
        return page

    def resume_point(self) -> dict[str, Any]:
        """Return the :meth:`GongClient.iter_pages_parallel` arguments that continue every slice."""
        return {"resume": [dict(part) for part, done in zip(self._next, self._done, strict=True) if not done]}

    def close(self) -> None:
        """Stop every slice and wait for their threads (each ends after the page it is fetching)."""
        self._pages.close()
