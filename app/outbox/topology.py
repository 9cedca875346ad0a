"""RabbitMQ names and declarations for a consuming service (the contract's AMQP section)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from app.outbox.publisher import EXCHANGE


@dataclass(frozen=True)
class ConsumerTopology:
    queue: str  # S.events
    dead_letter_exchange: str  # S.events.dlx
    dead_letter_queue: str  # S.events.dlq

    @classmethod
    def for_service(cls, service: str) -> ConsumerTopology:
        return cls(f"{service}.events", f"{service}.events.dlx", f"{service}.events.dlq")


@dataclass(frozen=True)
class Declared:
    queue: AbstractQueue
    dead_letters: AbstractExchange


async def declare(
    channel: AbstractChannel,
    topology: ConsumerTopology,
    *,
    event_names: Iterable[str],
    delivery_limit: int,
) -> Declared:
    """Declare exchanges, queues and bindings; idempotent, so every start may do it."""
    events = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    dead_letters = await channel.declare_exchange(
        topology.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dlq = await channel.declare_queue(
        topology.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dead_letters)
    queue = await channel.declare_queue(
        topology.queue,
        durable=True,
        arguments={
            # A quorum queue counts deliveries itself, crashes of the consumer included,
            # so a message that can never be handled is dead-lettered after
            # ``delivery_limit`` tries even if it kills the consumer every time.
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": topology.dead_letter_exchange,
            # At-least-once dead-lettering: a message leaves the queue only once the
            # dead-letter queue has confirmed it (it requires reject-publish overflow).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    for name in event_names:
        await queue.bind(events, routing_key=name)
    return Declared(queue=queue, dead_letters=dead_letters)
