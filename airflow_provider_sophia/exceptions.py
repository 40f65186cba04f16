"""Every public error type of the provider.

Each message says what was wrong, with the offending value, and what to do.
"""

from __future__ import annotations


class SophiaError(Exception):
    """Base class of every error raised by this provider."""


class InvalidIdentifierError(SophiaError, ValueError):
    """An identifier (table, column, key) that cannot be safely quoted for SQL."""


# --- connection pool -------------------------------------------------------------


class PoolError(SophiaError):
    """Base class of the connection pool's errors."""


class PoolTimeout(PoolError, TimeoutError):
    """No connection became available within the acquire timeout."""


class PoolClosed(PoolError):
    """The pool was closed; no connection can be acquired from it."""


# --- Gong ------------------------------------------------------------------------


class GongError(SophiaError):
    """A Gong API call failed (malformed response, unexpected status, cursor loop)."""


class GongAuthError(GongError):
    """Gong rejected the credentials (HTTP 401/403)."""


class GongRateLimited(GongError):
    """Gong asked to wait longer than the client may sleep (daily quota spent).

    :param retry_after: seconds Gong asked to wait.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GongRetryExhausted(GongError):
    """Every allowed attempt of a request failed with a transient error.

    :param attempts: how many attempts were made.
    :param last_status: HTTP status of the last attempt, ``None`` for a network error.
    """

    def __init__(self, message: str, attempts: int, last_status: int | None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status


class GongCircuitOpen(GongError):
    """The circuit breaker is open: Gong is failing and calls are refused locally."""


class GongMalformedResponse(GongError):
    """Gong answered with a body that is not the expected JSON object (cut off or garbled).

    :param endpoint: the request, e.g. ``GET /v2/calls``.
    :param request_id: Gong's ``requestId`` when it could be read, else ``None``.
    """

    def __init__(self, message: str, endpoint: str, request_id: str | None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.request_id = request_id


# --- ingestion -------------------------------------------------------------------


class IngestError(SophiaError):
    """A chunked load could not be completed; the target was left unchanged."""


class UnsupportedTypeError(IngestError, TypeError):
    """A source column has a type that cannot be mapped to Snowflake."""


# --- Cortex ----------------------------------------------------------------------


class CortexError(SophiaError):
    """A Snowflake Cortex enrichment failed."""


class CortexTransientError(CortexError):
    """A Snowflake error that may pass on retry (suspended warehouse, timeout, network) kept failing.

    :param attempts: how many attempts were made.
    """

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class CortexPermanentError(CortexError):
    """A Cortex call failed for good (syntax, permission, unknown function or model, bad rows).

    :param keys: the keys of the rows concerned, empty when the whole statement failed.
    """

    def __init__(self, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


class CortexResultError(CortexError, ValueError):
    """A Cortex function returned a value that does not have the documented shape."""


# --- profiling -------------------------------------------------------------------


class RegressionDetected(SophiaError):
    """A profiling run is worse than its baseline beyond the tolerance."""
