"""One product's row locked for long must not stall the orders for every other product,
on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.conftest import count, query
from tests.support import postgres
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import order_placed, publish, running_consumer, valid_props, wait_until
from tests.support.rabbit import queue_depth

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def _applied(database_url: str, messages: list[dict[str, Any]]) -> int:
    ids = [uuid.UUID(props["message_id"]) for props in messages]
    [(applied,)] = await query(
        database_url, "SELECT count(*) FROM inbox WHERE message_id = ANY(%s)", ids
    )
    return int(applied)


async def test_orders_for_other_products_flow_while_one_product_stays_locked(
    catalog_db: str, broker: str
) -> None:
    """ABP #20020 and #11210: one blocked handler blocks the whole inbox.

    Product A's row is held locked by another session (an admin's transaction left open)
    while 20 orders for A are in flight; 5 later orders for B must be applied within 15 s
    while A is still locked (one lock timeout per blocked message, in turn, made it 43.9 s),
    and A's orders once the lock goes: none lost, none applied twice."""
    locked, free = await new_product(catalog_db, 100), await new_product(catalog_db, 100)
    for_locked = [valid_props() for _ in range(20)]
    for_free = [valid_props() for _ in range(5)]
    # The production lock timeout (CONSUMER_LOCK_TIMEOUT_SECONDS); a short backoff cap
    # only so that A's parked orders come back soon after the lock goes.
    async with running_consumer(
        catalog_db, broker, lock_timeout=2.0, database_reconnect_max_seconds=2.0
    ):
        async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(catalog_db)) as admin:
            await admin.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", (locked,))
            await publish(broker, [(order_placed(locked, 1), props) for props in for_locked])
            await publish(broker, [(order_placed(free, 1), props) for props in for_free])

            async def all_of_b() -> bool:
                return await _applied(catalog_db, for_free) == len(for_free)

            await wait_until(all_of_b, timeout=15)
            assert await stock_of(catalog_db, free) == 95
            # A is still locked: none of its orders got through (nor was lost).
            assert await _applied(catalog_db, for_locked) == 0
            await admin.rollback()

        async def all_of_a() -> bool:
            return await _applied(catalog_db, for_locked) == len(for_locked)

        await wait_until(all_of_a, timeout=30)
    assert await stock_of(catalog_db, locked) == 80
    assert await stock_of(catalog_db, free) == 95
    # Once each: one inbox row, one reservation and one reply per order.
    assert await count(catalog_db, "inbox") == 25
    assert await count(catalog_db, "stock_reservations") == 25
    assert await count(catalog_db, "outbox") == 25
    assert await queue_depth(broker, "catalog.events") == 0
    assert await queue_depth(broker, "catalog.events.dlq") == 0
