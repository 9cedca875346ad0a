"""A queue as the broker reports it without delivering anything."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueState:
    """``messages``: ready in the queue (not counting those delivered and unacked);
    ``consumers``: attached now. On RabbitMQ, the answer to a passive ``queue.declare``
    (AMQP 0-9-1 ``queue.declare-ok``: message-count, consumer-count)."""

    messages: int
    consumers: int
