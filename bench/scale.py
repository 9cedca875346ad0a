"""Scale: the claim query and the relay's drain with 1,000,000 published rows retained.

The claim must stay on the partial index ``ix_outbox_pending`` (pending rows only), so
that the published history a retention window keeps costs the relay nothing.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql

from app.outbox.relay import RelayPolicy, claim_statement, inlined_sql
from bench.infra import libpq
from bench.relay_drain import STAGE, drain_rate

PUBLISHED = """
INSERT INTO outbox (id, event_type, payload, headers, published_at, created_at)
SELECT gen_random_uuid(), 'OrderPlaced',
       json_build_object('orderId', gen_random_uuid(), 'productId', gen_random_uuid(),
                         'customerName', 'customer ' || n, 'quantity', 1),
       '{"event_version": "1"}'::json, now() - interval '1 hour', now() - interval '1 hour'
FROM generate_series(1, %s) AS n
"""


def claim_sql() -> str:
    """The relay's claim statement as it runs (default batch size), as SQL text."""
    return inlined_sql(claim_statement(RelayPolicy().batch_size), postgresql.dialect())


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def claim_timing(database_url: str, *, runs: int = 20) -> dict[str, object]:
    """Median EXPLAIN ANALYZE time of the claim (rolled back: nothing is locked after),
    and the indexes its plan reads."""
    times: list[float] = []
    indexes: set[str] = set()
    with psycopg.connect(libpq(database_url)) as connection:
        for _ in range(runs):
            row = connection.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + claim_sql()).fetchone()
            connection.rollback()
            assert row is not None
            [explained] = row[0] if isinstance(row[0], list) else json.loads(row[0])
            times.append(float(explained["Execution Time"]))
            indexes |= {
                node["Index Name"]
                for node in _plan_nodes(explained["Plan"])
                if "Index Name" in node
            }
    return {"claim_ms": round(statistics.median(times), 3), "indexes": sorted(indexes)}


def _reset(database_url: str, *, published: int, pending: int) -> None:
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        connection.execute("TRUNCATE outbox")
        if published:
            connection.execute(PUBLISHED, (published,))
        connection.execute(STAGE, (pending,))
        connection.execute("VACUUM ANALYZE outbox")


def scale_case(
    database_url: str, broker_url: str, *, published: int, pending: int
) -> dict[str, object]:
    """Claim time with ``pending`` rows over ``published`` retained ones, then the drain rate
    of ``pending`` rows by one relay over the same retained rows."""
    _reset(database_url, published=published, pending=pending)
    claim = claim_timing(database_url)
    _reset(database_url, published=published, pending=0)
    rate = drain_rate(database_url, broker_url, rows=pending, relays=1, keep_table=True)
    return {
        "published_rows": published,
        "pending_rows": pending,
        **claim,
        "drain_msg_s": round(rate),
    }
