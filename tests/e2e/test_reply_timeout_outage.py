"""A consumer outage longer than the reply timeout does not multiply the queue (Spring
Modulith #1148 and #321: a large backlog of incomplete publications republished, with
duplicates; outboxkit #41).

The processes as a user starts them, on PostgreSQL and RabbitMQ: catalog's consumer down
for 12 s (four reply timeouts) while 100 orders wait and ``ORDER_REPLY_TIMEOUT_SECONDS=3``.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.conftest import query
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place
from tests.support.rabbit import queue_depth

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

ORDERS = 100
OUTAGE_SECONDS = 12


async def test_an_outage_longer_than_the_reply_timeout_keeps_one_copy_per_order(
    deployment: Deployment,
) -> None:
    await deployment.start(replies=True, ORDER_REPLY_TIMEOUT_SECONDS="3")
    [catalog_consumer] = [c for c in deployment.consumers if c.args[1] == "catalog"]
    async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
        product = await deployment.new_product(client, stock=1000)
        catalog_consumer.stop()  # down (kill -9) before the orders come
        await catalog_consumer.wait_exit(timeout=15)
        deployment.consumers.remove(catalog_consumer)
        orders = await asyncio.gather(*(place(client, deployment, product) for _ in range(ORDERS)))
        await asyncio.sleep(OUTAGE_SECONDS)
        # Every sweep in the outage found the order's copy still queued with nobody to
        # take it: no resend (it was 400 messages for 100 orders: a copy per sweep due).
        queued = await queue_depth(deployment.broker, "catalog.events")
        assert queued <= ORDERS * 1.5, f"{queued} messages for {ORDERS} orders"

        await deployment.add_consumer("catalog")  # back

        async def all_confirmed() -> bool:
            [(confirmed,)] = await query(
                deployment.ordering_db,
                "SELECT count(*) FROM orders WHERE state = 'Confirmed' AND id = ANY(%s)",
                [uuid.UUID(order) for order in orders],
            )
            return int(confirmed) == ORDERS

        await wait_until(all_confirmed, timeout=60)
    [(stock,)] = await query(
        deployment.catalog_db, "SELECT stock_count FROM products WHERE id = %s", product
    )
    assert stock == 1000 - ORDERS  # each order's stock taken once
    [(reserved,)] = await query(deployment.catalog_db, "SELECT count(*) FROM stock_reservations")
    assert reserved == ORDERS
