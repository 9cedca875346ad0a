"""The saga's reply timeout on PostgreSQL: overdue Placed orders get their OrderPlaced
back to pending under the same message id, with a doubling delay, then are reported."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ordering import service
from app.ordering.reply_timeouts import (
    REBUILT_ORDER_PLACED,
    ReplyTimeoutPolicy,
    count_unanswered,
    overdue_orders,
    sweep_overdue_orders,
)
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from tests.conftest import query

pytestmark = pytest.mark.postgres

POLICY = ReplyTimeoutPolicy(timeout_seconds=60, max_retries=2, backoff_max_seconds=100)


@pytest.fixture
async def engine(ordering_db: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(ordering_db)
    yield engine
    await engine.dispose()


async def place(engine: AsyncEngine, count: int) -> list[uuid.UUID]:
    """``count`` Placed orders, their OrderPlaced published (as the relay marks them)."""
    ids = []
    async with make_sessionmaker(engine)() as session, session.begin():
        for _ in range(count):
            order = await service.place_order(
                session, customer_name="Ann", product_id=uuid.uuid4(), quantity=1
            )
            ids.append(order.id)
    return ids


async def overdue(url: str, ids: list[uuid.UUID]) -> None:
    """Placed 61 s ago (the timeout is 60 s), or due a second ago when republished before."""
    await query(
        url,
        "UPDATE orders SET created_at = now() - interval '61 seconds', "
        "reply_due_at = CASE WHEN reply_retries > 0 THEN now() - interval '1 second' END "
        "WHERE id = ANY(%s)",
        ids,
    )


async def test_an_overdue_order_is_republished_under_the_same_message_id(
    ordering_db: str, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    [late, answered, on_time] = await place(engine, 3)
    await query(ordering_db, "UPDATE outbox SET published_at = now(), attempts = 1")
    await query(ordering_db, "UPDATE orders SET state = 'Confirmed' WHERE id = %s", answered)
    await overdue(ordering_db, [late, answered])
    [(placed_id,)] = await query(
        ordering_db, "SELECT placed_message_id FROM orders WHERE id = %s", late
    )

    with caplog.at_level(logging.WARNING, "app.ordering.reply_timeouts"):
        report = await sweep_overdue_orders(engine, POLICY)

    assert report.republished == [late] and not report.reported and report.retry == {late: 1}
    rows = await query(
        ordering_db,
        "SELECT id, published_at, attempts, payload->>'orderId' FROM outbox "
        "WHERE published_at IS NULL",
    )
    assert rows == [(placed_id, None, 0, str(late))]  # the same row: the same message id
    [(retries, due_in)] = await query(
        ordering_db,
        "SELECT reply_retries, extract(epoch FROM reply_due_at - now()) FROM orders WHERE id = %s",
        late,
    )
    assert retries == 1 and 95 < due_in <= 100  # min(60 s * 2, the cap of 100 s)
    assert [r.order_id for r in caplog.records if hasattr(r, "order_id")] == [str(late)]
    assert on_time not in report.republished


async def test_after_its_retries_an_order_is_reported_not_retried(
    ordering_db: str, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    [spent] = await place(engine, 1)
    await query(ordering_db, "UPDATE outbox SET published_at = now()")
    await query(ordering_db, "UPDATE orders SET reply_retries = 2")
    await overdue(ordering_db, [spent])
    [(due,)] = await query(ordering_db, "SELECT reply_due_at FROM orders")
    assert due is not None

    with caplog.at_level(logging.ERROR, "app.ordering.reply_timeouts"):
        report = await sweep_overdue_orders(engine, POLICY)

    assert report.reported == [spent] and not report.republished
    assert await count_unanswered(engine) == 1
    [(due, since, state)] = await query(
        ordering_db, "SELECT reply_due_at, unanswered_since, state FROM orders"
    )
    assert due is None and since is not None and state == "Placed"
    [(published,)] = await query(
        ordering_db, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
    )
    assert published == 1  # not republished
    assert "no longer retried" in caplog.text
    assert len(await sweep_overdue_orders(engine, POLICY)) == 0  # reported once


async def test_a_gone_row_is_written_again_and_a_pending_one_left_to_the_relay(
    ordering_db: str, engine: AsyncEngine
) -> None:
    gone, pending, legacy = await place(engine, 3)
    await query(
        ordering_db,
        "DELETE FROM outbox WHERE payload->>'orderId' = ANY(%s)",
        [str(gone), str(legacy)],
    )
    # An order from before the migration: no OrderPlaced id recorded, its row deleted.
    await query(ordering_db, "UPDATE orders SET placed_message_id = NULL WHERE id = %s", legacy)
    await overdue(ordering_db, [gone, pending, legacy])
    ids = dict(await query(ordering_db, "SELECT id, placed_message_id FROM orders"))

    report = await sweep_overdue_orders(engine, POLICY)

    assert sorted(report.rebuilt) == sorted([gone, legacy]) and report.waiting == [pending]
    rows = dict(await query(ordering_db, "SELECT payload->>'orderId', id FROM outbox"))
    assert rows[str(gone)] == ids[gone]  # its own message id, written again
    assert rows[str(legacy)] == uuid.uuid5(REBUILT_ORDER_PLACED, str(legacy))
    assert rows[str(pending)] == ids[pending]
    [(payload,)] = await query(
        ordering_db, "SELECT payload::text FROM outbox WHERE id = %s", ids[gone]
    )
    assert '"customerName": "Ann"' in payload and '"quantity": 1' in payload
    retries = {
        order: (count, due is not None)
        for order, count, due in await query(
            ordering_db, "SELECT id, reply_retries, reply_due_at FROM orders"
        )
    }
    # Sent again: a retry spent. Not published yet: nothing sent, no retry spent, looked at
    # again later (a long broker outage must not use up an order's retries).
    assert retries == {gone: (1, True), legacy: (1, True), pending: (0, True)}
    again = await sweep_overdue_orders(engine, POLICY)
    assert len(again) == 0  # not due again yet


async def test_one_sweep_at_a_time_and_orders_being_answered_are_skipped(
    ordering_db: str, engine: AsyncEngine
) -> None:
    import psycopg

    from app.ordering.reply_timeouts import SWEEP_LOCK
    from tests.support import postgres

    locked, free = await place(engine, 2)
    await query(ordering_db, "UPDATE outbox SET published_at = now()")
    await overdue(ordering_db, [locked, free])
    dsn = postgres.sync_dsn(ordering_db)
    async with await psycopg.AsyncConnection.connect(dsn) as other:
        await other.execute("SELECT pg_advisory_xact_lock(%s)", (SWEEP_LOCK,))
        assert len(await asyncio.wait_for(sweep_overdue_orders(engine, POLICY), 5)) == 0
        await other.rollback()
        # A reply being applied holds its order's row: the sweep does not wait for it.
        await other.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (locked,))
        report = await asyncio.wait_for(sweep_overdue_orders(engine, POLICY), 5)
        await other.rollback()

    assert report.republished == [free]


async def test_the_sweep_reads_only_overdue_orders(ordering_db: str, engine: AsyncEngine) -> None:
    from tests.support.plans import compiled, explain, index_scan

    await query(
        ordering_db,
        "INSERT INTO orders (id, customer_name, product_id, quantity, state, created_at, "
        "reply_retries, reply_due_at) SELECT gen_random_uuid(), 'Ann', gen_random_uuid(), 1, "
        "CASE WHEN n % 3 = 0 THEN 'Confirmed' ELSE 'Placed' END, "
        "now() - (CASE WHEN n <= 5 THEN interval '2 minutes' ELSE interval '1 second' END), "
        "CASE WHEN n % 3 = 1 THEN 1 ELSE 0 END, "
        "CASE WHEN n % 3 = 1 THEN now() + (CASE WHEN n <= 5 THEN interval '-1 second' "
        "ELSE interval '1 hour' END) END "
        "FROM generate_series(1, 30000) AS n",
    )
    await query(ordering_db, "ANALYZE orders")
    first, again = overdue_orders(POLICY)

    never = index_scan(
        await explain(ordering_db, compiled(first, engine)), "ix_orders_awaiting_reply"
    )
    retried = index_scan(await explain(ordering_db, compiled(again, engine)), "ix_orders_reply_due")

    # Of n = 1..5: n = 2 and 5 are Placed and never republished, n = 1 and 4 republished
    # and due (n = 3 is Confirmed); the 29,995 others are not overdue and are not read.
    assert "created_at <= (statement_timestamp()" in never["Index Cond"]
    assert never["Actual Rows"] == 2
    assert "reply_due_at <= (statement_timestamp()" in retried["Index Cond"]
    assert retried["Actual Rows"] == 2
