"""Listing, replaying and purging the embedded broker's dead-letter queues (the same
operations, and the same guarantees, as ``amqp_dead_letters`` on RabbitMQ)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from cloudcrm_outbox.brokers.dead_letters import (
    NO_MESSAGE_ID,
    DeadLetter,
    DeadLetterSelection,
    DeadLetterSummary,
    dead_letter_from,
    in_death_order,
)
from cloudcrm_outbox.brokers.embedded.queue_file import QueueFile
from cloudcrm_outbox.brokers.embedded.queues import MemoryQueue


def summary(dlq: MemoryQueue) -> DeadLetterSummary:
    """Depth and oldest age: the embedded broker can look without delivering."""
    letters = [dead_letter_from(e) for e in dlq.ready]
    deaths = [letter.first_death_at for letter in letters if letter.first_death_at]
    oldest = (datetime.now(UTC) - min(deaths)).total_seconds() if deaths else None
    return DeadLetterSummary(len(letters), None if oldest is None else round(oldest, 3))


def list_dead_letters(dlq: MemoryQueue, *, limit: int) -> list[DeadLetter]:
    """The first ``limit`` dead letters in ``dlq``, left where they are."""
    return in_death_order([dead_letter_from(e) for e in list(dlq.ready)[:limit]])


def replay_dead_letters(
    store: QueueFile,
    dlq: MemoryQueue,
    owner: MemoryQueue,
    selection: DeadLetterSelection,
    *,
    limit: int,
) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """Put the selected dead letters back in ``owner`` (the queue they died in; stored),
    then remove them from ``dlq``; the replayed ones, and those left (no message id)."""
    chosen = [(e, dead_letter_from(e)) for e in list(dlq.ready)[:limit]]
    chosen = [(e, letter) for e, letter in chosen if selection.matches(letter)]
    left = [(letter, NO_MESSAGE_ID) for _, letter in chosen if not letter.message_id]
    chosen = [(e, letter) for e, letter in chosen if letter.message_id]
    copies = [
        (owner.name, replace(e, headers=letter.replay_headers(), returned=0, row=0))
        for e, letter in chosen
    ]
    # Stored in the owner's queue first, removed after: a crash between the two leaves a
    # duplicate (absorbed by the inbox), never a loss.
    owner.enqueue(store.insert(copies))
    dlq.remove([envelope for envelope, _ in chosen])
    return [letter for _, letter in chosen], left


def purge_dead_letters(
    dlq: MemoryQueue, selection: DeadLetterSelection, *, limit: int
) -> list[DeadLetter]:
    """Remove the selected dead letters from ``dlq`` for good; returns them."""
    chosen = [(e, dead_letter_from(e)) for e in list(dlq.ready)[:limit]]
    chosen = [(e, letter) for e, letter in chosen if selection.matches(letter)]
    dlq.remove([envelope for envelope, _ in chosen])
    return [letter for _, letter in chosen]
