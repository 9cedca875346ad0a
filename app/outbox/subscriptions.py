"""What a consuming service registers: an event contract and the batch handler for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox.events import IntegrationEvent

# A handler applies a batch of events (in delivery order) inside the consumer's
# transaction and returns one outcome per event, in the same order. It never commits.
BatchHandler = Callable[[AsyncSession, Sequence[Any]], Awaitable[Sequence[str]]]

# The usual outcome. The inbox row is written with it up front, so only the other
# outcomes (a rejection, say) cost an UPDATE in the consumer's transaction.
APPLIED = "applied"

# Turns the body of one older, breaking version of an event (the parsed JSON object,
# camelCase keys) into the body of its current version, which is then validated as usual.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Subscription:
    """An event a service consumes: its contract, its batch handler, and older versions.

    ``event`` is the contract at its current ``event_version``; a message of that version
    (or without an ``event_version`` header) is read with it, unknown fields ignored.
    ``upcasters`` maps an older version N to the ``Upcaster`` from N's body to the current
    one; a message of any other version is dead-lettered as ``unsupported version N``. One
    whose upcaster raises is dead-lettered too (a pure function of the body: it would raise
    again on every redelivery).
    Raises ``ValueError`` when an upcaster is keyed by the current version.
    """

    event: type[IntegrationEvent]
    handle: BatchHandler
    # Not hashed: a dict is not hashable, and the event already identifies a subscription.
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.event.event_version in self.upcasters:
            raise ValueError(
                f"an upcaster for version {self.event.event_version} of {self.name}, "
                "which is the current version"
            )

    @property
    def name(self) -> str:
        return self.event.event_name


def by_event_name(subscriptions: Sequence[Subscription]) -> dict[str, Subscription]:
    """The subscriptions keyed by routing key (= AMQP ``type``); names must be unique."""
    index = {subscription.name: subscription for subscription in subscriptions}
    if len(index) != len(subscriptions):
        raise ValueError("two subscriptions for the same event")
    return index
