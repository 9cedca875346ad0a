"""The Broker inside one process: the embedded broker of ``dev`` and of tests."""

from __future__ import annotations

from collections.abc import Sequence

from cloudcrm_outbox.brokers.base import BrokerOptions
from cloudcrm_outbox.brokers.connection import ConnectionOpener
from cloudcrm_outbox.brokers.dead_letters import (
    DLQ_LIMIT,
    DeadLetter,
    DeadLetterSelection,
    DeadLetterSummary,
    ReplayResult,
    check_limit,
)
from cloudcrm_outbox.brokers.embedded import dead_letters as memory_dead_letters
from cloudcrm_outbox.brokers.embedded.memory import InMemoryBroker
from cloudcrm_outbox.brokers.embedded.queues import MemoryQueue
from cloudcrm_outbox.brokers.publisher import OutgoingMessage, Publisher, PublishResult
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.names import DEFAULT_NAMES, ConsumerTopology, MessagingNames, QueueBindings


class EmbeddedBroker:
    """The broker inside ``dev``: queues in a SQLite file at ``path`` (None: in memory),
    with RabbitMQ's semantics the outbox relies on (see ``memory.py``).

    ``backstop_delivery_limit``: returns after which the queue itself dead-letters, as a
    quorum queue's own limit would; consumers apply their (lower) limit first. It has one
    exchange, whatever ``names.exchange`` says; queues are named by ``names``."""

    def __init__(
        self,
        path: str | None,
        *,
        backstop_delivery_limit: int = 1_000,
        names: MessagingNames = DEFAULT_NAMES,
    ) -> None:
        self.names = names
        self._path = path
        self._memory = InMemoryBroker(path=path)
        self._limit = backstop_delivery_limit

    display_name = "the embedded broker"

    def location(self) -> str:
        """Its queue file, or ``memory`` when it keeps none."""
        return self._path or "memory"

    async def ping(self) -> None:
        """Always up: it lives in this process."""

    async def declare(self, bindings: Sequence[QueueBindings]) -> None:
        for item in bindings:
            self._memory.declare(
                item.topology, event_names=item.event_names, delivery_limit=self._limit
            )

    def publisher(self, *, bindings: Sequence[QueueBindings] = ()) -> Publisher:
        return _SharedPublisher(self._memory)

    def consumer_connections(self, bindings: QueueBindings, *, prefetch: int) -> ConnectionOpener:
        return self._memory.consumer_connections(
            bindings.topology, event_names=bindings.event_names, delivery_limit=self._limit
        )

    def _queues(self, service: str) -> tuple[MemoryQueue, MemoryQueue]:
        # Loaded from the file on first use, as a declaration would (without bindings):
        # dead letters are reachable in a process that has not consumed yet.
        topology = ConsumerTopology.for_service(service, self.names)
        return self._memory.declare(topology, event_names=(), delivery_limit=self._limit)

    async def queue_state(self, queue: str) -> QueueState | None:
        found = self._memory.queues.get(queue)
        if found is None:
            return None
        return QueueState(messages=len(found.ready), consumers=int(found.has_consumer))

    async def dead_letter_summary(self, service: str) -> DeadLetterSummary:
        _, dlq = self._queues(service)
        return memory_dead_letters.summary(dlq)

    async def dead_letters(self, service: str, *, limit: int = DLQ_LIMIT) -> list[DeadLetter]:
        _, dlq = self._queues(service)
        return memory_dead_letters.list_dead_letters(dlq, limit=check_limit(limit))

    async def replay_dead_letters(
        self, service: str, selection: DeadLetterSelection, *, limit: int = DLQ_LIMIT
    ) -> ReplayResult:
        queue, dlq = self._queues(service)
        replayed, left = memory_dead_letters.replay_dead_letters(
            self._memory.store, dlq, queue, selection, limit=check_limit(limit)
        )
        return ReplayResult(replayed, left)

    async def purge_dead_letters(
        self, service: str, selection: DeadLetterSelection, *, limit: int = DLQ_LIMIT
    ) -> list[DeadLetter]:
        _, dlq = self._queues(service)
        return memory_dead_letters.purge_dead_letters(dlq, selection, limit=check_limit(limit))

    async def close(self) -> None:
        await self._memory.close()


class _SharedPublisher:
    """A relay's handle on the embedded broker: closing it leaves the broker open for the
    other relays and the consumers (``EmbeddedBroker.close`` closes it)."""

    def __init__(self, memory: InMemoryBroker) -> None:
        self._memory = memory

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        return await self._memory.publish_batch(messages)

    async def close(self) -> None:
        return None


def from_url(url: str, options: BrokerOptions) -> EmbeddedBroker:
    """``broker_for``'s factory for ``memory://``: queues in ``options.embedded_path``."""
    return EmbeddedBroker(options.embedded_path, names=options.names)
