"""The consumer dead-letters a message whose handler meets a deterministic data error as
soon as it is isolated, with the error as its reason; the rest of its batch commits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from psycopg import errors
from sqlalchemy.exc import IntegrityError

from cloudcrm_outbox.brokers.embedded.memory import InMemoryBroker
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.inbox.consumer import InboxConsumer
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.names import ConsumerTopology
from cloudcrm_outbox.subscriptions import by_event_name
from tests.support.consuming import wait_until
from tests.support.events import SUBSCRIPTIONS

TOPOLOGY = ConsumerTopology.for_service("catalog")


class OneBadValueProcessor:
    """Applies every message but ``bad``, which breaks a CHECK constraint each time."""

    def __init__(self, bad: uuid.UUID, expected: int) -> None:
        self.bad, self.expected = bad, expected
        self.tries: dict[uuid.UUID, int] = {}
        self.committed: list[uuid.UUID] = []
        self.done = asyncio.Event()

    async def process(
        self, messages: Sequence[Decoded], *, lock_timeout: float | None = None
    ) -> dict[uuid.UUID, str]:
        for message in messages:
            self.tries[message.message_id] = self.tries.get(message.message_id, 0) + 1
        if any(message.message_id == self.bad for message in messages):
            raise IntegrityError("UPDATE", {}, errors.CheckViolation("violates check constraint"))
        self.committed += [message.message_id for message in messages]
        if len(self.committed) == self.expected:
            self.done.set()
        return {message.message_id: "applied" for message in messages}


async def _has(items: object) -> bool:
    return bool(items)


def _order_placed() -> OutgoingMessage:
    body = {"orderId": str(uuid.uuid4()), "productId": str(uuid.uuid4()),
            "customerName": "Ann", "quantity": 1}  # fmt: skip
    return OutgoingMessage(
        uuid.uuid4(), "OrderPlaced", json.dumps(body).encode(), {}, datetime.now(UTC)
    )


async def test_a_data_error_is_dead_lettered_at_once_and_the_batch_commits_without_it() -> None:
    broker = InMemoryBroker()
    index = by_event_name(SUBSCRIPTIONS)
    broker.declare(TOPOLOGY, event_names=index, delivery_limit=20)
    sent = [_order_placed() for _ in range(5)]
    bad = sent[2].message_id
    processor = OneBadValueProcessor(bad, expected=4)
    consumer = InboxConsumer(
        open_connection=broker.consumer_connections(TOPOLOGY, event_names=index, delivery_limit=20),
        queue=TOPOLOGY.queue,
        processor=processor,  # type: ignore[arg-type]
        subscriptions=index,
        policy=ConsumerPolicy(batch_size=10, delivery_limit=20),
    )
    await broker.publish_batch(sent)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    dlq = broker.queues[TOPOLOGY.dead_letter_queue]
    async with asyncio.timeout(10):
        await processor.done.wait()
    await wait_until(lambda: _has(dlq.ready), timeout=10)
    stop.set()
    await running

    assert sorted(processor.committed) == sorted(m.message_id for m in sent if m is not sent[2])
    [dead] = list(dlq.ready)
    assert dead.message_id == str(bad)
    assert dead.headers["x-poison-reason"] == (
        "data error: violates check constraint (SQLSTATE 23514)"
    )
    # Once in the batch and once alone: never requeued, never redelivered.
    assert processor.tries[bad] == 2
    queue = broker.queues[TOPOLOGY.queue]
    assert not queue.ready and not queue.unacked
