"""What a consuming service registers: an event contract and the batch handler for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.outbox.events import IntegrationEvent

# A handler applies a batch of events (in delivery order) inside the consumer's
# transaction and returns one outcome per event, in the same order. It never commits.
BatchHandler = Callable[[AsyncSession, Sequence[Any]], Awaitable[Sequence[str]]]

# The usual outcome. The inbox row is written with it up front, so only the other
# outcomes (a rejection, say) cost an UPDATE in the consumer's transaction.
APPLIED = "applied"


@dataclass(frozen=True)
class Subscription:
    event: type[IntegrationEvent]
    handle: BatchHandler

    @property
    def name(self) -> str:
        return self.event.event_name


def by_event_name(subscriptions: Sequence[Subscription]) -> dict[str, Subscription]:
    """The subscriptions keyed by routing key (= AMQP ``type``); names must be unique."""
    index = {subscription.name: subscription for subscription in subscriptions}
    if len(index) != len(subscriptions):
        raise ValueError("two subscriptions for the same event")
    return index
