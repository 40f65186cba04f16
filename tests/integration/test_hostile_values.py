"""Hostile values and quoted names are stored verbatim as data in the embedded warehouse.

Texts made of quotes, semicolons, comment markers, confusables, control characters and
huge strings go through the whole load path (Arrow -> parquet -> PUT -> COPY -> plan) and
come back unchanged. (Hostile quoted table and column names are proven to reach SQL only as
quoted names by the unit tests; the emulator's COPY INTO answers HTTP 500 on them.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sophia.identifiers import quote_identifier, quote_name
from airflow_provider_sophia.ingest import ColumnSpec, Kind, Loader, LoadPlan
from tests.conftest import EmbeddedWarehouse, unique_name
from tests.unit.test_hostile_input import CYRILLIC, FRAGMENTS, FULLWIDTH

pytestmark = pytest.mark.integration

#: fixed hostile texts, each stored once (NUL is not storable in Snowflake VARCHAR: it is cut).
FIXED = [
    "'; DROP TABLE users; --",
    'Robert"); DROP TABLE students;/*',
    f"{FULLWIDTH} - {CYRILLIC}",
    "%s %(x)s {{ 7*7 }} $1 ?",
    "line\nbreak\ttab\r\x1b[31m",
    "\\' \\\" `backtick`",
    "x" * 200_000,
]
TEXTS = st.lists(
    st.sampled_from([piece for piece in FRAGMENTS if piece != "\x00"]), min_size=1, max_size=12
).map("".join) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60
)


@pytest.fixture(scope="module")
def wh(warehouse: EmbeddedWarehouse) -> Iterator[Any]:
    with contextlib.closing(warehouse.connect()) as connection:
        yield connection


def load_texts(wh: Any, target: str, column: str, texts: list[str]) -> list[str]:
    """Load ``texts`` (ID, column) into ``target`` through the staged loader; return them read back."""
    specs = [ColumnSpec("ID", Kind.INTEGER, "int"), ColumnSpec(column, Kind.TEXT, "text")]
    batch = pa.record_batch(
        [pa.array(range(len(texts)), pa.int64()), pa.array(texts, pa.string())], ["ID", column]
    )
    loader = Loader(wh, LoadPlan(target=target), unique_name("hostile"), parallelism=1)
    summary = loader.load([loader.stage([batch], specs)])
    assert summary.rows == len(texts)
    sql = f'SELECT {quote_name(specs[1].target)} FROM {quote_identifier(target)} ORDER BY "ID"'
    return [row[0] for row in wh.cursor().execute(sql).fetchall()]


def test_fixed_hostile_texts_round_trip_verbatim(wh: Any) -> None:
    assert load_texts(wh, unique_name("hostile_fixed"), "BODY", FIXED) == FIXED


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=30))
def test_generated_hostile_texts_round_trip_verbatim(wh: Any, texts: list[str]) -> None:
    assert load_texts(wh, unique_name("hostile_gen"), "BODY", texts) == texts
