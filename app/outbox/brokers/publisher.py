"""The seam between the relay and a broker: RabbitMQ (aio-pika) or the in-memory broker."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# How a nacked row's last_error starts (the relay's claim reads it back: see RelayPolicy).
NACKED_PREFIX = "nacked by the broker"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One outbox row, ready for the wire."""

    message_id: uuid.UUID
    event_type: str
    body: bytes
    headers: Mapping[str, str]
    created_at: datetime
    # Where the exchange routes it: the event name, or for a keyed event its name and its
    # key's partition (``MessagingNames.routing_key``). None: the event name.
    routing_key: str | None = None

    @property
    def route(self) -> str:
        """The routing key it is published with."""
        return self.routing_key or self.event_type


@dataclass(slots=True)
class PublishResult:
    """What the broker said about a batch.

    ``confirmed``: acknowledged by the broker (publisher confirm), safe to mark published.
    ``rejected``: refused or impossible to encode, with the reason; these are the
    message's own failures and count as an attempt.
    ``nacked``: negatively confirmed (basic.nack), with the reason. RabbitMQ nacks only when
    a queue could not take the message now (an internal error of the queue, a full queue
    with ``reject-publish``, a quorum queue between leaders: rabbitmq.com/docs/confirms),
    never for the message itself: retried later without counting an attempt.
    ``unroutable``: returned as NO_ROUTE (no queue bound to its routing key yet), with the
    reason; not the message's fault, retried for a long time (the topology may come).
    ``broken``: the connection failed; the messages in neither list have an unknown fate
    and are left pending without counting an attempt (it was not their fault).
    """

    confirmed: list[uuid.UUID] = field(default_factory=list)
    rejected: dict[uuid.UUID, str] = field(default_factory=dict)
    unroutable: dict[uuid.UUID, str] = field(default_factory=dict)
    broken: BaseException | None = None
    nacked: dict[uuid.UUID, str] = field(default_factory=dict)


class Publisher(Protocol):
    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Publish all of ``messages`` (pipelined) and report each one's fate."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...
