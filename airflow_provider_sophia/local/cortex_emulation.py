"""LOCAL EMULATION of Snowflake Cortex functions for the embedded warehouse (fakesnow on DuckDB).

fakesnow has no Cortex. This module registers deterministic stand-ins, **not language models**,
so that the SQL the Cortex service sends to Snowflake runs unchanged on the embedded warehouse:

* ``SENTIMENT`` / ``AI_SENTIMENT``: a word lexicon. The score is ``(positive - negative) /
  (positive + negative + 1)`` over the words (a negator flips the next word), in (-1, 1);
  the label is ``positive`` above 0.2, ``negative`` below -0.2, ``mixed`` when both kinds of
  words occur, else ``neutral``.
* ``SUMMARIZE``: the first two sentences, at most 500 characters.
* ``TRANSLATE`` / ``AI_TRANSLATE``: the text prefixed with ``[<source or auto>-><target>]``.
* ``COMPLETE`` / ``AI_COMPLETE``: ``"[emulated <model>] "`` plus the prompt's last sentence;
  usage counts whitespace-separated words.
* ``EMBED_TEXT_768`` / ``EMBED_TEXT_1024`` / ``AI_EMBED``: feature hashing. Each word adds
  +-1 at a SHA-256-chosen position; the vector is L2-normalised. Same words, same vector;
  the dimension is the model's.
* ``CLASSIFY_TEXT`` / ``AI_CLASSIFY``: the category sharing the most words with the text
  (the first one on a tie).
* ``AI_FILTER(PROMPT(template, text))``: TRUE when a keyword of the template (4+ letters)
  occurs in the text; ``AI_FILTER(text)`` alone: TRUE when the text's sentiment is positive.
* ``EXTRACT_ANSWER`` / ``AI_EXTRACT``: the sentence sharing the most keywords with the question.

How: the ``AI_*`` names and ``PROMPT`` are DuckDB Python UDFs (global to the database, so every
fakesnow session sees them). DuckDB resolves ``SNOWFLAKE.CORTEX.X(...)`` as catalog
``SNOWFLAKE``, schema ``CORTEX``, so an in-memory catalog of that name holds macros calling the
UDFs. Like Snowflake, the ``AI_*`` stand-ins return NULL for a row they cannot process and the
``SNOWFLAKE.CORTEX`` ones fail the statement. :data:`CALLS` counts invocations per function.

Use :func:`install` on a ``FakeSnow`` instance (server mode: ``fakesnow.server.shared_fs``),
a fakesnow connection (patch mode) or a DuckDB connection.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
from duckdb import sqltypes

from airflow_provider_sophia.cortex.models import EMBEDDING_DIMENSIONS

log = logging.getLogger(__name__)

#: invocations (rows) per emulated function, e.g. ``CALLS["AI_SENTIMENT"]``.
CALLS: Counter[str] = Counter()

CATALOG = "SNOWFLAKE"
SCHEMA = "CORTEX"
_INTERNAL_PREFIX = "_SOPHIA_EMULATED_"

_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


POSITIVE = frozenset(
    _words(
        "good great excellent love loved like liked happy glad pleased amazing awesome fantastic helpful "
        "easy fast best better perfect wonderful thanks thank appreciate recommend success successful "
        "win won smooth impressive valuable nice brilliant delighted enjoy enjoyed"
    )
)
NEGATIVE = frozenset(
    _words(
        "bad terrible awful hate hated dislike angry unhappy poor slow broken bug bugs problem problems "
        "issue issues difficult hard worst worse fail failed failure expensive disappointed disappointing "
        "frustrated frustrating annoying cancel churn refund complaint wrong useless"
    )
)
NEGATORS = frozenset(_words("not no never without hardly isn't wasn't don't doesn't didn't can't won't"))
STOPWORDS = frozenset(
    _words(
        "this that with from what which does have about there their they them then than into only your "
        "will would could should were been being also just text question"
    )
)


def _keywords(text: str) -> set[str]:
    return {word for word in _words(text) if len(word) >= 4 and word not in STOPWORDS}


def _sentences(text: str) -> list[str]:
    return [sentence for sentence in _SENTENCE_END.split(text.strip()) if sentence]


def sentiment_score(text: str) -> float:
    """Return the lexicon sentiment of ``text`` in (-1, 1) (see the module docstring).

    :param text: the text.
    """
    positive = negative = 0
    flip = False
    for word in _words(text):
        polarity = (word in POSITIVE) - (word in NEGATIVE)
        if flip:
            polarity = -polarity
        positive += polarity > 0
        negative += polarity < 0
        flip = word in NEGATORS
    return (positive - negative) / (positive + negative + 1)


def sentiment_label(text: str) -> str:
    """Return ``positive``, ``negative``, ``mixed`` or ``neutral`` for ``text``."""
    score = sentiment_score(text)
    if score > 0.2:
        return "positive"
    if score < -0.2:
        return "negative"
    words = set(_words(text))
    return "mixed" if words & POSITIVE and words & NEGATIVE else "neutral"


def summarize(text: str) -> str:
    """Return the first two sentences of ``text``, at most 500 characters."""
    return " ".join(_sentences(text)[:2])[:500]


def translate(text: str, source: str, target: str) -> str:
    """Return ``text`` tagged with the language pair; no translation happens."""
    return f"[{source or 'auto'}->{target}] {text}"


def embed(text: str, dimensions: int) -> list[float]:
    """Return the L2-normalised feature-hashing vector of ``text`` (see the module docstring).

    :param text: the text.
    :param dimensions: the vector's length.
    """
    vector = [0.0] * dimensions
    for word in _words(text):
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        vector[int.from_bytes(digest[:4], "big") % dimensions] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm else vector


def classify(text: str, categories: Sequence[str]) -> str:
    """Return the category sharing the most words with ``text`` (the first on a tie)."""
    if len(categories) < 2:
        raise ValueError(
            f"Cortex emulation: classification needs at least two categories, got {categories!r}."
        )
    words = set(_words(text))
    return max(categories, key=lambda category: len(set(_words(category)) & words))


def extract(text: str, question: str) -> tuple[str | None, float]:
    """Return the sentence sharing the most keywords with ``question`` and the share matched."""
    wanted = _keywords(question)
    best, overlap = None, 0
    for sentence in _sentences(text):
        shared = len(wanted & _keywords(sentence))
        if shared > overlap:
            best, overlap = sentence, shared
    return best, (overlap / len(wanted) if wanted else 0.0)


def complete(model: str, prompt: str) -> tuple[str, dict[str, int]]:
    """Return a canned reply naming ``model`` and the token usage of the exchange."""
    sentences = _sentences(prompt)
    reply = f"[emulated {model}] {sentences[-1] if sentences else ''}".strip()
    prompt_tokens, completion_tokens = len(prompt.split()), len(reply.split())
    return reply, {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _prompt(template: str, text: str) -> str:
    return json.dumps({"template": template, "args": [text]})


def _filter(prompt: str) -> bool:
    try:
        parts = json.loads(prompt)
        template, args = parts["template"], parts["args"]
    except (ValueError, KeyError, TypeError):
        return sentiment_score(prompt) > 0
    return bool(_keywords(template.replace("{0}", "")) & _keywords(" ".join(args)))


def _history_prompt(history: str) -> str:
    messages = json.loads(history)
    return " ".join(str(message.get("content", "")) for message in messages if message.get("role") == "user")


def _complete_object(model: str, prompt: str) -> str:
    reply, usage = complete(model, prompt)
    return json.dumps({"choices": [{"messages": reply}], "model": model, "usage": usage})


def _embedding(model: str, text: str, dimensions: int | None = None) -> list[float]:
    if model not in EMBEDDING_DIMENSIONS:
        raise ValueError(f"Cortex emulation: unknown embedding model {model!r}.")
    size = EMBEDDING_DIMENSIONS[model]
    if dimensions is not None and size != dimensions:
        raise ValueError(f"Cortex emulation: model {model!r} has {size} dimensions, not {dimensions}.")
    return embed(text, size)


def _counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any) -> Any:
        CALLS[name] += 1
        return function(*args)

    return call


JSON = duckdb.sqltype("JSON")
RETURN_NULL = duckdb.PythonExceptionHandling.RETURN_NULL
RAISE = duckdb.PythonExceptionHandling.DEFAULT
TEXT = sqltypes.VARCHAR
TEXTS = duckdb.list_type(sqltypes.VARCHAR)
VECTOR = duckdb.list_type(sqltypes.FLOAT)

#: the AI_* functions (and PROMPT), registered under their own names.
_AI_FUNCTIONS: dict[str, tuple[Callable[..., Any], list[Any], Any]] = {
    "AI_COMPLETE": (lambda model, prompt, _params: complete(model, prompt)[0], [TEXT, TEXT, JSON], TEXT),
    "AI_CLASSIFY": (lambda text, cats: json.dumps({"labels": [classify(text, cats)]}), [TEXT, TEXTS], JSON),
    "AI_FILTER": (_filter, [TEXT], sqltypes.BOOLEAN),
    "AI_SENTIMENT": (
        lambda text: json.dumps({"categories": [{"name": "overall", "sentiment": sentiment_label(text)}]}),
        [TEXT],
        JSON,
    ),
    "AI_EMBED": (lambda model, text: _embedding(model, text), [TEXT, TEXT], VECTOR),
    "AI_TRANSLATE": (translate, [TEXT, TEXT, TEXT], TEXT),
    "AI_EXTRACT": (
        lambda text, response_format: json.dumps(
            {
                "error": None,
                "response": {
                    label: extract(text, question)[0]
                    for label, question in json.loads(response_format).items()
                },
            }
        ),
        [TEXT, JSON],
        JSON,
    ),
    "PROMPT": (_prompt, [TEXT, TEXT], JSON),
}

#: the SNOWFLAKE.CORTEX functions: implementation, parameter types, return type, macro arguments.
_CORTEX_FUNCTIONS: dict[str, tuple[Callable[..., Any], list[Any], Any, str]] = {
    "SENTIMENT": (sentiment_score, [TEXT], sqltypes.DOUBLE, "t"),
    "SUMMARIZE": (summarize, [TEXT], TEXT, "t"),
    "TRANSLATE": (translate, [TEXT, TEXT, TEXT], TEXT, "t, s, g"),
    "EXTRACT_ANSWER": (
        lambda text, question: json.dumps(
            [{"answer": answer, "score": score} for answer, score in [extract(text, question)] if answer]
        ),
        [TEXT, TEXT],
        JSON,
        "t, q",
    ),
    "CLASSIFY_TEXT": (
        lambda text, cats: json.dumps({"label": classify(text, cats)}),
        [TEXT, TEXTS],
        JSON,
        "t, c",
    ),
    "COMPLETE": (
        lambda model, history, _options: _complete_object(model, _history_prompt(history)),
        [TEXT, TEXT, TEXT],
        JSON,
        "m, h::VARCHAR, o::VARCHAR",
    ),
    "EMBED_TEXT_768": (lambda model, text: _embedding(model, text, 768), [TEXT, TEXT], VECTOR, "m, t"),
    "EMBED_TEXT_1024": (lambda model, text: _embedding(model, text, 1024), [TEXT, TEXT], VECTOR, "m, t"),
}


def _macro_parameters(arguments: str) -> str:
    return ", ".join(argument.split("::")[0] for argument in arguments.split(", "))


def _duck_connection(target: Any) -> duckdb.DuckDBPyConnection:
    for candidate in (target, getattr(target, "duck_conn", None), getattr(target, "_duck_conn", None)):
        if isinstance(candidate, duckdb.DuckDBPyConnection):
            return candidate
    raise TypeError(
        f"install() needs a fakesnow FakeSnow instance, a fakesnow connection or a DuckDB connection, "
        f"got {type(target).__name__}."
    )


def _register(
    duck: duckdb.DuckDBPyConnection,
    name: str,
    function: Callable[..., Any],
    parameters: list[Any],
    returns: Any,
    *,
    null_on_error: bool,
) -> None:
    try:
        duck.remove_function(name)
    except duckdb.Error:
        pass  # first installation: nothing to replace
    duck.create_function(
        name,
        _counted(name.removeprefix(_INTERNAL_PREFIX), function),
        parameters,
        returns,
        exception_handling=(
            duckdb.PythonExceptionHandling.RETURN_NULL
            if null_on_error
            else duckdb.PythonExceptionHandling.DEFAULT
        ),
        side_effects=True,
    )


def install(target: Any) -> None:
    """Register the emulated Cortex functions in a fakesnow warehouse (idempotent).

    :param target: ``fakesnow.server.shared_fs`` (or any ``FakeSnow``), a connection returned by
        a patched ``snowflake.connector.connect``, or the DuckDB connection itself.
    """
    duck = _duck_connection(target)
    for name, (function, parameters, returns) in _AI_FUNCTIONS.items():
        _register(duck, name, function, parameters, returns, null_on_error=True)
    duck.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {CATALOG}")
    duck.execute(f"CREATE SCHEMA IF NOT EXISTS {CATALOG}.{SCHEMA}")
    for name, (function, parameters, returns, arguments) in _CORTEX_FUNCTIONS.items():
        internal = _INTERNAL_PREFIX + name
        _register(duck, internal, function, parameters, returns, null_on_error=False)
        duck.execute(
            f"CREATE OR REPLACE MACRO {CATALOG}.{SCHEMA}.{name}({_macro_parameters(arguments)}) "
            f"AS {internal}({arguments})"
        )
    emulated = sorted([*_AI_FUNCTIONS, *(f"{CATALOG}.{SCHEMA}.{name}" for name in _CORTEX_FUNCTIONS)])
    log.warning(
        "Snowflake Cortex is a LOCAL EMULATION in this warehouse: deterministic stand-ins, not language "
        "models (lexicon sentiment, first-sentence summaries, hashed embeddings). Emulated: %s.",
        ", ".join(emulated),
    )


__all__ = ["CALLS", "install", "sentiment_score"]
