"""One interface to a message broker, chosen once from its URL: RabbitMQ or the embedded one.

The relay publishes through a broker's ``publisher``, a consumer takes deliveries through
its ``consumer_connections``, ``declare`` makes the exchange, queues, dead letters and
bindings, and the dead-letter operations let an operator list, replay and purge what the
consumers gave up on. Nothing else in the outbox asks which broker it runs on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.outbox.consumer_connection import ConnectionOpener
from app.outbox.dead_letters import (
    DLQ_LIMIT,
    DeadLetter,
    DeadLetterSelection,
    DeadLetterSummary,
    ReplayResult,
)
from app.outbox.embedded_broker import EmbeddedBroker
from app.outbox.names import DEFAULT_NAMES, MessagingNames
from app.outbox.publish_path import PublishPath
from app.outbox.publisher import Publisher
from app.outbox.queue_state import QueueState
from app.outbox.rabbitmq_broker import RabbitMQBroker
from app.outbox.topology import QueueBindings

__all__ = [
    "AMQP_SCHEMES",
    "Broker",
    "EmbeddedBroker",
    "RabbitMQBroker",
    "UnsupportedBrokerError",
    "broker_for",
]

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

    async def queue_state(self, queue: str) -> QueueState | None:
        """``queue``'s ready messages and attached consumers, nothing delivered; None when
        it does not exist. Raises BrokerUnavailableError when the broker cannot be
        reached."""
        ...

    async def dead_letter_summary(self, service: str) -> DeadLetterSummary:
        """How many dead letters ``service`` has, and the oldest one's age when the broker
        can tell without delivering them (never on RabbitMQ: every look at a quorum queue's
        message counts as a delivery)."""
        ...

    async def dead_letters(self, service: str, *, limit: int = DLQ_LIMIT) -> list[DeadLetter]:
        """The first ``limit`` messages of ``service``'s dead-letter queue, left there.
        Raises BrokerUnavailableError when the broker cannot be reached."""
        ...

    async def replay_dead_letters(
        self, service: str, selection: DeadLetterSelection, *, limit: int = DLQ_LIMIT
    ) -> ReplayResult:
        """Republish the selected dead letters (among the first ``limit``) to ``service``'s
        own queue with their message id, with publisher confirms; each leaves the
        dead-letter queue only once its copy is confirmed. Raises DeadLetterOperationError
        (what was done) when the broker fails midway."""
        ...

    async def purge_dead_letters(
        self, service: str, selection: DeadLetterSelection, *, limit: int = DLQ_LIMIT
    ) -> list[DeadLetter]:
        """Delete the selected dead letters (among the first ``limit``); returns them."""
        ...

    async def close(self) -> None:
        """Release what the broker itself holds (publishers and consumer connections
        close their own)."""
        ...


class UnsupportedBrokerError(ValueError):
    """A broker URL of a scheme the outbox has no broker for."""


def broker_for(
    url: str,
    *,
    embedded_path: str | None = None,
    publish_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    names: MessagingNames = DEFAULT_NAMES,
    publish_path: PublishPath = "auto",
) -> Broker:
    """The broker a URL names: RabbitMQ for ``amqp(s)://`` (its publishers writing batches
    by ``publish_path``), the embedded one (its queues at ``embedded_path``) for
    ``memory://``. Raises UnsupportedBrokerError otherwise."""
    if url.startswith(AMQP_SCHEMES):
        return RabbitMQBroker(
            url,
            publish_timeout=publish_timeout,
            connect_timeout=connect_timeout,
            names=names,
            publish_path=publish_path,
        )
    if url.startswith(EMBEDDED_SCHEME):
        return EmbeddedBroker(embedded_path, names=names)
    scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
    raise UnsupportedBrokerError(
        f"no broker for {scheme!r}: use amqp://USER:PASSWORD@HOST:5672/VHOST (RabbitMQ) "
        "or memory:// (the embedded broker, inside `python -m app dev`)"
    )
