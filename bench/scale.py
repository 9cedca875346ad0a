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

from bench.infra import libpq
from bench.relay_drain import STAGE, drain_rate
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.statements import relay_statements
from cloudcrm_outbox.storage.tables import OUTBOX

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
    policy = RelayPolicy()
    statements = relay_statements(
        OUTBOX, batch_size=policy.batch_size, max_attempts=policy.max_attempts
    )
    return statements.claim_sql(postgresql.dialect())


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def explain_analyze(connection: psycopg.Connection, query: str) -> tuple[float, set[str]]:  # type: ignore[type-arg]
    """One EXPLAIN ANALYZE of the query ``claim``, rolled back (nothing stays locked): its time in
    ms and the indexes its plan reads."""
    row = connection.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query).fetchone()
    connection.rollback()
    assert row is not None
    [explained] = row[0] if isinstance(row[0], list) else json.loads(row[0])
    nodes = _plan_nodes(explained["Plan"])
    return float(explained["Execution Time"]), {n["Index Name"] for n in nodes if "Index Name" in n}


def _reset(database_url: str, *, published: int, pending: int) -> None:
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        connection.execute("TRUNCATE outbox")
        if published:
            connection.execute(PUBLISHED, (published,))
        connection.execute(STAGE, (pending,))
        connection.execute("VACUUM ANALYZE outbox")


def compare(
    empty_db: str, retained_db: str, broker_url: str, *, retained: int, pending: int
) -> dict[str, object]:
    """The claim and the drain of ``pending`` rows on an empty outbox and over ``retained``
    published rows. Interleaved (claims alternate, drains go A B B A), because this
    machine's speed drifts by more than the 20% being checked."""
    _reset(empty_db, published=0, pending=pending)
    _reset(retained_db, published=retained, pending=pending)
    databases = {"empty": empty_db, "retained": retained_db}
    claims: dict[str, list[float]] = {name: [] for name in databases}
    indexes: dict[str, set[str]] = {name: set() for name in databases}
    with (
        psycopg.connect(libpq(empty_db)) as empty,
        psycopg.connect(libpq(retained_db)) as kept,
    ):
        claim = claim_sql()
        for _ in range(30):
            for name, connection in (("empty", empty), ("retained", kept)):
                ms, used = explain_analyze(connection, claim)
                claims[name].append(ms)
                indexes[name] |= used
    drains: dict[str, list[float]] = {name: [] for name in databases}
    for name in ("empty", "retained", "retained", "empty"):
        # The empty outbox starts empty each time; the retained one keeps every row it has
        # published, so it only grows past ``retained``.
        drains[name].append(
            drain_rate(
                databases[name], broker_url, rows=pending, relays=1, keep_table=name == "retained"
            )
        )
    figures = {
        name: {
            "published_rows": 0 if name == "empty" else retained,
            "pending_rows": pending,
            "claim_ms": round(statistics.median(claims[name]), 3),
            "indexes": sorted(indexes[name]),
            "drain_msg_s": round(statistics.median(drains[name])),
        }
        for name in databases
    }
    return figures
