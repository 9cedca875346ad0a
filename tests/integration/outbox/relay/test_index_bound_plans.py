"""The relay's claim and every retention batch are bounded by their indexes: the
database clock is a value the planner can use (``statement_timestamp()``), so the
rows they read are the rows they take, however many others wait or are retained."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.models import STOCK_RESERVATIONS, TERMINAL
from cloudcrm_outbox.relay.statements import relay_statements
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.retention import batch_delete
from cloudcrm_outbox.storage.tables import INBOX, OUTBOX
from tests.conftest import query
from tests.support.plans import compiled, explain, index_scan

pytestmark = pytest.mark.postgres

DAY = 24 * 3600.0
WAITING = 20_000


async def test_the_claim_reads_only_due_rows(outbox_db: str, engine: AsyncEngine) -> None:
    await query(
        outbox_db,
        "INSERT INTO outbox (id, event_type, payload, headers, attempts, next_attempt_at) "
        "SELECT gen_random_uuid(), 'OrderPlaced', '{}', '{}', 3, now() + interval '1 hour' "
        f"FROM generate_series(1, {WAITING})",
    )
    await query(
        outbox_db,
        "INSERT INTO outbox (id, event_type, payload, headers) "
        "VALUES (gen_random_uuid(), 'OrderPlaced', '{}', '{}')",
    )
    await query(outbox_db, "ANALYZE outbox")
    claim = relay_statements(OUTBOX, batch_size=100, max_attempts=10).claim_sql(
        engine.sync_engine.dialect
    )

    plan = await explain(outbox_db, claim)

    scan = index_scan(plan, "ix_outbox_pending")
    assert "next_attempt_at <= (statement_timestamp()" in scan["Index Cond"]
    assert scan["Actual Rows"] == 1
    assert all(node.get("Rows Removed by Filter", 0) == 0 for node in plan), plan


async def test_outbox_retention_reads_only_the_rows_it_deletes(
    outbox_db: str, engine: AsyncEngine
) -> None:
    await query(
        outbox_db,
        "INSERT INTO outbox (id, event_type, payload, headers, published_at) "
        "SELECT gen_random_uuid(), 'OrderPlaced', '{}', '{}', "
        "now() - (CASE WHEN n <= 30 THEN interval '8 days' ELSE interval '1 day' END) "
        f"FROM generate_series(1, {WAITING}) AS n",
    )
    await query(outbox_db, "ANALYZE outbox")
    batch = batch_delete(
        OUTBOX,
        keys=[OUTBOX.c.id],
        condition=OUTBOX.c.published_at < db_now_plus(-7 * DAY),
        age=OUTBOX.c.published_at,
        limit=1000,
    )

    plan = await explain(outbox_db, f"{compiled(batch, engine)}")

    scan = index_scan(plan, "ix_outbox_published_at")
    assert "published_at < (statement_timestamp()" in scan["Index Cond"]
    assert scan["Actual Rows"] == 30


async def test_inbox_retention_reads_only_the_rows_it_deletes(
    outbox_db: str, engine: AsyncEngine
) -> None:
    await query(
        outbox_db,
        "INSERT INTO inbox (consumer, message_id, outcome, processed_at) "
        "SELECT 'catalog', gen_random_uuid(), 'applied', "
        "now() - (CASE WHEN n <= 30 THEN interval '8 days' ELSE interval '1 day' END) "
        f"FROM generate_series(1, {WAITING}) AS n",
    )
    await query(outbox_db, "ANALYZE inbox")
    batch = batch_delete(
        INBOX,
        keys=[INBOX.c.consumer, INBOX.c.message_id],
        condition=INBOX.c.processed_at < db_now_plus(-7 * DAY),
        age=INBOX.c.processed_at,
        limit=1000,
    )

    plan = await explain(outbox_db, compiled(batch, engine))

    scan = index_scan(plan, "ix_inbox_processed_at")
    assert "processed_at < (statement_timestamp()" in scan["Index Cond"]
    assert scan["Actual Rows"] == 30


async def test_reservation_retention_reads_only_the_rows_it_deletes(
    catalog_db: str, engine: AsyncEngine
) -> None:
    # Live reservations are never candidates (the index holds finished ones only); of
    # the finished ones, only the old are read.
    await query(
        catalog_db,
        "INSERT INTO stock_reservations (order_id, product_id, quantity, state, updated_at) "
        "SELECT gen_random_uuid(), gen_random_uuid(), 1, "
        "CASE WHEN n % 2 = 0 THEN 'reserved' ELSE 'released' END, "
        "now() - (CASE WHEN n <= 60 THEN interval '40 days' ELSE interval '1 day' END) "
        f"FROM generate_series(1, {WAITING}) AS n",
    )
    await query(catalog_db, "ANALYZE stock_reservations")
    reservations = STOCK_RESERVATIONS
    batch = batch_delete(
        reservations,
        keys=[reservations.c.order_id],
        condition=TERMINAL & (reservations.c.updated_at < db_now_plus(-30 * DAY)),
        age=reservations.c.updated_at,
        limit=1000,
    )

    plan = await explain(catalog_db, compiled(batch, engine))

    scan = index_scan(plan, "ix_stock_reservations_terminal_updated_at")
    assert "updated_at < (statement_timestamp()" in scan["Index Cond"]
    assert scan["Actual Rows"] == 30
