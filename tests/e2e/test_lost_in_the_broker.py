"""Messages the broker lost after it confirmed them (catalog's queues deleted and
declared again, as a restore or a deploy does): the reply timeout brings the orders back
by itself, and ``outbox republish`` does it on an operator's word. Each order is applied
once: the copies keep their message ids."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC

import aio_pika
import httpx
import pytest

from cloudcrm_outbox.names import ConsumerTopology
from tests.conftest import query
from tests.e2e.processes import command_env, command_output, run_command
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place
from tests.support.rabbit import queue_depth

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def published(deployment: Deployment) -> int:
    [(count,)] = await query(
        deployment.ordering_db,
        "SELECT count(*) FROM outbox WHERE event_type = 'OrderPlaced' AND published_at IS NOT NULL",
    )
    return int(count)


CATALOG_QUEUES = ConsumerTopology.for_service("catalog").queues


async def lose_the_queue(deployment: Deployment, holding: int) -> None:
    """Delete catalog's queues (catalog.events and its partition queues, where the keyed
    OrderPlaced travel) with the ``holding`` messages they hold, and declare them again."""
    depths = [await queue_depth(deployment.broker, name) for name in CATALOG_QUEUES]
    assert sum(depths) == holding
    connection = await aio_pika.connect(deployment.broker)
    async with connection:
        channel = await connection.channel()
        for name in CATALOG_QUEUES:
            await channel.queue_delete(name)
    run_command("broker", "declare", env=command_env(BROKER_URL=deployment.broker))


async def states(deployment: Deployment, orders: list[str]) -> set[str]:
    rows = await query(
        deployment.ordering_db,
        "SELECT DISTINCT state FROM orders WHERE id = ANY(%s)",
        [uuid.UUID(order) for order in orders],
    )
    return {row[0] for row in rows}


async def applied_once(deployment: Deployment, orders: list[str], stock: int, product: str) -> None:
    """Stock taken once per order; one inbox row per OrderPlaced message id, and that id
    the one the order was placed with."""
    [(left,)] = await query(
        deployment.catalog_db, "SELECT stock_count FROM products WHERE id = %s", uuid.UUID(product)
    )
    assert left == stock - len(orders)
    placed_ids = await query(
        deployment.ordering_db,
        "SELECT placed_message_id FROM orders WHERE id = ANY(%s)",
        [uuid.UUID(order) for order in orders],
    )
    inbox = await query(
        deployment.catalog_db,
        "SELECT message_id, outcome FROM inbox WHERE message_id = ANY(%s)",
        [row[0] for row in placed_ids],
    )
    assert sorted(outcome for _, outcome in inbox) == ["applied"] * len(orders)
    [(reserved,)] = await query(
        deployment.catalog_db, "SELECT count(*) FROM stock_reservations WHERE state = 'reserved'"
    )
    assert reserved == len(orders)


async def test_the_reply_timeout_brings_back_orders_whose_order_placed_was_lost(
    deployment: Deployment,
) -> None:
    # Long enough for the 20 orders to be placed and published before any is overdue (the
    # queue must hold exactly the first copies when it is lost), short for the test.
    timeouts = {"ORDER_REPLY_TIMEOUT_SECONDS": "8", "ORDER_REPLY_BACKOFF_MAX_SECONDS": "4"}
    # Everything but catalog's consumer: OrderPlaced is published, confirmed, then lost.
    await deployment.start(relays=1, consumers=0, replies=True, **timeouts)
    await deployment.add_consumer("ordering", **timeouts)
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        product = await deployment.new_product(client, stock=100)
        orders = [await place(client, deployment, product) for _ in range(20)]
        await wait_until(lambda: _equals(published(deployment), 20), timeout=20)
        await lose_the_queue(deployment, holding=20)

        await deployment.add_consumer("catalog", **timeouts)
        await wait_until(lambda: _equals(states(deployment, orders), {"Confirmed"}), timeout=60)

    await applied_once(deployment, orders, stock=100, product=product)
    relay = next(r for r in deployment.relays if r.args[1] == "ordering")
    assert "order unanswered after the reply timeout" in relay.log()


async def test_outbox_republish_brings_back_what_the_broker_lost(deployment: Deployment) -> None:
    await deployment.start(relays=1, consumers=1, replies=True)
    env = command_env(ORDERING_DATABASE_URL=deployment.ordering_db)
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        product = await deployment.new_product(client, stock=100)
        before = [await place(client, deployment, product) for _ in range(5)]
        await wait_until(lambda: _equals(states(deployment, before), {"Confirmed"}), timeout=30)
        catalog = next(c for c in deployment.consumers if c.args[1] == "catalog")
        catalog.stop()
        deployment.consumers.remove(catalog)
        [(since,)] = await query(deployment.ordering_db, "SELECT now()")
        lost = [await place(client, deployment, product) for _ in range(10)]
        await wait_until(lambda: _equals(published(deployment), 15), timeout=20)
        await lose_the_queue(deployment, holding=10)
        stamp = since.astimezone(UTC).isoformat()

        dry = command_output(
            "outbox", "republish", "ordering", "--since", stamp, "--dry-run", env=env
        )
        assert "would put 10 published row(s) of ordering back to pending" in dry
        assert await published(deployment) == 15  # the dry run changed nothing
        none = command_output(
            "outbox", "republish", "ordering", "--since", stamp, "--event-type", "OrderCancelled",
            env=env,
        )  # fmt: skip
        assert "put 0 published row(s)" in none
        done = command_output("outbox", "republish", "ordering", "--since", stamp, env=env)
        assert "put 10 published row(s) of ordering back to pending" in done

        await wait_until(lambda: _equals(published(deployment), 15), timeout=20)
        depths = [await queue_depth(deployment.broker, name) for name in CATALOG_QUEUES]
        assert sum(depths) == 10
        await deployment.add_consumer("catalog")
        await wait_until(lambda: _equals(states(deployment, lost), {"Confirmed"}), timeout=30)

    await applied_once(deployment, before + lost, stock=100, product=product)


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected
