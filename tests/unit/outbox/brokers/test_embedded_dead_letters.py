"""The embedded broker's dead letters: one without a message id is left where it is (the
inbox could not recognise a second copy); a negative limit is refused; a 10 MB poison
message is dead-lettered whole, and seen by readers running at once (librdkafka #488,
Apache Pulsar #6961)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from cloudcrm_outbox import DeadLetterSelection, QueueBindings
from cloudcrm_outbox.brokers.dead_letters import NO_MESSAGE_ID
from cloudcrm_outbox.brokers.embedded.queue_file import Envelope
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.inbox.consumer import InboxConsumer
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.subscriptions import Subscription, by_event_name
from cloudcrm_outbox.testing import embedded_broker
from tests.support.consuming import wait_until
from tests.support.events import OrderPlaced


async def test_a_dead_letter_without_a_message_id_stays() -> None:
    broker = embedded_broker()
    await broker.declare([QueueBindings.of("store", ["ItemStored"])])
    dlq = broker._memory.queues["store.events.dlq"]
    dlq.put(Envelope(body=b"{}", message_id=None, type="ItemStored", routing_key="store.events",
                     headers={"x-poison-reason": "invalid ItemStored"}))  # fmt: skip
    result = await broker.replay_dead_letters("store", DeadLetterSelection())
    assert result.replayed == [] and [why for _, why in result.left] == [NO_MESSAGE_ID]
    assert len(await broker.dead_letters("store")) == 1
    summary = await broker.dead_letter_summary("store")
    assert summary.depth == 1
    with pytest.raises(ValueError, match="limit"):
        await broker.purge_dead_letters("store", DeadLetterSelection(), limit=-1)
    await broker.close()


class Applying:
    """Applies every valid message (no database)."""

    def __init__(self) -> None:
        self.applied: list[uuid.UUID] = []

    async def process(
        self, messages: Sequence[Decoded], *, lock_timeout: float | None = None
    ) -> dict[uuid.UUID, str]:
        self.applied += [message.message_id for message in messages]
        return {message.message_id: "applied" for message in messages}


async def test_a_10_mb_poison_message_is_dead_lettered_whole() -> None:
    # As on RabbitMQ (tests/integration/outbox/test_large_dead_letters.py): the embedded
    # broker keeps bodies in SQLite, whose BLOBs hold up to 1 GB.
    broker = embedded_broker()
    catalog = QueueBindings.of("catalog", ["OrderPlaced"])
    await broker.declare([catalog])
    body = json.dumps({"orderId": str(uuid.uuid4()), "productId": str(uuid.uuid4()),
                       "customerName": "A" * 10_000_000, "quantity": 1}).encode()  # fmt: skip
    valid = OrderPlaced(order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="B",
                        quantity=1)  # fmt: skip
    poison = OutgoingMessage(uuid.uuid4(), "OrderPlaced", body, {}, datetime.now(UTC))
    good = OutgoingMessage(valid.event_id, "OrderPlaced", valid.model_dump_json(by_alias=True)
                           .encode(), {}, datetime.now(UTC))  # fmt: skip
    publisher = broker.publisher(bindings=[catalog])
    assert len((await publisher.publish_batch([poison, good])).confirmed) == 2
    processor = Applying()
    consumer = InboxConsumer(
        open_connection=broker.consumer_connections(catalog, prefetch=10),
        queue="catalog.events",
        processor=processor,
        subscriptions=by_event_name([Subscription(event=OrderPlaced, handle=_unused)]),
        policy=ConsumerPolicy(),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:

        async def both_done() -> bool:
            return bool(processor.applied and await broker.dead_letters("catalog"))

        await wait_until(both_done, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    [letter] = await broker.dead_letters("catalog")
    assert (letter.message_id, letter.body) == (str(poison.message_id), body)
    assert letter.reason == f"body of {len(body)} bytes is over the 65536-byte limit"
    assert processor.applied == [valid.event_id]
    assert await broker.queue_state("catalog.events") == QueueState(messages=0, consumers=0)
    # Several readers at once all see it, as on RabbitMQ (test_dead_letter_readers.py):
    # the embedded broker lists without taking anything out of the queue.
    *listings, first, second = await asyncio.gather(
        *(broker.dead_letters("catalog") for _ in range(3)),
        *(broker.dead_letter_summary("catalog") for _ in range(2)),
    )
    assert [[item.message_id for item in listing] for listing in listings] == [
        [str(poison.message_id)]
    ] * 3
    assert (first.depth, second.depth) == (1, 1)
    await broker.close()


async def _unused(session: object, events: object) -> list[str]:
    raise AssertionError("the processor is a fake: handlers are not called")
