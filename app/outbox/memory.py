"""An in-memory broker for ``python -m app dev``: one process, no server.

It keeps the semantics the rest of the system relies on: publishing to an event nobody
is bound to is refused (as ``mandatory`` is), a delivery stays unacked until the consumer
acks it after its commit, unacked deliveries come back when the consumer stops or nacks,
and a message delivered too often, or rejected as poison, goes to ``S.events.dlq``. It
keeps nothing across restarts: the outbox is what survives (unpublished rows are
published again), as with any broker that lost its queues.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from app.outbox.publisher import OutgoingMessage, PublishResult
from app.outbox.sessions import ConsumerSession, Delivery, SessionOpener
from app.outbox.topology import ConsumerTopology


@dataclass(frozen=True)
class Envelope:
    body: bytes
    message_id: str | None
    type: str | None
    routing_key: str | None
    content_type: str | None = "application/json"
    correlation_id: str | None = None
    timestamp: datetime | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    deliveries: int = 0


class MemoryDelivery:
    """One delivery of an envelope; acks and nacks go back to its queue."""

    def __init__(self, envelope: Envelope, queue: MemoryQueue, tag: int) -> None:
        self._envelope, self._queue, self.delivery_tag = envelope, queue, tag

    def __getattr__(self, name: str) -> Any:  # body, message_id, type, headers, …
        return getattr(self._envelope, name)

    async def ack(self, multiple: bool = False) -> None:
        self._queue.settle(self.delivery_tag, multiple=multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self._queue.give_back(self.delivery_tag, dead_letter=not requeue)


class MemoryQueue:
    def __init__(self, name: str, *, delivery_limit: int, dead_letters: MemoryQueue | None):
        self.name = name
        self.ready: deque[Envelope] = deque()
        self.unacked: dict[int, Envelope] = {}
        self._delivery_limit = delivery_limit
        self._dead_letters = dead_letters
        self._consumer: asyncio.Queue[Delivery] | None = None
        self._tags = 0

    def put(self, envelope: Envelope) -> None:
        self.ready.append(envelope)
        self._deliver()

    def attach(self, inbound: asyncio.Queue[Delivery]) -> None:
        self._consumer = inbound
        self._deliver()

    def pause(self) -> None:
        """No new deliveries; those unacked stay with the consumer (as basic.cancel)."""
        self._consumer = None

    def detach(self) -> None:
        """The consumer went away: its unacked deliveries return, counted."""
        self._consumer = None
        for tag in sorted(self.unacked, reverse=True):
            self._return(self.unacked.pop(tag), front=True)

    def settle(self, tag: int, *, multiple: bool) -> None:
        for settled in [t for t in self.unacked if t == tag or (multiple and t < tag)]:
            del self.unacked[settled]

    def give_back(self, tag: int, *, dead_letter: bool) -> None:
        envelope = self.unacked.pop(tag, None)
        if envelope is None:
            return
        if dead_letter:
            self._dead_letter(envelope, "rejected")
        else:
            self._return(envelope, front=False)
        self._deliver()

    def _return(self, envelope: Envelope, *, front: bool) -> None:
        if envelope.deliveries >= self._delivery_limit:
            self._dead_letter(envelope, "delivery_limit")
        elif front:
            self.ready.appendleft(envelope)
        else:
            self.ready.append(envelope)

    def _dead_letter(self, envelope: Envelope, reason: str) -> None:
        if self._dead_letters is not None:
            headers = {**envelope.headers, "x-first-death-reason": reason}
            self._dead_letters.put(replace(envelope, headers=headers, deliveries=0))

    def _deliver(self) -> None:
        while self._consumer is not None and self.ready:
            envelope = self.ready.popleft()
            envelope = replace(envelope, deliveries=envelope.deliveries + 1)
            self._tags += 1
            self.unacked[self._tags] = envelope
            self._consumer.put_nowait(MemoryDelivery(envelope, self, self._tags))


class MemorySession:
    def __init__(self, queue: MemoryQueue, dead_letters: MemoryQueue) -> None:
        self.inbound: asyncio.Queue[Delivery] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue, self._dead_letters = queue, dead_letters

    async def dead_letter(self, message: Delivery, reason: str) -> None:
        headers = {**(message.headers or {}), "x-poison-reason": reason}
        self._dead_letters.put(
            Envelope(
                body=message.body,
                message_id=message.message_id,
                type=message.type,
                routing_key=message.routing_key,
                content_type=message.content_type,
                headers=headers,
            )
        )
        await message.ack()

    async def stop_receiving(self) -> None:
        self._queue.pause()  # what was delivered stays in inbound and is finished


class InMemoryBroker:
    """Topic routing by exact event name, publisher 'confirms', queues and dead letters."""

    def __init__(self) -> None:
        self.queues: dict[str, MemoryQueue] = {}
        self._bindings: dict[str, set[str]] = {}  # routing key -> queue names

    def declare(
        self, topology: ConsumerTopology, *, event_names: Iterable[str], delivery_limit: int
    ) -> tuple[MemoryQueue, MemoryQueue]:
        dlq = self.queues.setdefault(
            topology.dead_letter_queue,
            MemoryQueue(topology.dead_letter_queue, delivery_limit=1 << 30, dead_letters=None),
        )
        queue = self.queues.setdefault(
            topology.queue,
            MemoryQueue(topology.queue, delivery_limit=delivery_limit, dead_letters=dlq),
        )
        for name in event_names:
            self._bindings.setdefault(name, set()).add(topology.queue)
        return queue, dlq

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        result = PublishResult()
        for message in messages:
            bound = self._bindings.get(message.event_type)
            if not bound:
                result.rejected[message.message_id] = "returned by the broker: 312 NO_ROUTE"
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
            for name in sorted(bound):
                self.queues[name].put(envelope)
            result.confirmed.append(message.message_id)
        return result

    async def close(self) -> None:
        return None

    def sessions(
        self, topology: ConsumerTopology, *, event_names: Iterable[str], delivery_limit: int
    ) -> SessionOpener:
        names = list(event_names)

        @asynccontextmanager
        async def open_session() -> AsyncIterator[ConsumerSession]:
            queue, dlq = self.declare(topology, event_names=names, delivery_limit=delivery_limit)
            session = MemorySession(queue, dlq)
            queue.attach(session.inbound)
            try:
                yield session
            finally:
                queue.detach()

        return open_session
