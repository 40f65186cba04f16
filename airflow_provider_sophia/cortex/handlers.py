"""Error handling and result parsing for the Cortex service.

Errors: a Snowflake error is *transient* when trying again can succeed (the connection dropped,
the warehouse was suspended or resuming, a statement or lock timed out) and *permanent*
otherwise (syntax, missing object or privilege, unknown function or model, bad data). The
snowflake-connector exceptions carry ``errno`` (Snowflake's error code) and ``sqlstate``
(ANSI SQLSTATE); both are consulted, then the Python exception type. Anything not recognised
is permanent: retrying an error nobody understands only spends credits. Transient errors are
retried under :class:`~airflow_provider_sophia.resilience.RetryPolicy`; when its budget is
spent :class:`~airflow_provider_sophia.exceptions.CortexTransientError` is raised.

Results: :func:`parse_result` turns a function's raw output into a Python value with the
shape Snowflake documents (see :mod:`~airflow_provider_sophia.cortex.models`) and raises
:class:`~airflow_provider_sophia.exceptions.CortexResultError` for anything else. There is no
fallback value: a missing embedding is an error, never a made-up vector.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_provider_sophia.cortex.models import (
    CortexFunction,
    CortexRequest,
    EmbedRequest,
    ParsedResult,
    ResultKind,
    Usage,
)
from airflow_provider_sophia.exceptions import CortexPermanentError, CortexResultError, CortexTransientError
from airflow_provider_sophia.resilience import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")


class ErrorKind(enum.Enum):
    """Whether an error may pass on retry."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


#: Snowflake error codes (``errno``) worth retrying.
TRANSIENT_ERRNOS = frozenset(
    {
        604,  # SQL execution canceled (warehouse or service interruption)
        608,  # warehouse suspended / being resumed
        625,  # statement waited too long for a lock
        630,  # statement reached its statement or warehouse timeout
        390114,  # authentication token expired: a new connection fixes it
        250001,  # connector could not connect to Snowflake
        250003,  # connector got no response (network)
    }
)
#: Snowflake error codes that never pass on retry.
PERMANENT_ERRNOS = frozenset(
    {
        606,  # no active warehouse selected
        1003,  # SQL compilation error: syntax
        2003,  # object does not exist or not authorized
        2140,  # unknown function
        3001,  # insufficient privileges
    }
)
#: SQLSTATE classes (first two characters) worth retrying: connection exceptions,
#: operator intervention (cancel, timeout) and transaction rollbacks (serialization).
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "57", "40"})


def classify_error(error: BaseException) -> ErrorKind:
    """Return whether ``error`` is transient (retry it) or permanent (report or fail).

    :param error: an exception from the connector, the pool or the network.
    """
    errno = getattr(error, "errno", None)
    if isinstance(errno, int) and errno in TRANSIENT_ERRNOS:
        return ErrorKind.TRANSIENT
    if isinstance(errno, int) and errno in PERMANENT_ERRNOS:
        return ErrorKind.PERMANENT
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES:
        return ErrorKind.TRANSIENT
    if sqlstate is None and isinstance(error, (TimeoutError, ConnectionError)):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def describe_error(error: BaseException) -> str:
    """Return a one-line description of ``error`` with its Snowflake codes when present.

    :param error: the exception.
    """
    codes = [f"{name}={value}" for name in ("errno", "sqlstate") if (value := getattr(error, name, None))]
    suffix = f" ({', '.join(codes)})" if codes else ""
    return f"{type(error).__name__}: {error}{suffix}"


def run_with_retry(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """Run ``operation``, retrying transient errors within ``policy``; return its result and the attempts.

    :param operation: one attempt (e.g. acquire a connection and execute one statement).
    :param policy: the retry bounds.
    :param what: what is attempted, for messages, e.g. ``"MERGE into CALLS_SENTIMENT"``.
    :param sleep: waits between attempts.
    :raises CortexPermanentError: on the first permanent error.
    :raises CortexTransientError: when transient errors outlast the budget.
    """
    budget = policy.start()
    while True:
        budget.attempts += 1
        try:
            return operation(), budget.attempts
        except Exception as error:
            description = describe_error(error)
            if classify_error(error) is ErrorKind.PERMANENT:
                raise CortexPermanentError(f"{what} failed with a permanent error: {description}") from error
            delay = budget.next_delay()
            if delay is None:
                raise CortexTransientError(
                    f"{what} failed {budget.attempts} time(s) with transient errors, last: {description}. "
                    "Check the warehouse and the network, or raise the retry policy's limits.",
                    budget.attempts,
                ) from error
            log.warning(
                "%s failed (attempt %d of %d), retrying in %.1fs: %s",
                what,
                budget.attempts,
                policy.max_attempts,
                delay,
                description,
            )
            sleep(delay)


def _loads(raw: Any, function: CortexFunction) -> Any:
    if isinstance(raw, (str, bytes, bytearray)):
        try:
            return json.loads(raw)
        except ValueError as error:
            raise CortexResultError(
                f"{function.name} returned text that is not JSON: {raw!r:.200}"
            ) from error
    return raw


def _field(value: Any, name: str, function: CortexFunction) -> Any:
    if not isinstance(value, dict) or name not in value:
        raise CortexResultError(f"{function.name} returned {value!r:.200}; expected an object with {name!r}.")
    return value[name]


def _text(value: Any, function: CortexFunction) -> str:
    if not isinstance(value, str):
        raise CortexResultError(f"{function.name} returned {value!r:.200}; expected a string.")
    return value


def _score(raw: Any, function: CortexFunction) -> float:
    try:
        score = float(raw)
    except (TypeError, ValueError) as error:
        raise CortexResultError(f"{function.name} returned {raw!r:.200}; expected a number.") from error
    if not -1.0 <= score <= 1.0:
        raise CortexResultError(f"{function.name} returned {score}; a sentiment score lies in [-1, 1].")
    return score


def _vector(raw: Any, request: CortexRequest) -> list[float]:
    values = _loads(raw, request.function)
    dimensions = request.dimensions if isinstance(request, EmbedRequest) else None
    if not isinstance(values, list) or (dimensions is not None and len(values) != dimensions):
        raise CortexResultError(
            f"{request.function.name} returned {str(values)[:200]}; expected {dimensions} numbers."
        )
    vector = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CortexResultError(f"{request.function.name} returned a non-numeric component {value!r}.")
        vector.append(float(value))
    return vector


def _usage(value: Any, function: CortexFunction) -> Usage:
    try:
        return Usage(
            prompt_tokens=int(value["prompt_tokens"]),
            completion_tokens=int(value["completion_tokens"]),
            total_tokens=int(value["total_tokens"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CortexResultError(
            f"{function.name} returned usage {value!r:.200} without token counts."
        ) from error


def _extract_answer(value: Any, function: CortexFunction) -> str | None:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise CortexResultError(f"{function.name} returned {value!r:.200}; expected a list of answers.")
    if not value:
        return None
    best = max(value, key=lambda answer: float(_field(answer, "score", function)))
    return _text(_field(best, "answer", function), function)


def parse_result(request: CortexRequest, raw: Any) -> ParsedResult:
    """Return the Python value of one raw function output.

    SENTIMENT gives a float, AI_SENTIMENT the overall label, COMPLETE its text and token
    usage, AI_COMPLETE / SUMMARIZE / TRANSLATE text, embeddings a list of floats of the
    model's dimension, AI_CLASSIFY its list of labels, CLASSIFY_TEXT its label, AI_FILTER a
    bool, AI_EXTRACT and EXTRACT_ANSWER the answer (``None`` when none was found).

    :param request: the request that produced ``raw``.
    :param raw: the value the driver returned (JSON text for OBJECT, ARRAY and VARIANT).
    :raises CortexResultError: when ``raw`` is NULL or does not have the documented shape.
    """
    function = request.function
    if raw is None:
        raise CortexResultError(
            f"{function.spec.sql_name} returned NULL: Snowflake could not process the text."
        )
    kind = function.spec.result
    if kind is ResultKind.SCORE:
        return ParsedResult(_score(raw, function))
    if kind is ResultKind.VECTOR:
        return ParsedResult(_vector(raw, request))
    if kind is ResultKind.BOOLEAN:
        if not isinstance(raw, bool):
            raise CortexResultError(f"{function.name} returned {raw!r:.200}; expected a boolean.")
        return ParsedResult(raw)
    if kind is ResultKind.TEXT:
        return ParsedResult(_text(raw, function))
    value = _loads(raw, function)
    if function is CortexFunction.COMPLETE:
        choices = _field(value, "choices", function)
        if not isinstance(choices, list) or not choices:
            raise CortexResultError(f"COMPLETE returned no choices: {value!r:.200}.")
        text = _text(_field(choices[0], "messages", function), function)
        return ParsedResult(text, _usage(_field(value, "usage", function), function))
    if function is CortexFunction.AI_SENTIMENT:
        categories = _field(value, "categories", function)
        overall = [c for c in categories if isinstance(c, dict) and c.get("name") == "overall"]
        if not overall:
            raise CortexResultError(f"AI_SENTIMENT returned no overall sentiment: {value!r:.200}.")
        return ParsedResult(_text(overall[0].get("sentiment"), function))
    if function is CortexFunction.AI_CLASSIFY:
        labels = _field(value, "labels", function)
        if not isinstance(labels, list):
            raise CortexResultError(f"AI_CLASSIFY returned labels {labels!r:.200}; expected a list.")
        return ParsedResult([_text(label, function) for label in labels])
    if function is CortexFunction.CLASSIFY_TEXT:
        return ParsedResult(_text(_field(value, "label", function), function))
    if function is CortexFunction.AI_EXTRACT:
        answer = _field(_field(value, "response", function), "answer", function)
        return ParsedResult(None if answer is None else _text(answer, function))
    return ParsedResult(_extract_answer(value, function))
