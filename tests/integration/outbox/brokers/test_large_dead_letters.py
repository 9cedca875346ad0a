"""Poison messages of any size RabbitMQ accepts end in the dead-letter queue, whole, with
their reason (librdkafka #488, Apache Pulsar #6961: a dead-lettered message too large for
the dead-letter path was acknowledged and lost).

The consumer's dead-letter copy is a new publish: its content header carries the message's
own headers plus the consumer's (reason, queue, first death, publisher), and RabbitMQ
requires a content header to fit in one frame (AMQP 0-9-1 §4.2.6.1), while the body is
split over as many frames as it needs.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from app.messaging.registry import all_bindings
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import order_placed, running_consumer, wait_until
from tests.support.rabbit import operator_policy, queue_depth

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


async def _publish(broker: str, body: bytes, message_id: str, **properties: object) -> None:
    """Straight to catalog.events (the default exchange), confirmed."""
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                type="OrderPlaced",
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                **properties,  # type: ignore[arg-type]
            ),
            "catalog.events",
        )


async def _only_dead_letter(broker: str) -> tuple[str | None, int, str, dict[str, object]]:
    rabbit = RabbitMQBroker(broker)
    try:
        [letter] = await rabbit.dead_letters("catalog")
    finally:
        await rabbit.close()
    return letter.message_id, len(letter.body), letter.reason, dict(letter.headers)


async def test_a_10_mb_poison_message_is_dead_lettered_whole(broker: str, catalog_db: str) -> None:
    await declare_at(broker, all_bindings(), within=30)
    product = await new_product(catalog_db, stock=10)
    poison = order_placed(product, customerName="A" * 10_000_000)  # 10,000,139 bytes
    poison_id = str(uuid.uuid4())
    async with running_consumer(catalog_db, broker):
        await _publish(broker, poison, poison_id)
        await _publish(broker, order_placed(product, quantity=2), str(uuid.uuid4()))

        async def stock_taken_and_dead_lettered() -> bool:
            dead = await queue_depth(broker, "catalog.events.dlq")
            return await stock_of(catalog_db, product) == 8 and dead == 1

        await wait_until(stock_taken_and_dead_lettered, timeout=30)
        await asyncio.sleep(3)  # still there 3 s later
        assert await queue_depth(broker, "catalog.events.dlq") == 1
    message_id, size, reason, _ = await _only_dead_letter(broker)
    assert (message_id, size) == (poison_id, len(poison))
    assert reason == f"body of {len(poison)} bytes is over the 65536-byte limit"
    assert await queue_depth(broker, "catalog.events") == 0


async def test_a_poison_message_leaving_no_room_for_the_reason_is_dead_lettered(
    broker: str, catalog_db: str
) -> None:
    """Its headers fill all but ~250 bytes of a frame: the dead letter's own headers did
    not fit, RabbitMQ closed the consumer's connection (501 FRAME_ERROR, frame_too_large)
    at every delivery, and the message never reached the dead-letter queue while every
    message prefetched with it spent a delivery at each reconnect."""
    await declare_at(broker, all_bindings(), within=30)
    product = await new_product(catalog_db, stock=10)
    poison_id = str(uuid.uuid4())
    headers = {"small": "kept", "pad": "x" * 130_800}  # the original fits in a frame
    async with running_consumer(catalog_db, broker, delivery_limit=3):
        await _publish(broker, b"not json", poison_id, headers=headers)
        for _ in range(3):
            await _publish(broker, order_placed(product), str(uuid.uuid4()))

        async def dead_lettered() -> int:
            return await queue_depth(broker, "catalog.events.dlq")

        await wait_until(dead_lettered, timeout=20)
        await wait_until(lambda: _stock_is(catalog_db, product, 7), timeout=20)
    message_id, size, reason, kept = await _only_dead_letter(broker)
    assert (message_id, size) == (poison_id, len(b"not json"))
    assert reason.startswith("invalid OrderPlaced"), reason
    # The dropped header is named, the others kept: the operator sees what was cut.
    assert "pad" not in kept and kept["small"] == "kept"
    assert kept["x-poison-dropped-headers"] == "pad"
    assert await queue_depth(broker, "catalog.events") == 0


async def _stock_is(catalog_db: str, product: uuid.UUID, stock: int) -> bool:
    return await stock_of(catalog_db, product) == stock


async def test_a_10_mb_dead_letter_over_a_length_limit_stays_where_it_was(
    broker: str, catalog_db: str
) -> None:
    """An operator's policy caps the dead-letter queues at 5 MB (RabbitMQ's default overflow
    drops from the head): RabbitMQ confirmed each 10 MB dead letter, then dropped it, and
    the consumer acked the original: both 10 MB messages vanished from both queues. Over
    its limit the dead-letter queue must refuse a dead letter, so the message stays in
    catalog.events; the first, taken while the queue was under its limit, stays there."""
    await operator_policy(broker, "cap", r"\.dlq$", '{"max-length-bytes": 5000000}')
    await declare_at(broker, all_bindings(), within=30)
    product = await new_product(catalog_db, stock=10)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    async with running_consumer(catalog_db, broker):
        for poison_id in (first, second):
            await _publish(broker, order_placed(product, customerName="A" * 10_000_000), poison_id)
        await _publish(broker, order_placed(product, quantity=2), str(uuid.uuid4()))

        async def the_next_message_applied() -> bool:
            return await stock_of(catalog_db, product) == 8

        # Messages are handled in delivery order: both 10 MB ones have been tried.
        await wait_until(the_next_message_applied, timeout=30)
    rabbit = RabbitMQBroker(broker)
    letters = await rabbit.dead_letters("catalog")
    assert [(letter.message_id, len(letter.body)) for letter in letters] == [(first, 10_000_139)]
    assert await queue_depth(broker, "catalog.events") == 1  # the second, back on close
