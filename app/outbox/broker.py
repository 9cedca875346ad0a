"""One interface to a message broker, chosen once from its URL: RabbitMQ or the embedded one.

The relay publishes through a broker's ``publisher``, a consumer takes deliveries through
its ``consumer_connections``, and ``declare`` makes the exchange, queues, dead letters and bindings.
Nothing else in the outbox asks which broker it runs on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from app.outbox.amqp import AmqpPublisher
from app.outbox.amqp_consumer import amqp_consumer_connections
from app.outbox.consumer_connection import ConnectionOpener
from app.outbox.memory import InMemoryBroker
from app.outbox.names import DEFAULT_NAMES, MessagingNames
from app.outbox.publisher import OutgoingMessage, Publisher, PublishResult
from app.outbox.topology import QueueBindings, declare_at

AMQP_SCHEMES = ("amqp://", "amqps://")
EMBEDDED_SCHEME = "memory://"


class Broker(Protocol):
    """What the outbox needs of a broker (connections are made on first use, not here).

    ``names``: the exchange and queue names it declares and uses."""

    names: MessagingNames

    async def declare(self, bindings: Sequence[QueueBindings]) -> None:
        """Declare the exchange and each service's queues, dead letters and bindings;
        idempotent. Raises TopologyConflictError when the broker refuses one."""
        ...

    def publisher(self, *, bindings: Sequence[QueueBindings] = ()) -> Publisher:
        """A publisher for one relay; it declares ``bindings`` before its first publish
        and again after a message comes back unroutable."""
        ...

    def consumer_connections(self, bindings: QueueBindings, *, prefetch: int) -> ConnectionOpener:
        """Consumer connections to ``bindings``' queue, at most ``prefetch`` unacked each."""
        ...

    async def close(self) -> None:
        """Release what the broker itself holds (publishers and consumer connections
        close their own)."""
        ...


class UnsupportedBrokerError(ValueError):
    """A broker URL of a scheme the outbox has no broker for."""


class RabbitMQBroker:
    """RabbitMQ at an ``amqp://`` or ``amqps://`` URL (seconds for the timeouts)."""

    def __init__(
        self,
        url: str,
        *,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        names: MessagingNames = DEFAULT_NAMES,
    ) -> None:
        self.url = url
        self.names = names
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout

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
        )

    def consumer_connections(self, bindings: QueueBindings, *, prefetch: int) -> ConnectionOpener:
        return amqp_consumer_connections(
            self.url,
            bindings,
            prefetch=prefetch,
            timeout=self._connect_timeout,
            exchange=self.names.exchange,
        )

    async def close(self) -> None:
        return None


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
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._memory = InMemoryBroker(path=path)
        self._limit = backstop_delivery_limit

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


def broker_for(
    url: str,
    *,
    embedded_path: str | None = None,
    publish_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    names: MessagingNames = DEFAULT_NAMES,
) -> Broker:
    """The broker a URL names: RabbitMQ for ``amqp(s)://``, the embedded one (its queues at
    ``embedded_path``) for ``memory://``. Raises UnsupportedBrokerError otherwise."""
    if url.startswith(AMQP_SCHEMES):
        return RabbitMQBroker(
            url, publish_timeout=publish_timeout, connect_timeout=connect_timeout, names=names
        )
    if url.startswith(EMBEDDED_SCHEME):
        return EmbeddedBroker(embedded_path, names=names)
    scheme = url.split("://", 1)[0] if "://" in url else url[:20]
    raise UnsupportedBrokerError(
        f"no broker for {scheme!r}: use amqp://user:password@host:5672/vhost (RabbitMQ) "
        "or memory:// (the embedded broker, inside `python -m app dev`)"
    )
