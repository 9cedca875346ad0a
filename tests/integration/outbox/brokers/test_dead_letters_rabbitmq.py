"""Dead letters on RabbitMQ under an operator's concurrent commands: nothing is lost.

(A dead letter without a message id cannot be made here: aiormq gives every message it
publishes one. The embedded broker's test covers the rule, tests/unit/outbox.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq
import pytest

from cloudcrm_outbox import DeadLetterSelection, QueueBindings, RabbitMQBroker
from cloudcrm_outbox.brokers.connection import DeadLetterRefusedError
from cloudcrm_outbox.inbox.consumer import InboxConsumer
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.subscriptions import Subscription, by_event_name
from tests.contract.conftest import ItemStored
from tests.support.consuming import wait_until
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
                DeadLetterRefusedError,
                match=r"returned: no queue is bound to store\.events\.dlx \(NO_ROUTE\)",
            ):
                await consumer.dead_letter(delivery, "invalid ItemStored")
    assert await queue_depth(broker, STORE.topology.queue) == 1  # back in its queue
    await rabbit.declare([STORE])  # what the consumer's next connection does
    async with rabbit.consumer_connections(STORE, prefetch=10)() as consumer:
        delivery = await asyncio.wait_for(consumer.inbound.get(), timeout=10)
        await consumer.dead_letter(delivery, "invalid ItemStored")
    assert [letter.message_id for letter in await rabbit.dead_letters("store")] == [message_id]
    assert await queue_depth(broker, STORE.topology.queue) == 0


class Applying:
    """Applies every message (no database): the outcomes the inbox would give."""

    def __init__(self) -> None:
        self.applied: list[uuid.UUID] = []

    async def process(
        self, messages: Sequence[Decoded], *, lock_timeout: float | None = None
    ) -> dict[uuid.UUID, str]:
        self.applied += [message.message_id for message in messages]
        return {message.message_id: "applied" for message in messages}


async def test_a_refused_dead_letter_holds_only_the_poison_message(broker: str) -> None:
    # The DLQ gone and a consumer that may not declare it (least privilege): the poison
    # message is held unacked on its channel, no reconnect returns (and counts) the
    # others, which are applied; once the DLQ is back it goes there with its own reason.
    rabbit = RabbitMQBroker(broker, connect_timeout=10)
    await rabbit.declare([STORE])
    subscriptions = by_event_name([Subscription(event=ItemStored, handle=_unused)])
    opened = 0
    connections = rabbit.consumer_connections(STORE, prefetch=50)

    def counting_opener() -> Any:
        nonlocal opened
        opened += 1
        return connections()

    processor = Applying()
    consumer = InboxConsumer(
        open_connection=counting_opener,
        queue=STORE.topology.queue,
        processor=processor,
        subscriptions=subscriptions,
        policy=ConsumerPolicy(delivery_limit=3, reconnect_max_seconds=0.3),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.wait_for(consumer.ready.wait(), timeout=10)
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.queue_delete(STORE.topology.dead_letter_queue)
            valid = [ItemStored(item_id=uuid.uuid4(), note=str(n)) for n in range(3)]
            poison_id = str(uuid.uuid4())
            bodies = [(str(valid[0].event_id), valid[0].model_dump_json(by_alias=True))]
            bodies.append((poison_id, "not json"))
            bodies += [(str(e.event_id), e.model_dump_json(by_alias=True)) for e in valid[1:]]
            for message_id, body in bodies:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body.encode(),
                        message_id=message_id,
                        type="ItemStored",
                        content_type="application/json",
                    ),
                    routing_key=STORE.topology.queue,
                )

            async def valid_applied_poison_held() -> bool:
                return len(processor.applied) == 3 and consumer.trouble is not None

            await wait_until(valid_applied_poison_held, timeout=10)
            assert sorted(map(str, processor.applied)) == sorted(str(e.event_id) for e in valid)
            assert "no queue is bound to store.events.dlx" in (consumer.trouble or "")
            await asyncio.sleep(1.0)  # several retries of the held message meanwhile
            assert opened == 1  # no reconnect: nothing returned, no delivery counted
            await rabbit.declare([STORE])  # an operator's `broker declare`
            await wait_until(lambda: rabbit.dead_letters("store"), timeout=10)
        [letter] = await rabbit.dead_letters("store")
        assert letter.message_id == poison_id
        assert "invalid ItemStored" in letter.reason  # its own reason, not the limit's
        assert consumer.trouble is None
        assert await queue_depth(broker, STORE.topology.queue) == 0
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)


async def _unused(session: object, events: object) -> list[str]:
    raise AssertionError("the processor is a fake: handlers are not called")
