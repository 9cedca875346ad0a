"""Listing, replaying and purging the embedded broker's dead-letter queues (the same
operations, and the same guarantees, as ``amqp_dead_letters`` on RabbitMQ)."""

from __future__ import annotations

from dataclasses import replace

from app.outbox.dead_letters import DeadLetter, DeadLetterSelection, dead_letter_of
from app.outbox.memory import InMemoryBroker
from app.outbox.queue_file import Envelope


def list_dead_letters(broker: InMemoryBroker, queue: str, *, limit: int) -> list[DeadLetter]:
    """The first ``limit`` dead letters in ``queue``, left where they are."""
    found = broker.queues.get(queue)
    return [_letter(e) for e in list(found.ready)[:limit]] if found else []


def replay_dead_letters(
    broker: InMemoryBroker, queue: str, selection: DeadLetterSelection, *, limit: int
) -> tuple[list[DeadLetter], dict[str, str]]:
    """Route the selected dead letters again (stored), then remove them from ``queue``;
    the replayed ones, and the reasons of those left (unroutable)."""
    found = broker.queues.get(queue)
    if found is None:
        return [], {}
    replayed: list[tuple[Envelope, DeadLetter]] = []
    refused: dict[str, str] = {}
    copies: list[tuple[str, Envelope]] = []
    for envelope in list(found.ready)[:limit]:
        letter = _letter(envelope)
        if not selection.matches(letter):
            continue
        bound = broker.bound_queues(letter.routing_key)
        if not bound:
            refused[letter.message_id or "?"] = "unroutable"
            continue
        copy = replace(envelope, headers=letter.replay_headers(), returned=0, row=0)
        copy = replace(copy, routing_key=letter.routing_key)
        copies += [(name, copy) for name in bound]
        replayed.append((envelope, letter))
    # Stored in the target queues first, removed after: a crash between the two
    # leaves a duplicate (absorbed by the inbox), never a loss.
    stored = broker.store.insert(copies)
    found.remove([envelope for envelope, _ in replayed])
    for (name, _), envelope in zip(copies, stored, strict=True):
        broker.queues[name].enqueue([envelope])
    return [letter for _, letter in replayed], refused


def purge_dead_letters(
    broker: InMemoryBroker, queue: str, selection: DeadLetterSelection, *, limit: int
) -> list[DeadLetter]:
    """Remove the selected dead letters from ``queue`` for good; returns them."""
    found = broker.queues.get(queue)
    if found is None:
        return []
    chosen = [(e, _letter(e)) for e in list(found.ready)[:limit]]
    chosen = [(e, letter) for e, letter in chosen if selection.matches(letter)]
    found.remove([envelope for envelope, _ in chosen])
    return [letter for _, letter in chosen]


def _letter(envelope: Envelope) -> DeadLetter:
    return dead_letter_of(
        body=envelope.body,
        headers=envelope.headers,
        message_id=envelope.message_id,
        event_type=envelope.type,
        routing_key=envelope.routing_key,
        content_type=envelope.content_type,
        correlation_id=envelope.correlation_id,
        timestamp=envelope.timestamp,
    )
