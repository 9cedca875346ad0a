"""Reading a RabbitMQ dead-letter queue only while nobody else holds its messages.

A quorum queue cannot be browsed: a listing, a replay or a purge takes the dead letters
with ``basic.get`` and holds them unacked until it acks them or its channel closes (for a
10 MB dead letter, from a third of a second to seconds). Held, they are still in the
queue but not *ready*, and AMQP tells only ready messages (queue.declare-ok's
``message_count``): a reader running meanwhile counted 0 and listed nothing, and a
user was told a 10 MB dead letter had vanished from both queues.

RabbitMQ does tell who holds some: every ``basic.get`` not yet settled is a consumer of
the quorum queue in queue.declare-ok's ``consumer_count`` (rabbit_fifo keeps checked-out
messages per consumer; a closed channel's are returned to the queue, and its consumers
removed, in one step of the queue's state machine), and nothing of this project consumes a
``*.dlq``. So a reader waits until the queue has no consumer before it counts or takes;
one that then gets fewer messages than it counted (another reader started between its
look and its gets) gives its own back and tries again. A reader that waited longer than
it may says so (DeadLetterQueueBusyError): never "no dead letters" when there are some.
"""

from __future__ import annotations

import asyncio
import random

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from cloudcrm_outbox.errors import BrokerUnavailableError

_FIRST_PAUSE_SECONDS = 0.05
_LONGEST_PAUSE_SECONDS = 0.5


class DeadLetterQueueBusyError(BrokerUnavailableError):
    """Another operation (a listing, replay or purge still running, or a consumer someone
    attached to the queue) held the dead-letter queue's messages for longer than this
    reader may wait; nothing was read or changed."""


async def unheld_queue(channel: AbstractChannel, queue: str, *, within: float) -> AbstractQueue:
    """``queue`` passively declared at a moment when no consumer held any of its messages:
    its ``declaration_result.message_count`` is then every message in it.

    Polls with a growing, jittered pause (50 ms to 0.5 s). Raises DeadLetterQueueBusyError
    after ``within`` seconds, ChannelNotFoundEntity when the queue does not exist."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = _FIRST_PAUSE_SECONDS
    while True:
        declared = await channel.declare_queue(queue, passive=True)
        holders = declared.declaration_result.consumer_count or 0
        if not holders:
            return declared
        if loop.time() + pause > deadline:
            raise DeadLetterQueueBusyError(
                f"{queue} is held by another reader: {holders} consumer(s) hold its "
                f"messages (a dead-letter listing, replay or purge still running, or a "
                f"consumer attached to it) after {within:g} s of waiting; nothing was read "
                "or changed: try again once it ends"
            )
        await asyncio.sleep(pause * random.uniform(0.5, 1.0))
        pause = min(pause * 2, _LONGEST_PAUSE_SECONDS)


async def take_unheld(
    channel: AbstractChannel, queue: str, limit: int, *, within: float
) -> list[AbstractIncomingMessage]:
    """Up to ``limit`` of ``queue``'s messages, taken unacked on ``channel``: the first of
    those it held at a moment nobody else held any (never one that arrives meanwhile, such
    as a replayed message dead-lettered again), all of them when ``limit`` allows.

    Raises DeadLetterQueueBusyError after ``within`` seconds of others holding messages."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        declared = await unheld_queue(channel, queue, within=max(0.0, deadline - loop.time()))
        wanted = min(limit, declared.declaration_result.message_count or 0)
        taken: list[AbstractIncomingMessage] = []
        while len(taken) < wanted:
            message = await declared.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        if len(taken) == wanted:
            return taken
        # Another reader began between the look and the gets: what each holds is part of
        # the queue. Give ours back (the queue counts them as held until it has them) and
        # look again after a jittered pause, so the two do not collide again in step.
        if taken:
            await taken[-1].nack(multiple=True, requeue=True)
        await asyncio.sleep(random.uniform(_FIRST_PAUSE_SECONDS, 6 * _FIRST_PAUSE_SECONDS))
