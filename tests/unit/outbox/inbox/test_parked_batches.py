"""Parked messages come back apart from fresh deliveries, and in turn with them, so that a
row locked for long holds up neither every new batch nor round after round of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.inbox.batches import next_batch
from cloudcrm_outbox.inbox.holding import Holding
from cloudcrm_outbox.inbox.policy import ConsumerPolicy


@dataclass
class FakeDelivery:
    delivery_tag: int
    body: bytes = b"{}"
    message_id: str | None = None
    type: str | None = "OrderPlaced"
    content_type: str | None = "application/json"
    headers: dict[str, Any] = field(default_factory=dict)
    routing_key: str | None = None
    correlation_id: str | None = None
    timestamp: None = None
    user_id: str | None = None

    async def ack(self, multiple: bool = False) -> None:
        return None

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        return None


async def _next(holding: Holding, inbound: asyncio.Queue[Delivery], **kwargs: Any) -> list[int]:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    batch = await next_batch(inbound, asyncio.Event(), never, holding, ConsumerPolicy(), **kwargs)
    return [message.delivery_tag or 0 for message in batch]


async def test_parked_messages_are_retried_apart_from_fresh_ones_and_in_turn() -> None:
    holding = Holding()
    inbound: asyncio.Queue[Delivery] = asyncio.Queue()
    for tag in (1, 2):
        holding.park(FakeDelivery(tag), base=0.0, cap=0.0, blocked=True)
    for tag in (3, 4):
        inbound.put_nowait(FakeDelivery(tag))
    assert holding.blocked

    # Due parked ones first, alone: not mixed into the fresh ones' batch.
    assert await _next(holding, inbound) == [1, 2]
    assert not holding.blocked  # handed back: none is parked for a lock any more
    holding.park(FakeDelivery(1), base=0.0, cap=0.0, blocked=True)
    # Parked again at once, but the fresh ones waiting have their turn first.
    assert await _next(holding, inbound, fresh_first=True) == [3, 4]
    assert await _next(holding, inbound, fresh_first=True) == [1]  # nothing fresh waits


async def test_only_parks_for_a_lock_count_as_blocked() -> None:
    holding = Holding()
    holding.park(FakeDelivery(7), base=10.0, cap=10.0)  # the database away, say
    assert not holding.blocked
    assert holding.was_parked(FakeDelivery(7)) and not holding.was_parked(FakeDelivery(8))
    holding.drop()
    assert not holding.was_parked(FakeDelivery(7))
