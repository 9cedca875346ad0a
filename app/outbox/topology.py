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
instead of being dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity, ChannelPreconditionFailed
from pamqp.common import FieldValue

from app.outbox import broker_nodes
from app.outbox.names import DEFAULT_NAMES, MessagingNames

logger = logging.getLogger(__name__)

T = TypeVar("T")

QUORUM: dict[str, FieldValue] = {"x-queue-type": "quorum"}
# An argument earlier releases put on ``S.events``. A queue declared with it is adopted
# (warned about) rather than refused, so that upgrading does not stop the consumer.
LEGACY_ARGUMENTS = frozenset({"x-delivery-limit"})


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


_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'")


@dataclass(frozen=True)
class ConsumerTopology:
    """The queue names of one consuming service."""

    queue: str  # S.events
    dead_letter_exchange: str  # S.events.dlx
    dead_letter_queue: str  # S.events.dlq

    @classmethod
    def for_service(cls, service: str, names: MessagingNames = DEFAULT_NAMES) -> ConsumerTopology:
        """``service``'s queue by ``names.queue_pattern``, its ``.dlx`` and ``.dlq``."""
        queue = names.queue(service)
        return cls(queue, f"{queue}.dlx", f"{queue}.dlq")


@dataclass(frozen=True)
class QueueBindings:
    """One service's queues and the event names (routing keys) bound to its queue."""

    topology: ConsumerTopology
    event_names: tuple[str, ...]

    @classmethod
    def of(
        cls, service: str, event_names: Iterable[str], names: MessagingNames = DEFAULT_NAMES
    ) -> QueueBindings:
        """``service``'s queues (named by ``names``) bound to ``event_names``."""
        return cls(ConsumerTopology.for_service(service, names), tuple(sorted(event_names)))


class TopologyConflictError(Exception):
    """RabbitMQ refused a declaration (an existing entity differs, or no permission).

    Not a passing fault: retrying cannot help, so processes exit 1 with this message.
    """


class TopologyAccessRefusedError(TopologyConflictError):
    """The account may not configure (403 ACCESS_REFUSED): a least-privilege relay or
    consumer, which uses the topology ``broker declare`` made instead."""


async def declare_topology(
    connection: AbstractConnection,
    bindings: Sequence[QueueBindings],
    *,
    exchange: str = DEFAULT_NAMES.exchange,
) -> None:
    """Declare the topic ``exchange`` and, for each service, its DLX, DLQ, queue and
    bindings to ``exchange``.

    Idempotent: every process may run it at start. Raises TopologyConflictError naming the
    entity and the broker's words when RabbitMQ refuses (406, 403, 404).
    """
    channel = await connection.channel()
    try:
        events = await _refusable(
            f"exchange {exchange}",
            channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True),
        )
        for item in bindings:
            names = item.topology
            dead_letters = await _refusable(
                f"exchange {names.dead_letter_exchange}",
                channel.declare_exchange(
                    names.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
                ),
            )
            channel, dlq = await _declare_queue(
                connection, channel, names.dead_letter_queue, QUORUM
            )
            await _refusable(f"binding of {names.dead_letter_queue}", dlq.bind(dead_letters, ""))
            channel, queue = await _declare_queue(
                connection, channel, names.queue, queue_arguments(names)
            )
            for name in item.event_names:
                await _refusable(f"binding of {names.queue}", queue.bind(events, name))
    finally:
        if not channel.is_closed:
            await channel.close()


async def _declare_queue(
    connection: AbstractConnection,
    channel: AbstractChannel,
    name: str,
    arguments: dict[str, FieldValue],
) -> tuple[AbstractChannel, AbstractQueue]:
    """Declare quorum queue ``name``; returns it and the channel to go on with (a new one
    when a legacy queue was adopted, since a refused declaration closes its channel)."""
    try:
        return channel, await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelAccessRefused as exc:
        raise _conflict(f"queue {name}", exc) from exc
    except ChannelPreconditionFailed as exc:
        found = _INEQUIVALENT.search(str(exc))
        if found is None or found.group(1) not in LEGACY_ARGUMENTS:
            raise _conflict(f"queue {name}", exc) from exc
        logger.warning(
            "queue declared by an earlier release with %s; using it as it is (its "
            "arguments still apply beside the consumer's own limit; delete it once empty "
            "and restart to drop them)",
            found.group(1),
            extra={"queue": name},
        )
    fresh = await connection.channel()
    return fresh, await fresh.declare_queue(name, durable=True, passive=True)


async def _refusable(what: str, declaration: Awaitable[T]) -> T:
    try:
        return await declaration
    except (ChannelPreconditionFailed, ChannelAccessRefused, ChannelNotFoundEntity) as exc:
        raise _conflict(what, exc) from exc


def _conflict(what: str, exc: Exception) -> TopologyConflictError:
    if isinstance(exc, ChannelAccessRefused):
        return TopologyAccessRefusedError(
            f"this account may not declare {what}: {exc.args[-1] if exc.args else exc!r}"
        )
    return TopologyConflictError(
        f"RabbitMQ refused to declare {what}: {exc.args[-1] if exc.args else exc!r}. "
        "It exists with other settings, or this user may not configure it: delete or "
        "rename it, or grant the permission, then start again"
    )


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
