"""Generate the embedded stack's sample source database: a small "core" app in SQLite.

Deterministic for a seed, so a demo run and a test see the same rows. Every table has an
integer primary key ``id`` and an ``updated_at`` timestamp (ISO-8601, UTC) spread over the
``days`` before ``until``, so incremental loads by data interval find rows in each window.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

COUNTRIES = ("DE", "FR", "GB", "US", "BR", "IN", "JP", "ZA", "ES", "IT")
STATUSES = ("pending", "paid", "shipped", "refunded", "cancelled")
NAMES = ("Ada", "Grace", "Linus", "Ken", "Barbara", "Edsger", "Frances", "Donald", "Anita", "José")

SCHEMA = (
    """CREATE TABLE customers (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, country TEXT,
        is_active BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE products (
        id INTEGER PRIMARY KEY, sku TEXT NOT NULL, title TEXT NOT NULL, price NUMERIC(12, 2) NOT NULL,
        updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE orders (
        id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
        quantity INTEGER NOT NULL, amount NUMERIC(12, 2) NOT NULL, status TEXT NOT NULL,
        note TEXT, ordered_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL)""",
)
TABLES = ("customers", "products", "orders")


@dataclass(frozen=True)
class SampleSizes:
    """How many rows each sample table gets."""

    customers: int = 1_000
    products: int = 200
    orders: int = 20_000


def _timestamp(rng: random.Random, until: datetime, days: int) -> str:
    moment = until - timedelta(seconds=rng.randrange(days * 86_400))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def generate(
    path: Path,
    *,
    sizes: SampleSizes | None = None,
    seed: int = 42,
    until: datetime | None = None,
    days: int = 7,
) -> dict[str, int]:
    """Create (or recreate) the sample SQLite database at ``path``; return rows per table.

    :param path: the SQLite file to write; replaced when it exists.
    :param sizes: rows per table.
    :param seed: random seed; the same seed gives the same rows.
    :param until: newest ``updated_at``; today's midnight (UTC) when omitted.
    :param days: how many days before ``until`` the ``updated_at`` values spread over.
    """
    sizes = sizes or SampleSizes()
    until = until or datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        for ddl in SCHEMA:
            db.execute(ddl)
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    f"{rng.choice(NAMES)} {i}",
                    f"customer{i}@example.com",
                    rng.choice(COUNTRIES),
                    rng.random() > 0.1,
                    _timestamp(rng, until, days * 4),
                    _timestamp(rng, until, days),
                )
                for i in range(1, sizes.customers + 1)
            ),
        )
        prices = {i: Decimal(rng.randrange(100, 50_000)) / 100 for i in range(1, sizes.products + 1)}
        db.executemany(
            "INSERT INTO products VALUES (?, ?, ?, ?, ?)",
            (
                (i, f"SKU-{i:05d}", f"Product {i} ✓", str(price), _timestamp(rng, until, days))
                for i, price in prices.items()
            ),
        )

        def order(i: int) -> tuple[object, ...]:
            product = rng.randrange(1, sizes.products + 1)
            quantity = rng.randrange(1, 6)
            note = None if rng.random() < 0.7 else f"gift wrap 'please' #{i}"
            return (
                i,
                rng.randrange(1, sizes.customers + 1),
                product,
                quantity,
                str(prices[product] * quantity),
                rng.choice(STATUSES),
                note,
                _timestamp(rng, until, days * 2),
                _timestamp(rng, until, days),
            )

        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order(i) for i in range(1, sizes.orders + 1)),
        )
    tmp.replace(path)
    return {"customers": sizes.customers, "products": sizes.products, "orders": sizes.orders}
