"""RabbitMQ names and declarations (the contract's AMQP section).

What RabbitMQ lets an operator change at run time is kept out of queue arguments: a queue
argument can never change once the queue exists (a redeclaration with another value is
refused with 406 PRECONDITION_FAILED), so a new ``CONSUMER_DELIVERY_LIMIT`` once bricked the
consumer in a reconnect loop. The delivery limit is applied by the consumer itself, from
the quorum queue's ``x-delivery-count`` header, and dead letters are published by the
consumer to ``S.events.dlx`` with their reason. The queues carry only arguments whose
values never change (their type, and ``S.events.dlx`` as their dead-letter exchange, at
least once): whatever dead-letters on the broker's side (an operator's ``delivery-limit``
policy, or RabbitMQ 4's default limit of 20 for quorum queues) lands in ``S.events.dlq``
instead of being dropped. ``S.events.dlq`` refuses publishes once over a length limit
(``x-overflow: reject-publish``), which only an operator's policy can give it: the
default overflow, drop-head, let RabbitMQ confirm a 10 MB dead letter and drop it at
once under a 5 MB ``max-length-bytes`` policy, and the consumer acked the original.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractConnection
from pamqp.common import FieldValue

from cloudcrm_outbox.brokers.rabbitmq import nodes as broker_nodes
from cloudcrm_outbox.brokers.rabbitmq.declarations import declare_queue, refusable
from cloudcrm_outbox.errors import TopologyAccessRefusedError as TopologyAccessRefusedError
from cloudcrm_outbox.errors import TopologyConflictError as TopologyConflictError
from cloudcrm_outbox.names import DEFAULT_NAMES, ConsumerTopology, QueueBindings

QUORUM: dict[str, FieldValue] = {"x-queue-type": "quorum"}
# An argument earlier releases put on ``S.events``. A queue declared with it is adopted
# (warned about) rather than refused, so that upgrading does not stop the consumer.
LEGACY_ARGUMENTS = frozenset({"x-delivery-limit"})
# ``S.events.dlq``'s: a dead letter over a length limit is refused (nacked: the consumer
# keeps the message where it was, and RabbitMQ's own at-least-once dead-lettering keeps
# retrying), never confirmed and then dropped. A quorum queue takes a publish while under
# its limit, so one dead letter of any size RabbitMQ accepts always gets in.
DEAD_LETTER_QUEUE_ARGUMENTS: dict[str, FieldValue] = {**QUORUM, "x-overflow": "reject-publish"}
# A ``S.events.dlq`` of an earlier release lacks it: adopted as it is, with a warning,
# once redeclared with that release's exact arguments (RabbitMQ names only the first
# argument that differs, and a classic queue must still be refused).
_EARLIER_DEAD_LETTER_QUEUE: dict[str, dict[str, FieldValue] | None] = {"x-overflow": QUORUM}
# ``S.events`` with LEGACY_ARGUMENTS: whatever values it had, used as it is.
_EARLIER_QUEUE: dict[str, dict[str, FieldValue] | None] = dict.fromkeys(LEGACY_ARGUMENTS)


def queue_arguments(topology: ConsumerTopology) -> dict[str, FieldValue]:
    """``S.events``'s arguments: fixed for the queue's life, none of them a setting."""
    return {
        **QUORUM,
        "x-dead-letter-exchange": topology.dead_letter_exchange,
        # At-least-once dead-lettering: a message leaves the queue only once the
        # dead-letter queue has confirmed it (RabbitMQ requires reject-publish with it).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def partition_queue_arguments(topology: ConsumerTopology) -> dict[str, FieldValue]:
    """A partition queue's (``S.events.pN``): ``S.events``'s, and a single active consumer
    (``x-single-active-consumer``, https://www.rabbitmq.com/docs/consumers#single-active-consumer):
    every consumer process subscribes, RabbitMQ delivers to one at a time and hands the
    queue to the next when that one's channel closes, so a partition's messages arrive in
    their queue order at one consumer. The inbox's key gate keeps each key's order anyway
    (a redelivery, a takeover, a replay); this keeps it from having to park."""
    return {**queue_arguments(topology), "x-single-active-consumer": True}


async def declare_topology(
    connection: AbstractConnection,
    bindings: Sequence[QueueBindings],
    *,
    exchange: str = DEFAULT_NAMES.exchange,
) -> None:
    """Declare the topic ``exchange`` and, for each service, its DLX, DLQ, queue, partition
    queues and bindings to ``exchange`` (an event's name to the queue, ``name.pN`` to
    partition queue N).

    Idempotent: every process may run it at start. Raises TopologyConflictError naming the
    entity and the broker's words when RabbitMQ refuses (406, 403, 404).
    """
    channel = await connection.channel()
    try:
        events = await refusable(
            f"exchange {exchange}",
            channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True),
        )
        for item in bindings:
            names = item.topology
            dead_letters = await refusable(
                f"exchange {names.dead_letter_exchange}",
                channel.declare_exchange(
                    names.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
                ),
            )
            channel, dlq = await declare_queue(
                connection,
                channel,
                names.dead_letter_queue,
                DEAD_LETTER_QUEUE_ARGUMENTS,
                earlier=_EARLIER_DEAD_LETTER_QUEUE,
            )
            await refusable(f"binding of {names.dead_letter_queue}", dlq.bind(dead_letters, ""))
            channel, queue = await declare_queue(
                connection, channel, names.queue, queue_arguments(names), earlier=_EARLIER_QUEUE
            )
            for name in item.event_names:
                await refusable(f"binding of {names.queue}", queue.bind(events, name))
            for number, partition in enumerate(names.partition_queues):
                channel, queue = await declare_queue(
                    connection, channel, partition, partition_queue_arguments(names), earlier={}
                )
                for name in item.event_names:
                    await refusable(
                        f"binding of {partition}", queue.bind(events, f"{name}.p{number}")
                    )
    finally:
        if not channel.is_closed:
            await channel.close()


async def declare_at(
    url: str,
    bindings: Sequence[QueueBindings],
    *,
    within: float,
    exchange: str = DEFAULT_NAMES.exchange,
) -> None:
    """Connect to RabbitMQ at ``url``, ``declare_topology``, disconnect, within
    ``within`` seconds. Raises TopologyConflictError, or the connection's error."""
    async with asyncio.timeout(within):
        connection = await broker_nodes.connect(url)
        try:
            await declare_topology(connection, bindings, exchange=exchange)
        finally:
            await connection.close()
