"""System-level faults, each judged by the history checker (tests/reliability/history.py).

`make test` runs them at 400 orders (TEST_RELIABILITY_ORDERS); `make soak` at 3,000.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from app.ordering import service
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
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

    verdict = await run_load(
        deployment,
        scenario="relay and consumer killed -9",
        faults="kill -9: relay x5, consumer x5, random moments",
        during=chaos,
    )

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

    verdict = await run_load(
        deployment,
        scenario="3 relays, 2 consumers, duplicates injected",
        faults="up to 400 copies of published events (same message_id), random delays",
        during=duplicates,
    )

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

    verdict = await run_load(
        deployment,
        scenario="early outbox row committed late",
        faults="one transaction held open 5 s while later ones commit",
        during=hold_early_transaction,
    )

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


async def test_rabbitmq_black_holed_under_steady_load(deployment: Deployment) -> None:
    from tests.support.config import SERVERS

    await deployment.with_proxies()
    await deployment.start(RELAY_PUBLISH_TIMEOUT_SECONDS="2")
    assert deployment.rabbitmq_proxy is not None
    hole = 30.0 if SERVERS.reliability_orders >= 3000 else 5.0
    latencies: list[float] = []

    async def black_hole() -> None:
        await asyncio.sleep(1)
        deployment.rabbitmq_proxy.block()  # type: ignore[union-attr]
        await asyncio.sleep(hole)
        deployment.rabbitmq_proxy.unblock()  # type: ignore[union-attr]
        deployment.rabbitmq_proxy.cut()  # type: ignore[union-attr]  # stale streams reset

    orders = int((hole + 3) * 50)
    verdict = await run_load(
        deployment,
        scenario="RabbitMQ black-holed at 50 orders/s",
        faults=f"relay and consumer AMQP connections black-holed {hole:.0f} s",
        orders=orders,
        rate=50,
        during=black_hole,
        latencies=latencies,
    )

    assert verdict.clean, verdict
    assert verdict.attempts["ok"] == orders + 1  # every POST answered 201, sentinel included
    # POSTs never wait for the broker: most answer at once, and hardly any took as long as
    # the black hole lasted (bounds a loaded machine keeps; the figures are the bench's).
    latencies.sort()
    assert latencies[len(latencies) // 2] < 1.0, latencies[len(latencies) // 2]
    assert latencies[int(len(latencies) * 0.99)] < hole, latencies[-10:]


async def test_postgresql_connections_reset_for_relay_and_consumer(
    deployment: Deployment,
) -> None:
    await deployment.with_proxies()
    await deployment.start()
    assert deployment.postgres_proxy is not None

    async def resets() -> None:
        for _ in range(8):
            await asyncio.sleep(0.3)
            deployment.postgres_proxy.cut()  # type: ignore[union-attr]

    verdict = await run_load(
        deployment,
        scenario="PostgreSQL connections reset",
        faults="relay and consumer DB connections reset 8 times",
        during=resets,
    )

    assert verdict.clean, verdict


async def test_poison_mixed_into_real_traffic(deployment: Deployment) -> None:
    from tests.integration.catalog.test_consumer import poison_cases
    from tests.support.rabbit import read_queue

    await deployment.start()
    cases = poison_cases(uuid.uuid4())
    cases.append(("string for a number", b'{"orderId": 5}', cases[0][2], "orderId"))

    async def poison() -> None:
        for name, body, props, _ in cases:
            await asyncio.sleep(0.05)
            await publish(
                deployment.broker,
                [(body, {**props, "headers": {**props.get("headers", {}), "test-case": name}})],
                routing_key=lambda _: "OrderPlaced",
            )

    verdict = await run_load(
        deployment,
        scenario="poison mixed into traffic",
        faults=f"{len(cases)} poison messages of every kind",
        during=poison,
    )

    assert verdict.clean, verdict
    dead = await read_queue(deployment.broker, "catalog.events.dlq", expected=len(cases))
    reasons = {str(m.headers["test-case"]): str(m.headers["x-poison-reason"]) for m in dead}
    assert set(reasons) == {name for name, *_ in cases}
    for name, _, _, words in cases:
        assert words in reasons[name], (name, reasons[name])
