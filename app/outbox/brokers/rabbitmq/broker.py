"""The Broker on RabbitMQ: aio-pika publishers and consumers, dead letters over AMQP."""

from __future__ import annotations

import asyncio
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
from cloudcrm_outbox.brokers.publisher import Publisher
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.brokers.rabbitmq import dead_letters as amqp_dead_letters
from cloudcrm_outbox.brokers.rabbitmq import nodes as broker_nodes
from cloudcrm_outbox.brokers.rabbitmq.consuming.consumer import amqp_consumer_connections
from cloudcrm_outbox.brokers.rabbitmq.publishing.path import PATHS, PublishPath
from cloudcrm_outbox.brokers.rabbitmq.publishing.publisher import AmqpPublisher
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from cloudcrm_outbox.names import DEFAULT_NAMES, ConsumerTopology, MessagingNames, QueueBindings

# A node that accepts a connection and never answers must not use up a start-up attempt
# before the next node is tried.
PING_NODE_SECONDS = 5.0


class RabbitMQBroker:
    """RabbitMQ at an ``amqp://`` or ``amqps://`` URL (seconds for the timeouts);
    ``publish_path``: how its publishers write batches (``publish_path.PublishPath``)."""

    def __init__(
        self,
        url: str,
        *,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        names: MessagingNames = DEFAULT_NAMES,
        publish_path: PublishPath = "auto",
    ) -> None:
        self.url = url
        self.names = names
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self.publish_path: PublishPath = publish_path

    display_name = "RabbitMQ"

    def location(self) -> str:
        """The nodes as host:port/vhost."""
        return broker_nodes.where(self.url)

    async def ping(self) -> None:
        """One connection opened and closed; each node gets PING_NODE_SECONDS."""
        async with asyncio.timeout(PING_NODE_SECONDS * broker_nodes.node_count(self.url) + 1):
            connection = await broker_nodes.connect(self.url, node_timeout=PING_NODE_SECONDS)
            await connection.close()

    async def declare(self, bindings: Sequence[QueueBindings]) -> None:
        await declare_at(
            self.url, bindings, within=self._connect_timeout * 6, exchange=self.names.exchange
        )

    def publisher(self, *, bindings: Sequence[QueueBindings] = ()) -> Publisher:
        return AmqpPublisher(
            self.url,
            publish_timeout=self._publish_timeout,
            bindings=bindings,
            exchange=self.names.exchange,
            publish_path=self.publish_path,
        )

    def consumer_connections(self, bindings: QueueBindings, *, prefetch: int) -> ConnectionOpener:
        return amqp_consumer_connections(
            self.url,
            bindings,
            prefetch=prefetch,
            timeout=self._connect_timeout,
            exchange=self.names.exchange,
        )

    async def queue_state(self, queue: str) -> QueueState | None:
        return await amqp_dead_letters.queue_state(
            self.url, queue, connect_timeout=self._connect_timeout
        )

    def _dead_letter_queue(self, service: str) -> str:
        return ConsumerTopology.for_service(service, self.names).dead_letter_queue

    async def dead_letter_summary(self, service: str) -> DeadLetterSummary:
        depth = await amqp_dead_letters.dead_letter_depth(
            self.url, self._dead_letter_queue(service), connect_timeout=self._connect_timeout
        )
        return DeadLetterSummary(depth, None)

    async def dead_letters(self, service: str, *, limit: int = DLQ_LIMIT) -> list[DeadLetter]:
        return await amqp_dead_letters.list_dead_letters(
            self.url,
            self._dead_letter_queue(service),
            limit=check_limit(limit),
            connect_timeout=self._connect_timeout,
        )

    async def replay_dead_letters(
        self, service: str, selection: DeadLetterSelection, *, limit: int = DLQ_LIMIT
    ) -> ReplayResult:
        topology = ConsumerTopology.for_service(service, self.names)
        replayed, left = await amqp_dead_letters.replay_dead_letters(
            self.url,
            topology.dead_letter_queue,
            selection,
            owner_queue=topology.queue,
            connect_timeout=self._connect_timeout,
            limit=check_limit(limit),
        )
        return ReplayResult(replayed, left)

    async def purge_dead_letters(
        self, service: str, selection: DeadLetterSelection, *, limit: int = DLQ_LIMIT
    ) -> list[DeadLetter]:
        return await amqp_dead_letters.purge_dead_letters(
            self.url,
            self._dead_letter_queue(service),
            selection,
            connect_timeout=self._connect_timeout,
            limit=check_limit(limit),
        )

    async def close(self) -> None:
        return None


def from_url(url: str, options: BrokerOptions) -> RabbitMQBroker:
    """``broker_for``'s factory for ``amqp://`` and ``amqps://`` URLs; raises ValueError for
    a ``publish_path`` other than ``auto``, ``fast`` or ``public``."""
    if options.publish_path not in PATHS:
        raise ValueError(
            f"publish_path must be one of {', '.join(PATHS)}, not {options.publish_path!r}"
        )
    return RabbitMQBroker(
        url,
        publish_timeout=options.publish_timeout,
        connect_timeout=options.connect_timeout,
        names=options.names,
        publish_path=options.publish_path,
    )
