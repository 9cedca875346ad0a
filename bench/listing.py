"""GET /api/ordering/order's query at 1,000 and 1,000,000 orders: the first page and a deep
page (a keyset page after the order 100 from the end), and for comparison the same deep
page by ``skip``. Timed in PostgreSQL (EXPLAIN ANALYZE's execution time, median of 30,
the two databases alternating): the query is what grows with the table."""

from __future__ import annotations

import statistics
import uuid
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql

from app.ordering.service import orders_page
from bench.infra import libpq
from bench.scale import explain_analyze

ORDERS = """
INSERT INTO orders (id, customer_name, product_id, quantity, state, created_at)
SELECT gen_random_uuid(), 'customer ' || n, md5('bench-product-' || (1 + n %% 100))::uuid, 1,
       'Confirmed', now() - n * interval '1 millisecond'
FROM generate_series(1, %s) AS n
"""
PAGE = 50


def _sql(query: Any) -> str:
    compiled = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    return str(compiled)


def _fill(database_url: str, orders: int) -> uuid.UUID:
    """``orders`` orders; returns the id 100 from the oldest (a deep page's cursor)."""
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        connection.execute("TRUNCATE orders")
        for start in range(0, orders, 500_000):
            connection.execute(ORDERS, (min(500_000, orders - start),))
        connection.execute("VACUUM ANALYZE orders")
        row = connection.execute(
            "SELECT id FROM orders ORDER BY created_at, id LIMIT 1 OFFSET 100"
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def listing_times(small_db: str, large_db: str, *, small: int, large: int) -> dict[str, object]:
    """Median ms of the first page, the deep keyset page and the deep skip page, at
    ``small`` and ``large`` orders, and the large-to-small ratios."""
    databases = {"small": (small_db, small), "large": (large_db, large)}
    queries: dict[str, dict[str, str]] = {}
    for name, (url, count) in databases.items():
        cursor = _fill(url, count)
        queries[name] = {
            "first": _sql(orders_page(limit=PAGE)),
            "deep_keyset": _sql(orders_page(limit=PAGE, after=cursor)),
            "deep_skip": _sql(orders_page(skip=count - 100, limit=PAGE)),
        }
    times: dict[str, dict[str, list[float]]] = {name: {} for name in databases}
    with (
        psycopg.connect(libpq(small_db)) as first,
        psycopg.connect(libpq(large_db)) as second,
    ):
        connections = {"small": first, "large": second}
        for _ in range(30):
            for name, connection in connections.items():
                for kind, sql in queries[name].items():
                    if kind == "deep_skip" and len(times[name].get(kind, [])) >= 5:
                        continue  # a second or so each at a million: five are enough
                    ms, _ = explain_analyze(connection, sql)
                    times[name].setdefault(kind, []).append(ms)
    medians = {
        name: {kind: round(statistics.median(v), 3) for kind, v in kinds.items()}
        for name, kinds in times.items()
    }
    return {
        "orders": {"small": small, "large": large},
        "page": PAGE,
        "ms": medians,
        "first_ratio": round(medians["large"]["first"] / medians["small"]["first"], 2),
        "deep_keyset_ratio": round(
            medians["large"]["deep_keyset"] / medians["small"]["deep_keyset"], 2
        ),
        "deep_skip_ratio": round(medians["large"]["deep_skip"] / medians["small"]["deep_skip"], 2),
    }
