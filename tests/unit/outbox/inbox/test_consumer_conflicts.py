"""A deadlock with another consumer is retried, never counted against a message."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError

from cloudcrm_outbox.brokers.embedded.memory import InMemoryBroker
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.inbox.consumer import InboxConsumer
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.names import ConsumerTopology
from cloudcrm_outbox.subscriptions import by_event_name
from tests.support.events import SUBSCRIPTIONS

TOPOLOGY = ConsumerTopology.for_service("catalog")


class DeadlockError(Exception):
    sqlstate = "40P01"


def deadlock() -> DBAPIError:
    return DBAPIError("UPDATE products …", {}, DeadlockError("deadlock detected"))


class DeadlockingProcessor:
    """Every batch of more than one message deadlocks; a message alone deadlocks on its
    first ``alone_failures`` tries, then commits."""

    def __init__(self, alone_failures: int) -> None:
        self.alone_failures = alone_failures
        self.tries: dict[uuid.UUID, int] = {}
        self.committed: list[uuid.UUID] = []
        self.expected = 0
        self.all_committed = asyncio.Event()

    async def process(
        self, messages: Sequence[Decoded], *, lock_timeout: float | None = None
    ) -> dict[uuid.UUID, str]:
        if len(messages) > 1:
            raise deadlock()
        [message] = messages
        self.tries[message.message_id] = self.tries.get(message.message_id, 0) + 1
        if self.tries[message.message_id] <= self.alone_failures:
            raise deadlock()
        self.committed.append(message.message_id)
        if len(self.committed) == self.expected:
            self.all_committed.set()
        return {message.message_id: "applied"}


def order_placed() -> OutgoingMessage:
    body = {
        "orderId": str(uuid.uuid4()),
        "productId": str(uuid.uuid4()),
        "customerName": "Ann",
        "quantity": 1,
    }
    return OutgoingMessage(
        uuid.uuid4(), "OrderPlaced", json.dumps(body).encode(), {}, datetime.now(UTC)
    )


async def test_deadlocked_batch_and_messages_are_retried_not_requeued() -> None:
    broker = InMemoryBroker()
    index = by_event_name(SUBSCRIPTIONS)
    broker.declare(TOPOLOGY, event_names=index, delivery_limit=1)
    processor = DeadlockingProcessor(alone_failures=3)
    consumer = InboxConsumer(
        open_connection=broker.consumer_connections(TOPOLOGY, event_names=index, delivery_limit=1),
        queue="catalog.events",
        processor=processor,  # type: ignore[arg-type]
        subscriptions=index,
        policy=ConsumerPolicy(batch_size=10),
    )
    sent = [order_placed() for _ in range(3)]
    processor.expected = len(sent)
    await broker.publish_batch(sent)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    async with asyncio.timeout(10):
        await processor.all_committed.wait()
    stop.set()
    await running

    assert sorted(processor.committed) == sorted(message.message_id for message in sent)
    queue = broker.queues[TOPOLOGY.queue]
    # delivery_limit=1: a single requeue would have dead-lettered the message.
    assert not queue.ready and not queue.unacked
    assert not broker.queues[TOPOLOGY.dead_letter_queue].ready
