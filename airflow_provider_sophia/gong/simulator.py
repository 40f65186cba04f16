"""A Gong-compatible HTTP server on loopback, with its limits and injectable faults.

Serves ``GET /v2/users``, ``GET /v2/calls``, ``POST /v2/calls/extensive`` and
``POST /v2/calls/transcript`` with Basic auth, cursor paging (``page_size`` records a
page, ``records.cursor`` only while more pages exist), the "no calls found" 404, the
per-second rate limit (429 + ``Retry-After``) and an optional daily quota (429 with a
long ``Retry-After``). Data is synthetic and deterministic (:mod:`.simdata`).

Faults (:class:`Fault`) and settings are driven in-process (``sim.add_fault(...)``) or
over HTTP by another process (:class:`SimulatorControl`)::

    POST   /_sim/faults          {"faults": [{"kind": "status", "status": 503, "rate": 0.2}]}
    DELETE /_sim/faults          remove every fault
    GET    /_sim/requests?since=N  the request log from entry N
    POST   /_sim/settings        {"rate_limit": 3.0, "daily_quota": 10000, ...}
    POST   /_sim/records/update  {"id": "...", "changes": {"title": "new"}}
    POST   /_sim/reset           log, faults, quota, records and settings back to the start

Run it with ``python -m airflow_provider_sophia.gong.simulator --port 8089``, or in a
test with ``with GongSimulator(seed=1) as sim: GongClient(sim.url, sim.access_key, ...)``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from airflow_provider_sophia.gong.simdata import STREAM_KEYS, GongData

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
FAULT_KINDS = ("status", "drop", "truncate", "malformed", "latency", "repeat_cursor")

#: (method, path) -> (stream, where the filter and cursor are read: "query" or "body").
ROUTES = {
    ("GET", "/v2/users"): ("users", "query"),
    ("GET", "/v2/calls"): ("calls", "query"),
    ("POST", "/v2/calls/extensive"): ("calls_extensive", "body"),
    ("POST", "/v2/calls/transcript"): ("transcripts", "body"),
}


@dataclass
class Fault:
    """One injected fault, applied to matching ``/v2`` requests.

    :param kind: ``status`` (answer ``status``), ``drop`` (close the connection without an
        answer), ``truncate`` (cut the body mid-way and close), ``malformed`` (a complete
        response whose JSON is cut), ``latency`` (wait ``latency`` seconds first) or
        ``repeat_cursor`` (a page with a cursor returns that same cursor again).
    :param status: HTTP status of a ``status`` fault.
    :param rate: probability that a matching request is hit (seeded, deterministic).
    :param count: hit at most this many requests, ``None`` for no limit.
    :param path: only requests whose path starts with this.
    :param latency: seconds of a ``latency`` fault.
    :param retry_after: ``Retry-After`` header (seconds) of a ``status`` fault.
    """

    kind: str
    status: int = 503
    rate: float = 1.0
    count: int | None = None
    path: str | None = None
    latency: float = 0.0
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}.")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"Fault rate must be within [0, 1], got {self.rate!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from its JSON form, rejecting unknown keys.

        :param data: the fault's fields.
        """
        unknown = set(data) - {item.name for item in fields(cls)}
        if unknown:
            raise ValueError(f"Unknown fault fields {sorted(unknown)}.")
        return cls(**data)


@dataclass
class Settings:
    """Limits the simulator enforces; changeable at run time.

    :param rate_limit: requests per second before 429 (a token bucket of ``rate_burst``);
        ``None`` disables it.
    :param rate_burst: bucket size; ``None`` means ``rate_limit`` (one second of requests).
    :param rate_retry_after: ``Retry-After`` seconds of a rate-limit 429.
    :param daily_quota: requests per simulated day before a quota 429, ``None`` for none.
    :param quota_retry_after: ``Retry-After`` seconds of a quota 429 (until the day resets).
    """

    rate_limit: float | None = 3.0
    rate_burst: float | None = None
    rate_retry_after: float = 1.0
    daily_quota: int | None = None
    quota_retry_after: float = 6 * 3600.0


@dataclass
class Reply:
    """What the HTTP layer sends for one request."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "send"  # send | drop | truncate | malformed
    latency: float = 0.0
    fault: str | None = None


class SimulatorError(Exception):
    """A request the simulator answers with an error status and Gong's error body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def encode_cursor(stream: str, offset: int, query_key: str) -> str:
    """Return an opaque cursor for ``offset`` of one query."""
    raw = json.dumps({"s": stream, "o": offset, "q": query_key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, stream: str, query_key: str) -> int:
    """Return the offset of a cursor made by :func:`encode_cursor` for the same query.

    :raises SimulatorError: (400) for a cursor that is not ours or belongs to another query.
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["s"] == stream and data["q"] == query_key:
            return int(data["o"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise SimulatorError(400, f"Invalid cursor {cursor!r} for this request's filter.")


def _parse_time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise SimulatorError(400, f"{name} {value!r} is not an ISO-8601 date-time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class GongSimulator:
    """The simulator: data, limits, faults and the request log, plus its HTTP server.

    :param seed: seed of the synthetic data and of fault draws.
    :param users: how many users.
    :param calls: how many calls.
    :param start: earliest call start (UTC).
    :param days: calls start within this many days after ``start``.
    :param page_size: records a page.
    :param access_key: the Basic auth user it accepts.
    :param access_key_secret: the Basic auth password it accepts.
    :param settings: rate limit and daily quota; :class:`Settings` defaults (3 rps) when ``None``.
    :param log_size: entries kept in the request log.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        users: int = 25,
        calls: int = 500,
        start: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc),
        days: float = 30.0,
        page_size: int = 100,
        access_key: str = "sim-access-key",
        access_key_secret: str = "sim-access-key-secret",
        settings: Settings | None = None,
        log_size: int = 100_000,
    ) -> None:
        self.seed = seed
        self.data = GongData(seed=seed, users=users, calls=calls, start=start, days=days)
        self.page_size = page_size
        self.access_key = access_key
        self.access_key_secret = access_key_secret
        self._initial_settings = settings or Settings()
        self._log_size = log_size
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.settings = Settings(**asdict(self._initial_settings))
        self._faults: list[Fault] = []
        self._log: deque[dict[str, Any]] = deque(maxlen=self._log_size)
        self._seq = 0
        self._quota_used = 0
        self._tokens = self._burst()
        self._refilled = time.monotonic()
        self._rng = random.Random(self.seed)

    # --- control ------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        """Inject ``fault`` (after those already injected) and return it.

        :param fault: what to inject.
        """
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Return the injected faults still active."""
        with self._lock:
            return list(self._faults)

    def configure(self, **changes: Any) -> Settings:
        """Change limits (see :class:`Settings`) and return them.

        :param changes: ``rate_limit``, ``rate_burst``, ``rate_retry_after``, ``daily_quota``,
            ``quota_retry_after``.
        """
        unknown = set(changes) - {item.name for item in fields(Settings)}
        if unknown:
            raise ValueError(f"Unknown simulator settings {sorted(unknown)}.")
        with self._lock:
            for key, value in changes.items():
                setattr(self.settings, key, value)
            self._tokens = self._burst()
            self._refilled = time.monotonic()
            return Settings(**asdict(self.settings))

    def requests(self, since: int = 0, path: str | None = None) -> list[dict[str, Any]]:
        """Return logged ``/v2`` requests with ``seq >= since`` (optionally only ``path``).

        Each entry has ``seq``, ``time`` (epoch seconds), ``method``, ``path``, ``query``,
        ``json``, ``status`` (``None`` when the connection was dropped), ``fault`` and
        ``request_id``.

        :param since: the first sequence number wanted.
        :param path: only this exact path.
        """
        with self._lock:
            return [
                dict(entry)
                for entry in self._log
                if entry["seq"] >= since and (path is None or entry["path"] == path)
            ]

    def update_record(self, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change fields of a user or call (later pages serve the new values) and return it.

        :param record_id: a user or call id.
        :param changes: the fields to set.
        """
        with self._lock:
            return dict(self.data.update(record_id, changes))

    def reset(self) -> None:
        """Restore the starting state: no faults, empty log, fresh quota, original records."""
        with self._lock:
            self.data.regenerate()
            self._reset_state()

    # --- limits and faults ----------------------------------------------------------

    def _burst(self) -> float:
        rate = self.settings.rate_limit
        return 0.0 if rate is None else float(self.settings.rate_burst or rate)

    def _check_limits(self) -> None:
        """Apply the daily quota and the rate limit (caller holds the lock)."""
        settings = self.settings
        if settings.daily_quota is not None:
            self._quota_used += 1
            if self._quota_used > settings.daily_quota:
                raise SimulatorError(
                    429,
                    f"Daily API quota of {settings.daily_quota} requests exceeded.",
                    {"Retry-After": str(int(settings.quota_retry_after))},
                )
        if settings.rate_limit is None:
            return
        now = time.monotonic()
        self._tokens = min(self._burst(), self._tokens + (now - self._refilled) * settings.rate_limit)
        self._refilled = now
        if self._tokens < 1.0:
            raise SimulatorError(
                429,
                f"Rate limit of {settings.rate_limit:g} requests per second exceeded.",
                {"Retry-After": f"{settings.rate_retry_after:g}"},
            )
        self._tokens -= 1.0

    def _draw_faults(self, path: str, has_cursor: bool) -> list[Fault]:
        """Return the faults that hit this request, consuming counts (caller holds the lock)."""
        hits = []
        for fault in self._faults:
            if fault.path is not None and not path.startswith(fault.path):
                continue
            if fault.kind == "repeat_cursor" and not has_cursor:
                continue
            if self._rng.random() >= fault.rate:
                continue
            hits.append(fault)
            if fault.count is not None:
                fault.count -= 1
        self._faults = [fault for fault in self._faults if fault.count is None or fault.count > 0]
        return hits

    # --- requests -----------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.access_key}:{self.access_key_secret}".encode()).decode()
        return header == f"Basic {expected}"

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Reply:
        """Answer (and log) one ``/v2`` request.

        :param method: HTTP method.
        :param target: path and query string.
        :param authorization: the ``Authorization`` header.
        :param body: the raw request body.
        """
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = body.decode(errors="replace")
        with self._lock:
            self._seq += 1
            request_id = f"sim-{self.seed}-{self._seq:08d}"
            entry: dict[str, Any] = {
                "seq": self._seq,
                "time": time.time(),
                "method": method,
                "path": parts.path,
                "query": query,
                "json": payload,
                "status": None,
                "fault": None,
                "request_id": request_id,
            }
            self._log.append(entry)
            has_cursor = bool(query.get("cursor") or (isinstance(payload, dict) and payload.get("cursor")))
            reply = self._answer(method, parts.path, query, payload, authorization, has_cursor)
            entry["status"] = None if reply.action == "drop" else reply.status
            entry["fault"] = reply.fault
            reply.body.setdefault("requestId", request_id)
        return reply

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        payload: Any,
        authorization: str | None,
        has_cursor: bool,
    ) -> Reply:
        """Compute the reply to one request (caller holds the lock)."""
        try:
            if not self._authorized(authorization):
                raise SimulatorError(401, "Invalid access key or access key secret (Basic auth).")
            self._check_limits()
            faults = self._draw_faults(path, has_cursor)
            latency = sum(fault.latency for fault in faults if fault.kind == "latency")
            kinds = [fault.kind for fault in faults if fault.kind != "latency"]
            status_fault = next((fault for fault in faults if fault.kind == "status"), None)
            if "drop" in kinds:
                return Reply(0, action="drop", latency=latency, fault="drop")
            if status_fault is not None:
                headers = {}
                if status_fault.retry_after is not None:
                    headers["Retry-After"] = f"{status_fault.retry_after:g}"
                return Reply(
                    status_fault.status,
                    {"errors": [f"Injected fault: HTTP {status_fault.status}."]},
                    headers,
                    latency=latency,
                    fault="status",
                )
            reply = self._route(method, path, query, payload, repeat_cursor="repeat_cursor" in kinds)
            reply.latency = latency
            for kind in ("truncate", "malformed"):
                if kind in kinds and reply.status == 200:
                    reply.action = kind
            applied = [kind for kind in kinds if kind in ("truncate", "malformed", "repeat_cursor")]
            if latency:
                applied.append("latency")
            reply.fault = ",".join(applied) or None
            return reply
        except SimulatorError as error:
            return Reply(error.status, {"errors": [str(error)]}, dict(error.headers))

    def _route(
        self, method: str, path: str, query: dict[str, str], payload: Any, repeat_cursor: bool
    ) -> Reply:
        route = ROUTES.get((method, path))
        if route is None:
            raise SimulatorError(404, f"No endpoint {method} {path}.")
        stream, source = route
        request: dict[str, Any]
        if source == "query":
            request, filters = dict(query), dict(query)
        else:
            if not isinstance(payload, dict):
                raise SimulatorError(400, f"{method} {path} needs a JSON object body.")
            request = payload
            filters = payload.get("filter") or {}
        from_datetime = _parse_time(filters.get("fromDateTime"), "fromDateTime")
        to_datetime = _parse_time(filters.get("toDateTime"), "toDateTime")
        call_ids = filters.get("callIds")
        content_selector = request.get("contentSelector") if source == "body" else None
        query_key = hashlib.sha1(
            json.dumps([stream, str(from_datetime), str(to_datetime), call_ids], sort_keys=True).encode(),
            usedforsecurity=False,
        ).hexdigest()[:16]
        cursor = request.get("cursor") or None
        offset = 0 if cursor is None else decode_cursor(cursor, stream, query_key)
        records = self.data.select(stream, from_datetime, to_datetime, call_ids, content_selector)
        if not records:
            what = "users" if stream == "users" else "calls"
            raise SimulatorError(404, f"No {what} found corresponding to the provided filters")
        page = records[offset : offset + self.page_size]
        meta: dict[str, Any] = {
            "totalRecords": len(records),
            "currentPageSize": len(page),
            "currentPageNumber": offset // self.page_size,
        }
        if offset + self.page_size < len(records):
            meta["cursor"] = (
                cursor
                if repeat_cursor and cursor
                else encode_cursor(stream, offset + self.page_size, query_key)
            )
        return Reply(200, {"records": meta, STREAM_KEYS[stream]: page})

    # --- HTTP server --------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the base URL of the running server."""
        if self._server is None:
            raise RuntimeError(
                "The Gong simulator is not running; call start() or use it as a context manager."
            )
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0, host: str = LOOPBACK) -> GongSimulator:
        """Serve in a background thread on ``host:port`` (a free port when 0) and return self.

        :param port: the TCP port, 0 for a free one.
        :param host: the address to bind; loopback by default.
        """
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="gong-simulator", daemon=True
        )
        self._thread.start()
        log.info("Gong simulator serving on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GongSimulator:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- HTTP control (/_sim) -----------------------------------------------------

    def control(self, method: str, path: str, query: dict[str, str], payload: Any) -> tuple[int, Any]:
        """Answer one ``/_sim`` control request; return its status and JSON body.

        :param method: HTTP method.
        :param path: the path, ``/_sim/...``.
        :param query: the query string's values.
        :param payload: the decoded JSON body.
        """
        body = payload if isinstance(payload, dict) else {}
        try:
            if (method, path) == ("GET", "/_sim/requests"):
                return 200, {"requests": self.requests(int(query.get("since", 0)), query.get("path"))}
            if (method, path) == ("GET", "/_sim/faults"):
                return 200, {"faults": [asdict(fault) for fault in self.faults]}
            if (method, path) == ("POST", "/_sim/faults"):
                added = [self.add_fault(Fault.from_dict(item)) for item in body.get("faults", [])]
                return 200, {"faults": [asdict(fault) for fault in added]}
            if (method, path) == ("DELETE", "/_sim/faults"):
                self.clear_faults()
                return 200, {"faults": []}
            if (method, path) == ("GET", "/_sim/settings"):
                return 200, asdict(self.settings)
            if (method, path) == ("POST", "/_sim/settings"):
                return 200, asdict(self.configure(**body))
            if (method, path) == ("POST", "/_sim/records/update"):
                return 200, {"record": self.update_record(str(body.get("id")), body.get("changes") or {})}
            if (method, path) == ("POST", "/_sim/reset"):
                self.reset()
                return 200, {"reset": True}
            if (method, path) == ("GET", "/_sim/health"):
                return 200, {"ok": True, "seed": self.seed}
        except KeyError as error:
            return 404, {"errors": [f"No record with id {error}."]}
        except (TypeError, ValueError) as error:
            return 400, {"errors": [str(error)]}
        return 404, {"errors": [f"No control endpoint {method} {path}."]}


def _handler_for(sim: GongSimulator) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class bound to ``sim``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "GongSimulator/1.0"
        disable_nagle_algorithm = True
        wbufsize = 1 << 16  # headers and body leave in one write (no delayed-ACK stalls)

        def do_GET(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def do_DELETE(self) -> None:
            self._dispatch()

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            if path.startswith("/_sim/"):
                try:
                    payload = json.loads(body) if body else None
                except ValueError:
                    payload = None
                status, answer = sim.control(
                    self.command, path, dict(parse_qsl(urlsplit(self.path).query)), payload
                )
                self._send(status, json.dumps(answer).encode(), {})
                return
            reply = sim.handle(self.command, self.path, self.headers.get("Authorization"), body)
            if reply.latency:
                time.sleep(reply.latency)
            if reply.action == "drop":
                self.close_connection = True
                return
            data = json.dumps(reply.body).encode()
            if reply.action == "malformed":
                data = data[: len(data) // 2]
            if reply.action == "truncate":
                self._send(reply.status, data[: len(data) // 2], reply.headers, length=len(data))
                self.close_connection = True
                return
            self._send(reply.status, data, reply.headers)

        def _send(self, status: int, data: bytes, headers: dict[str, str], length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) if length is None else length))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler


class SimulatorControl:
    """Drive a simulator running in another process through its ``/_sim`` endpoints.

    :param base_url: the simulator's base URL, e.g. ``http://127.0.0.1:8089``.
    :param timeout: seconds per control request.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = requests.request(
            method, f"{self.base_url}{path}", json=payload, params=params, timeout=self.timeout
        )
        response.raise_for_status()
        return response.json()

    def add_fault(self, fault: Fault) -> None:
        """Inject ``fault``.

        :param fault: what to inject.
        """
        self._call("POST", "/_sim/faults", {"faults": [asdict(fault)]})

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._call("DELETE", "/_sim/faults")

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change limits (see :class:`Settings`) and return them all.

        :param changes: the settings to change.
        """
        return dict(self._call("POST", "/_sim/settings", changes))

    def requests(self, since: int = 0, path: str | None = None) -> list[dict[str, Any]]:
        """Return the request log from entry ``since`` (optionally only ``path``).

        :param since: the first sequence number wanted.
        :param path: only this exact path.
        """
        params: dict[str, Any] = {"since": since} | ({"path": path} if path else {})
        return list(self._call("GET", "/_sim/requests", params=params)["requests"])

    def update_record(self, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change fields of a user or call and return the record.

        :param record_id: a user or call id.
        :param changes: the fields to set.
        """
        return dict(
            self._call("POST", "/_sim/records/update", {"id": record_id, "changes": changes})["record"]
        )

    def reset(self) -> None:
        """Restore the simulator's starting state."""
        self._call("POST", "/_sim/reset")


def main(argv: list[str] | None = None) -> None:
    """Run the simulator in the foreground until interrupted.

    :param argv: command-line arguments (``sys.argv[1:]`` when ``None``).
    """
    parser = argparse.ArgumentParser(description="Gong-compatible API simulator on loopback.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument(
        "--start", type=datetime.fromisoformat, default=datetime(2024, 1, 1, tzinfo=timezone.utc)
    )
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--access-key", default="sim-access-key")
    parser.add_argument("--access-key-secret", default="sim-access-key-secret")
    parser.add_argument("--rate-limit", type=float, default=3.0, help="requests per second; 0 disables")
    parser.add_argument("--daily-quota", type=int, default=None)
    parser.add_argument("--quota-retry-after", type=float, default=6 * 3600.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = args.start if args.start.tzinfo else args.start.replace(tzinfo=timezone.utc)
    sim = GongSimulator(
        seed=args.seed,
        users=args.users,
        calls=args.calls,
        start=start,
        days=args.days,
        page_size=args.page_size,
        access_key=args.access_key,
        access_key_secret=args.access_key_secret,
        settings=Settings(
            rate_limit=args.rate_limit or None,
            daily_quota=args.daily_quota,
            quota_retry_after=args.quota_retry_after,
        ),
    )
    sim.start(args.port, args.host)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
