"""System-level faults, each judged by the history checker (tests/reliability/history.py).

`make test` runs them at TEST_RELIABILITY_ORDERS=600; `make soak` at 3,000.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from app.db import make_engine, make_sessionmaker
from app.ordering import service
from tests.conftest import query
from tests.reliability.conftest import run_load
from tests.support.consuming import publish
from tests.support.deployment import Deployment

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_relay_and_consumer_killed_nine_five_times_each(deployment: Deployment) -> None:
    await deployment.start()
    rng = random.Random(5)

    async def chaos() -> None:
        for _ in range(5):
            await asyncio.sleep(rng.uniform(0.1, 0.6))
            await deployment.kill_and_restart(deployment.relays[0])
            await asyncio.sleep(rng.uniform(0.1, 0.6))
            await deployment.kill_and_restart(deployment.consumers[0])

    verdict = await run_load(deployment, during=chaos)

    assert verdict.clean, verdict
    assert verdict.attempts["ok"] >= 1 and verdict.orders >= verdict.attempts["ok"]


async def test_three_relays_two_consumers_and_duplicates_injected(deployment: Deployment) -> None:
    await deployment.start(relays=3, consumers=2)
    rng = random.Random(9)

    async def duplicates() -> None:
        """Publish copies of already published events, same message_id, at random times."""
        for _ in range(10):
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            rows = await query(
                deployment.ordering_db,
                "SELECT id, payload::text FROM outbox WHERE published_at IS NOT NULL "
                "ORDER BY random() LIMIT 20",
            )
            copies = [
                (
                    body.encode(),
                    {
                        "message_id": str(message_id),
                        "type": "OrderPlaced",
                        "content_type": "application/json",
                    },
                )
                for message_id, body in rows
            ]
            if copies:
                await publish(deployment.broker, copies * 2, routing_key=lambda _: "OrderPlaced")

    verdict = await run_load(deployment, during=duplicates)

    assert verdict.clean, verdict


async def test_an_early_transaction_committing_late_is_still_delivered(
    deployment: Deployment,
) -> None:
    await deployment.start(relays=2)
    early_order: list[uuid.UUID] = []
    early_product = uuid.uuid4()  # its own product, outside the checker's books
    await query(
        deployment.catalog_db,
        "INSERT INTO products (id, name, price, stock_count) VALUES (%s, 'early', 1, 10)",
        early_product,
    )

    async def hold_early_transaction() -> None:
        engine = make_engine(deployment.ordering_db)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                order = await service.place_order(
                    session, customer_name="early", product_id=early_product, quantity=1
                )
                early_order.append(order.id)
                await asyncio.sleep(5)  # later transactions commit and are relayed meanwhile
        finally:
            await engine.dispose()

    verdict = await run_load(deployment, during=hold_early_transaction)

    assert verdict.clean, verdict
    [(message_id,)] = await query(
        deployment.ordering_db,
        "SELECT id FROM outbox WHERE payload->>'orderId' = %s",
        str(early_order[0]),
    )
    [(outcome,)] = await query(
        deployment.catalog_db, "SELECT outcome FROM inbox WHERE message_id = %s", message_id
    )
    assert outcome == "applied"
    [(stock,)] = await query(
        deployment.catalog_db, "SELECT stock_count FROM products WHERE id = %s", early_product
    )
    assert stock == 9
