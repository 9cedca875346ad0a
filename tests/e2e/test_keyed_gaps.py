"""A key's gap as an operator meets it, with the processes a user runs: the broker lost
an order's OrderPlaced after confirming it; its OrderCancelled waits parked in catalog's
inbox; the gap is reported (log line, `outbox status`); the producer's
`outbox republish --key` heals it, and the inbox makes the copies harmless."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import httpx
import pytest

from cloudcrm_outbox.names import ConsumerTopology
from tests.conftest import query
from tests.e2e.processes import command_output
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def published(database_url: str, event_type: str) -> bool:
    rows = await query(
        database_url,
        "SELECT count(*) FROM outbox WHERE event_type = %s AND published_at IS NOT NULL",
        event_type,
    )
    return bool(rows[0][0] == 1)


async def lose_everything_queued(broker_url: str) -> int:
    """What a broker that loses confirmed messages does: catalog's queues emptied."""
    lost = 0
    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel()
        for name in ConsumerTopology.for_service("catalog").queues:
            queue = await channel.declare_queue(name, passive=True)
            lost += (await queue.purge()).message_count
    return lost


async def test_a_gap_is_reported_and_republish_by_key_heals_it(deployment: Deployment) -> None:
    await deployment.start(relays=1, consumers=0)
    async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
        product = await deployment.new_product(client, 10)
        order = await place(client, deployment, product)
        await wait_until(lambda: published(deployment.ordering_db, "OrderPlaced"))
        assert await lose_everything_queued(deployment.broker) == 1
        cancel = await client.post(f"{deployment.ordering_url}/api/ordering/order/{order}/cancel")
        assert cancel.status_code == 200
        await wait_until(lambda: published(deployment.ordering_db, "OrderCancelled"))

        consumer = await deployment.add_consumer("catalog", INBOX_GAP_ALERT_SECONDS="1")
        await consumer.wait_for_log("keys wait for a message that has not come", timeout=30)
        assert order in consumer.log()
        env = deployment.env(INBOX_GAP_ALERT_SECONDS="1")
        status = json.loads(command_output("outbox", "status", "catalog", "--json", env=env))
        assert status["catalog"]["key_gaps"] == 1 and status["catalog"]["parked"] == 1

        said = command_output("outbox", "republish", "ordering", "--key", order, env=env)
        assert said.startswith("put 2 published row(s) of ordering back to pending"), said

        async def healed() -> bool:
            [(parked,)] = await query(deployment.catalog_db, "SELECT count(*) FROM inbox_parked")
            [(applied,)] = await query(deployment.catalog_db, "SELECT count(*) FROM inbox")
            return bool(parked == 0 and applied == 2)

        await wait_until(healed, timeout=30)
        await asyncio.sleep(1)  # the republished cancel arrives too: a duplicate, skipped
        response = await client.get(f"{deployment.catalog_url}/api/catalog/products/{product}")
        assert response.json()["stockCount"] == 10
    status = json.loads(command_output("outbox", "status", "catalog", "--json", env=env))
    assert (status["catalog"]["key_gaps"], status["catalog"]["parked"]) == (0, 0)
    outcomes = await query(deployment.catalog_db, "SELECT outcome, count(*) FROM inbox GROUP BY 1")
    assert dict(outcomes) == {"applied": 2}
