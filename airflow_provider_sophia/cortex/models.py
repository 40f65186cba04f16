"""The Cortex vocabulary: functions, typed requests, results and the service configuration.

Signatures follow Snowflake's SQL reference (docs.snowflake.com/en/sql-reference/functions/):

* ``AI_COMPLETE(model, prompt [, model_parameters ...])`` returns a string; ``model_parameters``
  takes ``temperature`` (default 0) and ``max_tokens`` (default 4096, at most 8192).
* ``SNOWFLAKE.CORTEX.COMPLETE(model, prompt_or_history [, options])``: with ``options`` the
  prompt is an array of ``{role, content}`` objects and the result is an object with
  ``choices[0].messages`` and ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``).
* ``AI_CLASSIFY(input, list_of_categories)`` returns an object with ``labels``;
  ``CLASSIFY_TEXT(input, list_of_categories)`` one with ``label`` (2 to 100 unique categories).
* ``AI_FILTER(input)`` returns a BOOLEAN; ``PROMPT(template, arg)`` formats ``{0}`` in ``template``.
* ``AI_SENTIMENT(text)`` returns an object whose ``categories`` hold the ``overall`` sentiment
  (``positive``/``negative``/``neutral``/``mixed``); ``SENTIMENT(text)`` a float in [-1, 1].
* ``AI_EMBED(model, input)`` and ``EMBED_TEXT_768/1024(model, text)`` return a VECTOR.
* ``AI_TRANSLATE`` / ``TRANSLATE(text, source_language, target_language)``; an empty source
  language means "detect".
* ``AI_EXTRACT(text, responseFormat)`` returns an object with ``response``;
  ``EXTRACT_ANSWER(source_document, question)`` an array of ``{answer, score}``.

Input limits come from the "Model restrictions" table of the Cortex AI Functions guide: limits
are in tokens, a token is about four characters, and longer inputs are an error. The service
truncates to :data:`CHARS_PER_TOKEN` characters per token, below the four the guide quotes, so a
text that tokenises densely still fits.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from airflow_provider_sophia.resilience import RetryPolicy

#: characters per token used to turn a token limit into a character limit (conservative).
CHARS_PER_TOKEN = 3


class ResultKind(enum.Enum):
    """What a function returns, which decides the target column type and the parser."""

    SCORE = "FLOAT"
    TEXT = "VARCHAR"
    BOOLEAN = "BOOLEAN"
    VECTOR = "ARRAY"
    OBJECT = "VARIANT"

    @property
    def sql_type(self) -> str:
        """Return the Snowflake type of the target's ``RESULT`` column."""
        return self.value


@dataclass(frozen=True)
class FunctionSpec:
    """How one Cortex function is called and what it returns.

    :param sql_name: the name as written in SQL.
    :param result: the kind of value it returns.
    :param input_tokens: the documented context window of the text argument, in tokens.
    :param null_on_error: whether Snowflake returns NULL for a row it cannot process (AI_*
        functions) instead of failing the whole statement (the ``SNOWFLAKE.CORTEX`` ones).
    """

    sql_name: str
    result: ResultKind
    input_tokens: int
    null_on_error: bool


class CortexFunction(enum.Enum):
    """The Cortex functions the service can run; the value is the function's :class:`FunctionSpec`."""

    AI_COMPLETE = FunctionSpec("AI_COMPLETE", ResultKind.TEXT, 32_000, True)
    AI_CLASSIFY = FunctionSpec("AI_CLASSIFY", ResultKind.OBJECT, 128_000, True)
    AI_FILTER = FunctionSpec("AI_FILTER", ResultKind.BOOLEAN, 128_000, True)
    AI_SENTIMENT = FunctionSpec("AI_SENTIMENT", ResultKind.OBJECT, 2_048, True)
    AI_EMBED = FunctionSpec("AI_EMBED", ResultKind.VECTOR, 512, True)
    AI_TRANSLATE = FunctionSpec("AI_TRANSLATE", ResultKind.TEXT, 4_096, True)
    AI_EXTRACT = FunctionSpec("AI_EXTRACT", ResultKind.OBJECT, 128_000, True)
    SENTIMENT = FunctionSpec("SNOWFLAKE.CORTEX.SENTIMENT", ResultKind.SCORE, 512, False)
    SUMMARIZE = FunctionSpec("SNOWFLAKE.CORTEX.SUMMARIZE", ResultKind.TEXT, 32_000, False)
    TRANSLATE = FunctionSpec("SNOWFLAKE.CORTEX.TRANSLATE", ResultKind.TEXT, 4_096, False)
    EXTRACT_ANSWER = FunctionSpec("SNOWFLAKE.CORTEX.EXTRACT_ANSWER", ResultKind.OBJECT, 2_048, False)
    CLASSIFY_TEXT = FunctionSpec("SNOWFLAKE.CORTEX.CLASSIFY_TEXT", ResultKind.OBJECT, 128_000, False)
    COMPLETE = FunctionSpec("SNOWFLAKE.CORTEX.COMPLETE", ResultKind.OBJECT, 32_000, False)
    EMBED_TEXT_768 = FunctionSpec("SNOWFLAKE.CORTEX.EMBED_TEXT_768", ResultKind.VECTOR, 512, False)
    EMBED_TEXT_1024 = FunctionSpec("SNOWFLAKE.CORTEX.EMBED_TEXT_1024", ResultKind.VECTOR, 512, False)

    @property
    def spec(self) -> FunctionSpec:
        """Return the function's call and result description."""
        spec: FunctionSpec = self.value
        return spec

    @classmethod
    def parse(cls, name: str | CortexFunction) -> CortexFunction:
        """Return the function named ``name`` (``sentiment``, ``AI_EMBED``, ``SNOWFLAKE.CORTEX.SUMMARIZE``).

        :param name: a member, its name or its SQL name, in any case.
        :raises ValueError: when no Cortex function has that name.
        """
        if isinstance(name, CortexFunction):
            return name
        wanted = str(name).strip().upper()
        for member in cls:
            if wanted in (member.name, member.spec.sql_name):
                return member
        known = ", ".join(member.name for member in cls)
        raise ValueError(f"Unknown Cortex function {name!r}; use one of: {known}.")


#: output dimension of each embedding model (EMBED_TEXT_768, EMBED_TEXT_1024 and AI_EMBED pages).
EMBEDDING_DIMENSIONS: Mapping[str, int] = {
    "snowflake-arctic-embed-m-v1.5": 768,
    "snowflake-arctic-embed-m": 768,
    "e5-base-v2": 768,
    "snowflake-arctic-embed-l-v2.0": 1024,
    "snowflake-arctic-embed-l-v2.0-8k": 1024,
    "nv-embed-qa-4": 1024,
    "multilingual-e5-large": 1024,
    "voyage-multilingual-2": 1024,
}

#: embedding models whose context window is larger than the 512 tokens of the others.
EMBEDDING_INPUT_TOKENS: Mapping[str, int] = {
    "snowflake-arctic-embed-l-v2.0-8k": 8_192,
    "voyage-multilingual-2": 32_000,
}


@dataclass(frozen=True)
class CortexRequest:
    """A call of one Cortex function over text; subclasses add the function's options.

    :param function: the Cortex function to run.
    """

    functions: ClassVar[frozenset[CortexFunction]] = frozenset(
        {CortexFunction.AI_SENTIMENT, CortexFunction.SENTIMENT, CortexFunction.SUMMARIZE}
    )

    function: CortexFunction

    def __post_init__(self) -> None:
        if self.function not in self.functions:
            allowed = ", ".join(sorted(member.name for member in self.functions))
            raise ValueError(
                f"{type(self).__name__} cannot run {self.function.name}; it runs {allowed}. "
                "Build requests with build_request(function, options)."
            )

    @property
    def model(self) -> str | None:
        """Return the model the function runs, ``None`` when Snowflake chooses it."""
        return None

    def input_tokens(self) -> int:
        """Return the documented input limit of the text argument, in tokens."""
        return self.function.spec.input_tokens

    def options(self) -> dict[str, Any]:
        """Return the options as a JSON-able dict (fingerprinted with the text)."""
        return {key: value for key, value in asdict(self).items() if key != "function"}


@dataclass(frozen=True)
class CompleteRequest(CortexRequest):
    """``AI_COMPLETE`` / ``COMPLETE``: the text (after ``instruction``) is the prompt.

    :param model: the language model, e.g. ``llama3.1-8b``.
    :param instruction: text placed before each row's text, e.g. ``"Summarise this call:"``.
    :param temperature: 0 to 1; 0 is the most deterministic.
    :param max_tokens: output token limit, 1 to 8192.
    """

    functions: ClassVar[frozenset[CortexFunction]] = frozenset(
        {CortexFunction.AI_COMPLETE, CortexFunction.COMPLETE}
    )

    model_name: str = "llama3.1-8b"
    instruction: str | None = None
    temperature: float = 0.0
    max_tokens: int = 4096

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.temperature <= 1.0:
            raise ValueError(f"temperature must be between 0 and 1, got {self.temperature!r}.")
        if not 1 <= self.max_tokens <= 8192:
            raise ValueError(f"max_tokens must be between 1 and 8192, got {self.max_tokens!r}.")

    @property
    def model(self) -> str | None:
        return self.model_name


@dataclass(frozen=True)
class EmbedRequest(CortexRequest):
    """``AI_EMBED`` / ``EMBED_TEXT_768`` / ``EMBED_TEXT_1024``.

    :param model_name: the embedding model; its dimension must match the function.
    """

    functions: ClassVar[frozenset[CortexFunction]] = frozenset(
        {CortexFunction.AI_EMBED, CortexFunction.EMBED_TEXT_768, CortexFunction.EMBED_TEXT_1024}
    )

    model_name: str = "snowflake-arctic-embed-l-v2.0"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model_name not in EMBEDDING_DIMENSIONS:
            raise ValueError(
                f"Unknown embedding model {self.model_name!r}; use one of: {', '.join(EMBEDDING_DIMENSIONS)}."
            )
        fixed = {CortexFunction.EMBED_TEXT_768: 768, CortexFunction.EMBED_TEXT_1024: 1024}.get(self.function)
        if fixed is not None and fixed != self.dimensions:
            raise ValueError(
                f"{self.function.name} needs a {fixed}-dimension model; "
                f"{self.model_name!r} has {self.dimensions}."
            )

    @property
    def model(self) -> str | None:
        return self.model_name

    @property
    def dimensions(self) -> int:
        """Return the length of the vectors the model produces."""
        return EMBEDDING_DIMENSIONS[self.model_name]

    def input_tokens(self) -> int:
        return EMBEDDING_INPUT_TOKENS.get(self.model_name, self.function.spec.input_tokens)


@dataclass(frozen=True)
class TranslateRequest(CortexRequest):
    """``AI_TRANSLATE`` / ``TRANSLATE``.

    :param target_language: language code to translate into, e.g. ``de``.
    :param source_language: language code of the text; ``""`` lets Snowflake detect it.
    """

    functions: ClassVar[frozenset[CortexFunction]] = frozenset(
        {CortexFunction.AI_TRANSLATE, CortexFunction.TRANSLATE}
    )

    target_language: str = "en"
    source_language: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.target_language:
            raise ValueError("target_language must be a language code such as 'en', got an empty string.")


@dataclass(frozen=True)
class ClassifyRequest(CortexRequest):
    """``AI_CLASSIFY`` / ``CLASSIFY_TEXT``.

    :param categories: at least two unique, case-sensitive labels (at most 100 for CLASSIFY_TEXT).
    """

    functions: ClassVar[frozenset[CortexFunction]] = frozenset(
        {CortexFunction.AI_CLASSIFY, CortexFunction.CLASSIFY_TEXT}
    )

    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "categories", tuple(self.categories))
        unique = set(self.categories)
        if len(unique) < 2 or len(unique) != len(self.categories) or not all(unique):
            raise ValueError(
                f"categories must be at least two unique non-empty labels, got {self.categories!r}."
            )
        if self.function is CortexFunction.CLASSIFY_TEXT and len(unique) > 100:
            raise ValueError(f"CLASSIFY_TEXT takes at most 100 categories, got {len(unique)}.")


@dataclass(frozen=True)
class FilterRequest(CortexRequest):
    """``AI_FILTER`` over ``PROMPT(predicate, text)``.

    :param predicate: a yes/no question; ``{0}`` marks where the text goes, else it is appended.
    """

    functions: ClassVar[frozenset[CortexFunction]] = frozenset({CortexFunction.AI_FILTER})

    predicate: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.predicate.strip():
            raise ValueError("AI_FILTER needs a predicate, e.g. 'Does this call mention pricing? {0}'.")


@dataclass(frozen=True)
class ExtractRequest(CortexRequest):
    """``AI_EXTRACT`` / ``EXTRACT_ANSWER``.

    :param question: what to extract, e.g. ``"Which competitor is mentioned?"``.
    """

    functions: ClassVar[frozenset[CortexFunction]] = frozenset(
        {CortexFunction.AI_EXTRACT, CortexFunction.EXTRACT_ANSWER}
    )

    question: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.question.strip():
            raise ValueError(f"{self.function.name} needs a question, e.g. 'Which product is discussed?'.")


_REQUEST_TYPES: tuple[type[CortexRequest], ...] = (
    CortexRequest,
    CompleteRequest,
    EmbedRequest,
    TranslateRequest,
    ClassifyRequest,
    FilterRequest,
    ExtractRequest,
)
#: option names accepted by ``build_request`` that differ from the dataclass field names.
_OPTION_ALIASES = {"model": "model_name"}


def build_request(function: str | CortexFunction, options: Mapping[str, Any] | None = None) -> CortexRequest:
    """Return the typed request for ``function`` with ``options`` validated.

    :param function: a Cortex function or its name (see :meth:`CortexFunction.parse`).
    :param options: the function's options, e.g. ``{"model": "mistral-7b"}`` or
        ``{"categories": ["billing", "bug"]}``.
    :raises ValueError: for an unknown function, an unknown option or an invalid value.
    """
    member = CortexFunction.parse(function)
    request_type = next(kind for kind in _REQUEST_TYPES if member in kind.functions)
    fields = {name for name in request_type.__dataclass_fields__ if name != "function"}
    kwargs: dict[str, Any] = {}
    for name, value in (options or {}).items():
        key = _OPTION_ALIASES.get(name, name)
        if key not in fields:
            accepted = ", ".join(sorted({"model" if f == "model_name" else f for f in fields})) or "none"
            raise ValueError(f"Unknown option {name!r} for {member.name}; accepted options: {accepted}.")
        kwargs[key] = tuple(value) if key == "categories" else value
    return request_type(function=member, **kwargs)


class ErrorMode(enum.Enum):
    """What a permanent error does: ``report`` records it with the row key, ``fail`` raises."""

    REPORT = "report"
    FAIL = "fail"


@dataclass(frozen=True)
class ServiceConfig:
    """How :class:`~airflow_provider_sophia.cortex.core.CortexService` runs.

    :param on_error: ``report`` keeps going and reports failed rows with their key; ``fail``
        raises :class:`~airflow_provider_sophia.exceptions.CortexPermanentError`.
    :param retry: bounds of the retries of transient Snowflake errors, per statement.
    :param batch_size: most texts one small-batch statement carries.
    :param max_reported_errors: most failed rows listed in a summary (all are counted).
    :param retry_failed_rows: whether rows that failed before are sent again although unchanged.
    :param max_input_chars: character limit replacing the function's documented one.
    """

    on_error: ErrorMode = ErrorMode.REPORT
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=4, max_delay=30.0))
    batch_size: int = 100
    max_reported_errors: int = 100
    retry_failed_rows: bool = False
    max_input_chars: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_error", ErrorMode(self.on_error))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}.")
        if self.max_input_chars is not None and self.max_input_chars < 1:
            raise ValueError(f"max_input_chars must be positive or None, got {self.max_input_chars!r}.")


@dataclass(frozen=True)
class Usage:
    """Tokens one COMPLETE call consumed, as Snowflake reports them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ParsedResult:
    """A function's raw output turned into a Python value.

    :param value: float (SENTIMENT), str (text, label, answer), bool (AI_FILTER),
        list of float (embeddings) or list of str (AI_CLASSIFY labels).
    :param usage: token usage when the function reports it (COMPLETE).
    """

    value: Any
    usage: Usage | None = None


@dataclass(frozen=True)
class CortexResult:
    """The outcome for one text of the small-batch API.

    :param key: the caller's key of the text.
    :param value: the parsed value, ``None`` when the row failed.
    :param usage: token usage when reported.
    :param error: why the row failed, ``None`` on success.
    """

    key: str
    value: Any = None
    usage: Usage | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Return whether the row was enriched."""
        return self.error is None


@dataclass(frozen=True)
class RowError:
    """A row that could not be enriched, with its key."""

    key: str
    error: str


@dataclass
class EnrichmentSummary:
    """What one set-based run did; :meth:`as_dict` is the operator's XCom value."""

    function: str
    model: str | None
    target_table: str
    rows_enriched: int = 0
    rows_skipped_unchanged: int = 0
    rows_deferred: int = 0
    rows_failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    statements: int = 0
    attempts: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-able data."""
        return asdict(self)


__all__ = [
    "CHARS_PER_TOKEN",
    "EMBEDDING_DIMENSIONS",
    "ClassifyRequest",
    "CompleteRequest",
    "CortexFunction",
    "CortexRequest",
    "CortexResult",
    "EmbedRequest",
    "EnrichmentSummary",
    "ErrorMode",
    "ExtractRequest",
    "FilterRequest",
    "FunctionSpec",
    "ParsedResult",
    "ResultKind",
    "RowError",
    "ServiceConfig",
    "TranslateRequest",
    "Usage",
    "build_request",
]
