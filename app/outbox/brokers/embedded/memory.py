"""The embedded broker of ``python -m app dev``: one process, no server, queues in SQLite.

It keeps the semantics the rest of the system relies on: publishing to an event nobody
is bound to is refused (as ``mandatory`` is); a message is confirmed only once it is
committed to the queue file (``brokers.embedded.queue_file``) and stays there until the
consumer acks it, after its own commit; unacked deliveries come back, counted, when the
consumer stops or nacks, or when the process dies (``kill -9`` included); every delivery
carries ``x-delivery-count`` as a quorum queue's does; a message delivered too often, or
rejected as poison, goes to ``S.events.dlq``. The deques below are the fast path for
delivery; the file is the truth at start.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from cloudcrm_outbox.brokers.connection import ConnectionOpener, ConsumerConnection, Delivery
from cloudcrm_outbox.brokers.dead_letters import FIRST_DEAD_AT, now_iso
from cloudcrm_outbox.brokers.embedded.queue_file import Envelope, QueueFile
from cloudcrm_outbox.brokers.embedded.queues import DELIVERY_COUNT, MemoryDelivery, MemoryQueue
from cloudcrm_outbox.brokers.publisher import OutgoingMessage, PublishResult
from cloudcrm_outbox.names import ConsumerTopology

__all__ = [
    "Envelope",
    "InMemoryBroker",
    "MemoryConsumerConnection",
    "MemoryDelivery",
    "MemoryQueue",
]


class MemoryConsumerConnection:
    """One consumer attached to one queue, as a channel consuming it is on RabbitMQ."""

    def __init__(self, queue: MemoryQueue, dead_letters: MemoryQueue) -> None:
        self.inbound: asyncio.Queue[Delivery] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue, self._dead_letters = queue, dead_letters

    async def dead_letter(self, message: Delivery, reason: str) -> None:
        # Stored in the dead-letter queue first, acked after: a crash between the two
        # leaves a duplicate dead letter, never a lost one (as with RabbitMQ's confirms).
        headers = {k: v for k, v in (message.headers or {}).items() if k != DELIVERY_COUNT}
        envelope = Envelope(
            body=message.body,
            message_id=message.message_id,
            type=message.type,
            routing_key=message.routing_key,
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            # The same headers as on RabbitMQ (amqp_consumer.AmqpConsumerConnection.dead_letter).
            headers={
                FIRST_DEAD_AT: now_iso(),
                **headers,
                "x-poison-reason": reason,
                "x-poison-queue": self._queue.name,
                # A replayed message keeps the event name it was first published under.
                "x-original-routing-key": headers.get("x-original-routing-key")
                or message.routing_key
                or "",
            },
        )
        self._dead_letters.put(envelope)
        await message.ack()

    async def stop_receiving(self) -> None:
        self._queue.pause()  # what was delivered stays in inbound and is finished


class InMemoryBroker:
    """Topic routing by exact event name, publisher confirms, queues and dead letters.

    ``path``: the SQLite file the queues live in (created if missing); None keeps them in
    a private in-memory database, gone with the broker (tests).
    """

    def __init__(self, path: str | None = None) -> None:
        self.queues: dict[str, MemoryQueue] = {}
        self._bindings: dict[str, set[str]] = {}  # routing key -> queue names
        self._store = QueueFile(path)

    def declare(
        self, topology: ConsumerTopology, *, event_names: Iterable[str], delivery_limit: int
    ) -> tuple[MemoryQueue, MemoryQueue]:
        """The queue and its dead-letter queue, loaded from the file on first declare."""
        dlq = self._queue(topology.dead_letter_queue, delivery_limit=1 << 30, dead_letters=None)
        queue = self._queue(topology.queue, delivery_limit=delivery_limit, dead_letters=dlq)
        for name in event_names:
            self._bindings.setdefault(name, set()).add(topology.queue)
        return queue, dlq

    def _queue(
        self, name: str, *, delivery_limit: int, dead_letters: MemoryQueue | None
    ) -> MemoryQueue:
        if name not in self.queues:
            self.queues[name] = MemoryQueue(
                name, store=self._store, delivery_limit=delivery_limit, dead_letters=dead_letters
            )
        return self.queues[name]

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Route ``messages`` and store them in one transaction; confirmed once committed.
        Unbound events are unroutable (312 NO_ROUTE, as RabbitMQ returns a mandatory
        message no queue is bound for); a failed commit is ``broken``."""
        result = PublishResult()
        queued: list[tuple[str, Envelope]] = []
        for message in messages:
            bound = self._bindings.get(message.event_type)
            if not bound:
                result.unroutable[message.message_id] = "returned by the broker: 312 NO_ROUTE"
                continue
            headers = dict(message.headers)
            envelope = Envelope(
                body=message.body,
                message_id=str(message.message_id),
                type=message.event_type,
                routing_key=message.event_type,
                correlation_id=headers.pop("correlation_id", None),
                timestamp=message.created_at,
                headers=headers,
            )
            queued += [(name, envelope) for name in sorted(bound)]
            result.confirmed.append(message.message_id)
        try:
            stored = self._store.insert(queued)
        except sqlite3.Error as exc:  # nothing was stored: the relay keeps the rows pending
            result.confirmed, result.broken = [], exc
            return result
        by_queue: dict[str, list[Envelope]] = {}
        for (name, _), envelope in zip(queued, stored, strict=True):
            by_queue.setdefault(name, []).append(envelope)
        for name, envelopes in by_queue.items():  # one delivery record per queue
            self.queues[name].enqueue(envelopes)
        return result

    async def close(self) -> None:
        self._store.close()

    @property
    def store(self) -> QueueFile:
        return self._store

    def consumer_connections(
        self, topology: ConsumerTopology, *, event_names: Iterable[str], delivery_limit: int
    ) -> ConnectionOpener:
        names = list(event_names)

        @asynccontextmanager
        async def open_connection() -> AsyncIterator[ConsumerConnection]:
            queue, dlq = self.declare(topology, event_names=names, delivery_limit=delivery_limit)
            consuming = MemoryConsumerConnection(queue, dlq)
            queue.attach(consuming.inbound)
            try:
                yield consuming
            finally:
                queue.detach()

        return open_connection
