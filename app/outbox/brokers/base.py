"""One interface to a message broker: RabbitMQ or the embedded one (``broker_for`` picks it).

The relay publishes through a broker's ``publisher``, a consumer takes deliveries through
its ``consumer_connections``, ``declare`` makes the exchange, queues, dead letters and
bindings, and the dead-letter operations let an operator list, replay and purge what the
consumers gave up on. Nothing else in the outbox asks which broker it runs on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cloudcrm_outbox.brokers.connection import ConnectionOpener
from cloudcrm_outbox.brokers.dead_letters import (
    DLQ_LIMIT,
    DeadLetter,
    DeadLetterSelection,
    DeadLetterSummary,
    ReplayResult,
)
from cloudcrm_outbox.brokers.publisher import Publisher
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames, QueueBindings

__all__ = ["Broker", "BrokerOptions", "UnsupportedBrokerError"]


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """What ``broker_for`` hands a broker's factory besides the URL: ``embedded_path`` (the
    embedded broker's SQLite file, None for memory only), timeouts in seconds, the
    ``names`` it declares, and RabbitMQ's ``publish_path`` (``auto``, ``fast``, ``public``)."""

    embedded_path: str | None = None
    publish_timeout: float = 10.0
    connect_timeout: float = 10.0
    names: MessagingNames = DEFAULT_NAMES
    publish_path: str = "auto"


class Broker(Protocol):
    """What the outbox needs of a broker (connections are made on first use, not here).

    ``names``: the exchange and queue names it declares and uses."""

    names: MessagingNames
    display_name: str  # what log lines call it: "RabbitMQ", "the embedded broker"

    def location(self) -> str:
        """Where it is, for a log line or an error: never a credential."""
        ...

    async def ping(self) -> None:
        """Open and close one connection, bounded in time by the broker itself; raises the
        client's error when the broker does not answer (a no-op for the embedded one)."""
        ...

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
    """A broker URL of a scheme the outbox has no broker for, or whose broker's extra is not
    installed."""


def same_names(broker: Broker, names: MessagingNames) -> None:
    """Raise ValueError unless ``broker`` declares and uses ``names`` (a process's tables,
    queues and exchange must be named alike)."""
    if broker.names != names:
        raise ValueError(
            f"the broker is named by {broker.names!r} but the process by {names!r}: "
            "give broker_for(url, names=...) the process config's names"
        )
