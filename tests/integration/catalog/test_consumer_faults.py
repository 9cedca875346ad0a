"""Faults that are not the message's, and messages that fail: held, spaced, never lost,
on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import psycopg
import pytest

from tests.conftest import query
from tests.support import postgres
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import (
    order_placed,
    publish,
    running_consumer,
    valid_props,
    wait_until,
)
from tests.support.logs import plain_message
from tests.support.rabbit import queue_depth, read_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

DLQ = "catalog.events.dlq"


async def _applied(database_url: str, message_id: str) -> bool:
    rows = await query(database_url, "SELECT 1 FROM inbox WHERE message_id = %s", message_id)
    return bool(rows)


async def test_one_locked_product_does_not_stall_orders_for_others(
    catalog_db: str, broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    locked, free = await new_product(catalog_db, 10), await new_product(catalog_db, 10)
    stuck, unrelated = valid_props(), valid_props()
    async with running_consumer(catalog_db, broker, lock_timeout=1.0):
        # An admin session left open with the product row locked.
        async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(catalog_db)) as admin:
            await admin.execute("SELECT * FROM products WHERE id = %s FOR UPDATE", (locked,))
            await publish(broker, [(order_placed(locked, 1), stuck)])
            await asyncio.sleep(0.3)  # the first order is waiting on the lock
            sent = time.monotonic()
            await publish(broker, [(order_placed(free, 2), unrelated)])
            await wait_until(lambda: _applied(catalog_db, unrelated["message_id"]), timeout=10)
            waited = time.monotonic() - sent
            # At most one lock timeout (1 s) behind the blocked message, not the 8 s
            # the lock is held.
            assert waited < 2.5, waited
            assert await stock_of(catalog_db, free) == 8
            await asyncio.sleep(3)  # the lock is held on: the stuck order keeps waiting
            assert not await _applied(catalog_db, stuck["message_id"])
            await admin.rollback()
        await wait_until(lambda: _applied(catalog_db, stuck["message_id"]), timeout=30)
    assert await stock_of(catalog_db, locked) == 9
    assert await queue_depth(broker, DLQ) == 0
    parked = [r for r in caplog.records if "parked for a retry" in r.getMessage()]
    assert parked and getattr(parked[0], "message_id", None) == stuck["message_id"]


async def test_a_database_not_migrated_under_a_running_consumer_spends_no_delivery(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 10)
    await query(catalog_db, "ALTER TABLE stock_reservations RENAME TO gone")  # a bad deploy
    message = valid_props()
    async with running_consumer(catalog_db, broker, delivery_limit=2):
        await publish(broker, [(order_placed(product, 1), message)])
        await asyncio.sleep(4)  # several retries' worth: with delivery_limit=2, a
        # requeue per retry would have dead-lettered it by now
        assert await queue_depth(broker, DLQ) == 0
        assert await stock_of(catalog_db, product) == 10
        await query(catalog_db, "ALTER TABLE gone RENAME TO stock_reservations")  # fixed
        await wait_until(lambda: _applied(catalog_db, message["message_id"]), timeout=40)
    assert await stock_of(catalog_db, product) == 9
    assert await queue_depth(broker, DLQ) == 0


async def test_a_failing_message_is_redelivered_at_spaced_intervals_then_dead_lettered(
    catalog_db: str, broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    cursed = await new_product(catalog_db, 100)
    await query(
        catalog_db,
        f"""
        CREATE FUNCTION fail_cursed() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'cursed product'; END $$;
        CREATE TRIGGER cursed BEFORE UPDATE ON products FOR EACH ROW
            WHEN (OLD.id = '{cursed}') EXECUTE FUNCTION fail_cursed();
        """,
    )
    doomed = valid_props()
    caplog.set_level(logging.INFO)
    async with running_consumer(catalog_db, broker, delivery_limit=4):
        sent = time.monotonic()
        await publish(broker, [(order_placed(cursed, 1), doomed)])
        [dead] = await read_queue(broker, DLQ, expected=1, timeout=30)
        took = time.monotonic() - sent
    assert dead.message_id == doomed["message_id"]
    reason = dead.headers["x-poison-reason"]
    # The limit, and what failed it (the handler's own error, kept from its deliveries).
    assert reason.startswith("delivery limit: failed 4 times (limit 4); last error: "), reason
    assert "cursed product" in reason, reason
    # Requeued after 0.05-0.1, 0.1-0.2 and 0.2-0.4 s: never a hot loop; its fourth
    # failure, the last it is allowed, dead-letters it at once (no pause for nothing).
    assert took >= 0.35, took
    failures = [
        r for r in caplog.records if plain_message(r) == "message failed; requeued after a pause"
    ]
    assert [getattr(r, "deliveries", None) for r in failures] == [1, 2, 3]
    lettered = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert [getattr(r, "message_id", None) for r in lettered] == [doomed["message_id"]]
    assert await stock_of(catalog_db, cursed) == 100


async def test_a_message_parked_while_others_fail_is_not_acked_by_a_later_batch(
    catalog_db: str, broker: str
) -> None:
    # A later batch's single ack with "multiple" would settle every earlier delivery,
    # the parked one too: it would be lost. It must be acked one by one instead.
    locked, free = await new_product(catalog_db, 10), await new_product(catalog_db, 100)
    stuck = valid_props()
    async with running_consumer(catalog_db, broker, lock_timeout=0.5):
        async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(catalog_db)) as admin:
            await admin.execute("SELECT * FROM products WHERE id = %s FOR UPDATE", (locked,))
            await publish(broker, [(order_placed(locked, 1), stuck)])
            others = [valid_props() for _ in range(20)]
            await publish(broker, [(order_placed(free, 1), props) for props in others])
            await wait_until(lambda: _stock_is(catalog_db, free, 80), timeout=20)
            await admin.rollback()
        await wait_until(lambda: _applied(catalog_db, stuck["message_id"]), timeout=30)
    assert await stock_of(catalog_db, locked) == 9
    assert await queue_depth(broker, "catalog.events") == 0


async def _stock_is(database_url: str, product: uuid.UUID, expected: int) -> bool:
    return await stock_of(database_url, product) == expected


async def test_a_forged_delivery_count_on_a_first_delivery_is_not_believed(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 10)
    forged = {**valid_props(), "headers": {"x-delivery-count": 1000}}
    async with running_consumer(catalog_db, broker, delivery_limit=3):
        await publish(broker, [(order_placed(product, 1), forged)])
        await wait_until(lambda: _applied(catalog_db, forged["message_id"]), timeout=15)
    assert await stock_of(catalog_db, product) == 9
    assert await queue_depth(broker, DLQ) == 0
