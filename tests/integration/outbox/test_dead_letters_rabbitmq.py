"""Dead letters on RabbitMQ under an operator's concurrent commands: nothing is lost.

(A dead letter without a message id cannot be made here: aiormq gives every message it
publishes one. The embedded broker's test covers the rule, tests/unit/outbox.)"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import aiormq
import pytest

from app.outbox import DeadLetterSelection, QueueBindings, RabbitMQBroker
from app.outbox.amqp_consumer import DeadLetterNotRoutedError
from tests.support.rabbit import queue_depth, read_queue

pytestmark = pytest.mark.rabbitmq

STORE = QueueBindings.of("store", ["ItemStored"])


async def dead_letter(url: str, count: int) -> list[str]:
    """``count`` messages put in store's dead-letter queue (through its DLX)."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        underlay = await channel.get_underlay_channel()
        for message_id in ids:
            properties = aiormq.spec.Basic.Properties(
                message_id=message_id, message_type="ItemStored",
                headers={"x-poison-reason": "invalid ItemStored"}, delivery_mode=2,
            )  # fmt: skip
            await underlay.basic_publish(
                b"{}", exchange=STORE.topology.dead_letter_exchange,
                routing_key=STORE.topology.queue, properties=properties,
            )  # fmt: skip
    return ids


async def test_replays_and_listings_at_once_lose_nothing(broker: str) -> None:
    rabbit = RabbitMQBroker(broker, connect_timeout=10)
    await rabbit.declare([STORE])
    ids = await dead_letter(broker, 300)

    async def replay_until_empty() -> int:
        replayed = 0
        while True:
            result = await rabbit.replay_dead_letters("store", DeadLetterSelection())
            replayed += len(result.replayed)
            if not result.replayed and not await queue_depth(
                broker, STORE.topology.dead_letter_queue
            ):
                return replayed

    async def keep_listing() -> None:
        for _ in range(5):
            await rabbit.dead_letters("store")

    replayed, _ = await asyncio.gather(replay_until_empty(), keep_listing())
    received = await read_queue(broker, STORE.topology.queue, expected=300)
    assert {message.message_id for message in received} == set(ids)  # each, none lost
    assert replayed >= 300  # a duplicate only when RabbitMQ ignored an ack (#10327)
    assert await rabbit.dead_letters("store") == []


async def test_a_poison_message_stays_queued_when_its_dead_letter_is_returned(
    broker: str,
) -> None:
    # S.events.dlq deleted under a running consumer: the copy is returned (312 NO_ROUTE),
    # so acking the original would lose the message.
    rabbit = RabbitMQBroker(broker, connect_timeout=10)
    await rabbit.declare([STORE])
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel(publisher_confirms=True)
        message_id = str(uuid.uuid4())
        await channel.default_exchange.publish(
            aio_pika.Message(b"not json", message_id=message_id, type="ItemStored"),
            routing_key=STORE.topology.queue,
        )
        async with rabbit.consumer_connections(STORE, prefetch=10)() as consumer:
            delivery = await asyncio.wait_for(consumer.inbound.get(), timeout=10)
            await channel.queue_delete(STORE.topology.dead_letter_queue)
            with pytest.raises(
                DeadLetterNotRoutedError,
                match=r"no queue is bound to store\.events\.dlx \(NO_ROUTE\)",
            ):
                await consumer.dead_letter(delivery, "invalid ItemStored")
    assert await queue_depth(broker, STORE.topology.queue) == 1  # back in its queue
    await rabbit.declare([STORE])  # what the consumer's next connection does
    async with rabbit.consumer_connections(STORE, prefetch=10)() as consumer:
        delivery = await asyncio.wait_for(consumer.inbound.get(), timeout=10)
        await consumer.dead_letter(delivery, "invalid ItemStored")
    assert [letter.message_id for letter in await rabbit.dead_letters("store")] == [message_id]
    assert await queue_depth(broker, STORE.topology.queue) == 0
