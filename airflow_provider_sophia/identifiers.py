"""Validate and quote SQL identifiers (tables, columns, keys) before they reach SQL.

Values never go through this module: they are bind parameters. Identifiers cannot be
bound, so every one is checked against a strict grammar and then double-quoted.

Accepted forms, per dot-separated part (``db.schema.table`` has up to three parts):

* a plain identifier, ``[A-Za-z_][A-Za-z0-9_$]*``: resolved the way Snowflake resolves an
  unquoted name (upper-cased) and emitted quoted, so ``orders`` becomes ``"ORDERS"``;
* an already quoted identifier, ``"Mixed Case"``: kept verbatim; an embedded ``"`` must be
  doubled, and control characters (NUL included) are refused.
"""

from __future__ import annotations

import re

from airflow_provider_sophia.exceptions import InvalidIdentifierError

MAX_IDENTIFIER_LENGTH = 255
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_QUOTED = re.compile(r'"((?:[^"\x00-\x1f\x7f]|"")+)"\Z')
_PART = re.compile(r'"(?:[^"]|"")*"|[^."]*')


def _parts(name: str) -> list[str]:
    parts: list[str] = []
    pos = 0
    while True:
        match = _PART.match(name, pos)
        assert match is not None  # the pattern also matches the empty string
        parts.append(match.group())
        pos = match.end()
        if pos == len(name):
            return parts
        if name[pos] != ".":
            raise InvalidIdentifierError(
                f"Invalid identifier {name!r}: unexpected character {name[pos]!r} at position {pos}. "
                'Use letters, digits, _ and $, or a double-quoted name such as "My Table".'
            )
        pos += 1


def normalize_part(part: str, *, upper: bool = True) -> str:
    """Return the exact (unquoted) name one identifier part refers to.

    :param part: a plain or double-quoted identifier, without dots outside quotes.
    :param upper: resolve plain identifiers upper-cased (Snowflake) or as written.
    :raises InvalidIdentifierError: when ``part`` is not a valid identifier.
    """
    if not isinstance(part, str):
        raise InvalidIdentifierError(f"Identifier must be a string, got {type(part).__name__}: {part!r}")
    if _PLAIN.match(part):
        name = part.upper() if upper else part
    elif (quoted := _QUOTED.match(part)) is not None:
        name = quoted.group(1).replace('""', '"')
    else:
        raise InvalidIdentifierError(
            f"Invalid identifier {part!r}: use letters, digits, _ and $ (not starting with a digit), "
            'or a double-quoted name without control characters such as "My Table".'
        )
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifierError(
            f"Identifier {part[:40]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_IDENTIFIER_LENGTH}."
        )
    return name


def split_identifier(name: str, *, max_parts: int = 3, upper: bool = True) -> list[str]:
    """Split a possibly qualified name (``db.schema.table``) into validated exact names.

    :param name: the identifier as a user wrote it.
    :param max_parts: how many dot-separated parts are allowed (1 for a column).
    :param upper: resolve plain parts upper-cased (Snowflake) or as written (sources).
    :raises InvalidIdentifierError: when any part is invalid or there are too many parts.
    """
    if not isinstance(name, str) or not name:
        raise InvalidIdentifierError(f"Identifier must be a non-empty string, got {name!r}")
    parts = [normalize_part(part, upper=upper) for part in _parts(name)]
    if len(parts) > max_parts:
        raise InvalidIdentifierError(
            f"Identifier {name!r} has {len(parts)} dot-separated parts; at most {max_parts} are allowed."
        )
    return parts


def quote_name(exact: str) -> str:
    """Double-quote an exact name, doubling embedded quotes."""
    return '"' + exact.replace('"', '""') + '"'


def quote_identifier(name: str, *, max_parts: int = 3, upper: bool = True) -> str:
    """Validate ``name`` and return it quoted for SQL, e.g. ``db.orders`` -> ``"DB"."ORDERS"``.

    :param name: the identifier as a user wrote it.
    :param max_parts: how many dot-separated parts are allowed (1 for a column).
    :param upper: resolve plain parts upper-cased (Snowflake) or as written (sources).
    :raises InvalidIdentifierError: when ``name`` is not a valid identifier.
    """
    return ".".join(quote_name(part) for part in split_identifier(name, max_parts=max_parts, upper=upper))


def quote_column(name: str, *, upper: bool = True) -> str:
    """Validate and quote a single (unqualified) column name."""
    return quote_identifier(name, max_parts=1, upper=upper)
