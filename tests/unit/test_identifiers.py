from __future__ import annotations

import pytest

from airflow_provider_sophia.exceptions import InvalidIdentifierError
from airflow_provider_sophia.identifiers import quote_column, quote_identifier, split_identifier


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders", '"ORDERS"'),
        ("db.sch.orders", '"DB"."SCH"."ORDERS"'),
        ('"Mixed Case"', '"Mixed Case"'),
        ('"a""b".x', '"a""b"."X"'),
        ('"semi;colon -- ok"', '"semi;colon -- ok"'),
        ("_x$1", '"_X$1"'),
    ],
)
def test_valid_identifiers_are_quoted(name: str, expected: str) -> None:
    assert quote_identifier(name) == expected


def test_source_identifiers_keep_their_case() -> None:
    assert quote_column("updatedAt", upper=False) == '"updatedAt"'
    assert split_identifier("public.users", upper=False) == ["public", "users"]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a;b",
        "a b",
        "1a",
        '"a\x00b"',
        "a.b.c.d",
        "x--",
        '""',
        "a.",
        ".a",
        'a"b',
        "tab\tle",
        "\uff4frders",
        "a'b",
    ],
)
def test_invalid_identifiers_are_rejected(name: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="dentifier"):
        quote_identifier(name)


def test_column_rejects_qualified_name() -> None:
    with pytest.raises(InvalidIdentifierError, match="at most 1"):
        quote_column("t.c")


def test_too_long_identifier_is_rejected() -> None:
    with pytest.raises(InvalidIdentifierError, match="limit is 255"):
        quote_identifier("a" * 256)


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidIdentifierError):
        quote_identifier(None)  # type: ignore[arg-type]
