"""Taking deliveries in batches, and counting a message's earlier deliveries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.inbox.holding import Holding
from cloudcrm_outbox.inbox.policy import ConsumerPolicy


async def next_batch(
    inbound: asyncio.Queue[Delivery],
    stop: asyncio.Event,
    closed: asyncio.Future[Any],
    holding: Holding,
    policy: ConsumerPolicy,
    *,
    fresh_first: bool = False,
) -> list[Delivery]:
    """The next batch: parked messages now due, or else deliveries, up to
    ``policy.batch_size``, waiting at most ``policy.batch_window_seconds`` for more
    after the first. ``fresh_first``: deliveries first if any are waiting (the last
    batch was parked ones). Empty when stopping, when a parked message falls due, or
    raises ConnectionError when ``closed`` (the connection or consumer ended)."""
    if closed.done():
        raise ConnectionError("the broker closed the connection or cancelled the consumer")
    # Parked messages are retried apart from fresh deliveries, and in turn with them: a
    # parked one whose row is still locked fails its batch, which must not be the fresh
    # ones' too, nor keep them waiting round after round.
    parked = [] if fresh_first and not inbound.empty() else holding.due(policy.batch_size)
    if parked:
        return parked
    first = asyncio.ensure_future(inbound.get())
    stopping = asyncio.ensure_future(stop.wait())
    waits: set[asyncio.Future[Any]] = {first, stopping, closed}
    await asyncio.wait(
        waits, timeout=holding.seconds_to_next(), return_when=asyncio.FIRST_COMPLETED
    )
    stopping.cancel()
    if not first.done():
        first.cancel()
        return []  # stopping, the connection is gone, or a parked message is due
    batch = [first.result()]
    deadline = time.monotonic() + policy.batch_window_seconds
    while len(batch) < policy.batch_size:
        batch += take(inbound, policy.batch_size - len(batch))
        remaining = deadline - time.monotonic()
        if len(batch) >= policy.batch_size or remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(inbound.get(), timeout=remaining))
        except TimeoutError:
            break
    return batch


def delivery_count(message: Delivery) -> int:
    """Earlier deliveries of ``message`` that were returned (RabbitMQ quorum queues'
    ``x-delivery-count`` header; absent on a first delivery from other queues)."""
    if not getattr(message, "redelivered", True):
        # A first delivery has failed nowhere, whatever a publisher put in the header.
        return 0
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) and count >= 0 else 0


def take(inbound: asyncio.Queue[Delivery], limit: int) -> list[Delivery]:
    taken: list[Delivery] = []
    while len(taken) < limit and not inbound.empty():
        taken.append(inbound.get_nowait())
    return taken
