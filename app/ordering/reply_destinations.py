"""Whether resending a Placed order's OrderPlaced could help: not while the last copy is
provably still queued with nobody to take it (Spring Modulith #1148, outboxkit #41: a
backlog republished during a consumer outage only multiplies).

The reply-timeout sweep asks the broker about the queues OrderPlaced is routed to (a
passive ``queue.declare`` on RabbitMQ: message and consumer counts, no permission needed,
so ordering's least-privilege relay account may ask). When every one of them holds
messages and has no consumer attached, a resend could not be handled before the copies
already there: the overdue orders are deferred, their retries unspent, and looked at
again after the same wait. Once a consumer is attached, the sweep resends as before, so
a copy the broker really lost is still repaired.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.brokers.queue_state import QueueState

logger = logging.getLogger(__name__)

Destinations = Callable[[], Awaitable[Sequence[QueueState | None]]]


def copies_still_queued(states: Sequence[QueueState | None]) -> bool:
    """True when every destination queue exists, holds messages and has no consumer (an
    empty list, or a queue missing: False, a resend may be the only copy)."""
    return bool(states) and all(
        state is not None and state.messages > 0 and state.consumers == 0 for state in states
    )


def destinations_on(broker: Broker, queues: Sequence[str]) -> Destinations:
    """Reads ``queues``' states on ``broker``, in that order."""

    async def states() -> list[QueueState | None]:
        return [await broker.queue_state(queue) for queue in queues]

    return states


async def resend_is_pointless(destinations: Destinations | None) -> bool:
    """``copies_still_queued`` of what ``destinations`` reports; False when there is
    none or the broker cannot tell (then the sweep resends, as it would without it)."""
    if destinations is None:
        return False
    try:
        return copies_still_queued(await destinations())
    except Exception as exc:  # the broker away, or refusing: resend as before
        logger.info(
            "cannot read the destination queues of OrderPlaced; resending overdue orders",
            extra={"error": repr(exc)[:300]},
        )
        return False
