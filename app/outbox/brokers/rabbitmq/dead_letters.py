"""Listing, replaying and purging a RabbitMQ dead-letter queue over AMQP alone (no
management plugin).

Messages are taken with ``basic.get`` without ack, at most as many as the queue held when
the operation began (a replayed message that dies again comes back to the queue and must
not be taken twice), and only once no other operation holds any (``amqp_dead_letter_holders``:
a reader running beside another would see only part of the queue, or none of it). The
ones the operation keeps are returned to the queue when its channel closes (AMQP 0-9-1:
unacked messages are requeued when their channel closes); a quorum queue does not keep
their order, so listings are sorted by time of death. A replay
acks a message only after the broker confirmed its copy (publisher confirms, ``mandatory``
to the owning service's queue through the default exchange), so a failure leaves it in the
queue: replayed twice at worst, which the inbox absorbs, never lost.

A quorum queue may ignore acks that arrive just before their channel closes and return
those messages (rabbitmq-server#10327, open): after its acks, an operation synchronises
with the broker and waits ``ACK_SETTLE_SECONDS`` before it closes; the operator's commands
then say how many dead letters remain.

On RabbitMQ 4 every quorum queue has a delivery limit (20 by default) and each listing
counts as a delivery of what it looks at: give the ``*.dlq`` queues a policy with
``delivery-limit: -1`` there (https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity, DeliveryError

from cloudcrm_outbox.brokers.dead_letters import (
    NO_MESSAGE_ID,
    DeadLetter,
    DeadLetterOperationError,
    DeadLetterSelection,
    dead_letter_from,
    in_death_order,
)
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.brokers.rabbitmq import nodes as broker_nodes
from cloudcrm_outbox.brokers.rabbitmq.dead_letter_holders import take_unheld, unheld_queue
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.logs import library_logger

logger = library_logger(__name__)

ACK_SETTLE_SECONDS = 1.0


@asynccontextmanager
async def _dead_letter_queue(
    url: str, queue: str, *, connect_timeout: float
) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue | None]]:
    try:
        async with asyncio.timeout(connect_timeout * broker_nodes.node_count(url)):
            connection = await broker_nodes.connect(url, node_timeout=connect_timeout)
    except Exception as exc:  # OSError, refused login, unknown vhost, a reset handshake…
        raise BrokerUnavailableError(f"cannot reach RabbitMQ: {exc!r:.300}") from exc
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            found: AbstractQueue | None = await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:  # never declared: nothing was ever dead-lettered
            found = None
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        yield channel, found
    except BrokerUnavailableError:
        raise
    except Exception as exc:  # the channel or connection failed midway
        raise BrokerUnavailableError(f"RabbitMQ failed: {exc!r:.300}") from exc
    finally:
        try:
            await connection.close()
        except Exception:  # already broken: the unacked messages return either way
            logger.debug("closing a broken connection failed", exc_info=True)


async def dead_letter_depth(url: str, queue: str, *, connect_timeout: float) -> int:
    """Messages in ``queue`` (passive declarations: nothing is delivered), counted once no
    other operation holds any; 0 when it does not exist. Raises BrokerUnavailableError
    (DeadLetterQueueBusyError when held for more than ``connect_timeout`` seconds)."""
    async with _dead_letter_queue(url, queue, connect_timeout=connect_timeout) as (channel, found):
        if found is None:
            return 0
        unheld = await unheld_queue(channel, queue, within=connect_timeout)
        return unheld.declaration_result.message_count or 0


async def queue_state(url: str, queue: str, *, connect_timeout: float) -> QueueState | None:
    """``queue``'s ready messages and consumers (a passive ``queue.declare``; RabbitMQ
    checks no configure, write or read permission for it, so any account of the vhost
    may ask); None when it does not exist. Raises BrokerUnavailableError."""
    async with _dead_letter_queue(url, queue, connect_timeout=connect_timeout) as (_, found):
        if found is None:
            return None
        declared = found.declaration_result
        return QueueState(declared.message_count or 0, declared.consumer_count or 0)


async def list_dead_letters(
    url: str, queue: str, *, limit: int, connect_timeout: float
) -> list[DeadLetter]:
    """The first ``limit`` dead letters of ``queue``, left where they are."""
    async with _dead_letter_queue(url, queue, connect_timeout=connect_timeout) as (channel, found):
        if found is None:
            return []
        taken = await take_unheld(channel, queue, limit, within=connect_timeout)
        return in_death_order([dead_letter_from(message) for message in taken])


Taken = tuple[AbstractIncomingMessage, DeadLetter]


async def replay_dead_letters(
    url: str,
    queue: str,
    selection: DeadLetterSelection,
    *,
    owner_queue: str,
    connect_timeout: float,
    limit: int,
) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """Publish the selected dead letters to ``owner_queue`` (confirmed), then remove them.

    Returns the replayed ones, and those left in the queue with why (the broker did not
    take the copy: ``unroutable`` when ``owner_queue`` does not exist; no message id).
    Raises DeadLetterOperationError, with those already replayed, when the broker fails."""
    replayed: list[DeadLetter] = []
    left: list[tuple[DeadLetter, str]] = []
    async with _dead_letter_queue(url, queue, connect_timeout=connect_timeout) as (channel, found):
        if found is None:
            return [], []
        # Before the try: a queue held by another operation is said as such (nothing done).
        messages = await take_unheld(channel, queue, limit, within=connect_timeout)
        try:
            taken = [(m, dead_letter_from(m)) for m in messages]
            chosen = [(m, letter) for m, letter in taken if selection.matches(letter)]
            left += [(letter, NO_MESSAGE_ID) for _, letter in chosen if not letter.message_id]
            chosen = [(m, letter) for m, letter in chosen if letter.message_id]
            # aiormq matches a returned message to its publish by message_id: two copies
            # with one id in flight at once could have a return charged to the wrong one.
            for wave in _unique_id_waves(chosen):
                confirms = await asyncio.gather(
                    *(channel.default_exchange.publish(_copy(letter), routing_key=owner_queue,
                                                       mandatory=True)
                      for _, letter in wave),
                    return_exceptions=True,
                )  # fmt: skip
                for (message, letter), confirm in zip(wave, confirms, strict=True):
                    if isinstance(confirm, DeliveryError):
                        left.append((letter, "unroutable"))
                    elif isinstance(confirm, BaseException):
                        raise confirm
                    else:
                        await message.ack()
                        replayed.append(letter)
            await _settle(channel, queue, acked=len(replayed))
        except Exception as exc:
            raise DeadLetterOperationError(replayed, exc) from exc
    return replayed, left


async def purge_dead_letters(
    url: str, queue: str, selection: DeadLetterSelection, *, connect_timeout: float, limit: int
) -> list[DeadLetter]:
    """Remove the selected dead letters for good; returns them. Raises
    DeadLetterOperationError, with those already removed, when the broker fails."""
    purged: list[DeadLetter] = []
    async with _dead_letter_queue(url, queue, connect_timeout=connect_timeout) as (channel, found):
        if found is None:
            return []
        taken = await take_unheld(channel, queue, limit, within=connect_timeout)
        try:
            for message in taken:
                letter = dead_letter_from(message)
                if selection.matches(letter):
                    await message.ack()
                    purged.append(letter)
            await _settle(channel, queue, acked=len(purged))
        except Exception as exc:
            raise DeadLetterOperationError(purged, exc) from exc
    return purged


async def _settle(channel: AbstractChannel, queue: str, *, acked: int) -> None:
    """Let the acks reach the queue before the channel closes (rabbitmq-server#10327)."""
    if acked:
        await channel.declare_queue(queue, passive=True)  # a round trip: the acks are in
        await asyncio.sleep(ACK_SETTLE_SECONDS)


def _unique_id_waves(chosen: list[Taken]) -> list[list[Taken]]:
    """``chosen`` in waves in which no message id appears twice."""
    waves: list[list[Taken]] = []
    for item in chosen:
        key = item[1].message_id
        for wave in waves:
            if all(other.message_id != key for _, other in wave):
                wave.append(item)
                break
        else:
            waves.append([item])
    return waves


def _copy(letter: DeadLetter) -> aio_pika.Message:
    return aio_pika.Message(
        letter.body,
        headers=letter.replay_headers(),
        message_id=letter.message_id,
        type=letter.event_type,
        content_type=letter.content_type,
        correlation_id=letter.correlation_id,
        timestamp=letter.timestamp,
        user_id=letter.user_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
