"""The embedded broker for tests, and the events the code under test staged in its outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.embedded.broker import EmbeddedBroker
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.storage.tables import outbox_tables


def embedded_broker() -> EmbeddedBroker:
    """A broker with RabbitMQ's semantics (confirms, routing, acks, dead letters) whose
    queues live in memory: nothing to start, nothing left behind."""
    return EmbeddedBroker(None)


@dataclass(frozen=True)
class StagedEvent:
    """One outbox row: an event the code under test published (``body`` in camelCase)."""

    message_id: uuid.UUID
    event_type: str
    body: dict[str, Any]
    headers: dict[str, Any]
    published: bool


async def staged_events(
    engine: AsyncEngine,
    *,
    event_type: str | None = None,
    published: bool | None = None,
    names: MessagingNames = DEFAULT_NAMES,
) -> list[StagedEvent]:
    """The outbox rows in ``engine``'s database, oldest first; only ``event_type``'s, and
    only the published (True) or unpublished (False) ones when given."""
    OUTBOX = outbox_tables(names).outbox  # noqa: N806 - the table, as everywhere else
    query = select(
        OUTBOX.c.id, OUTBOX.c.event_type, OUTBOX.c.payload, OUTBOX.c.headers,
        OUTBOX.c.published_at,
    ).order_by(OUTBOX.c.created_at, OUTBOX.c.id)  # fmt: skip
    if event_type is not None:
        query = query.where(OUTBOX.c.event_type == event_type)
    if published is not None:
        state = OUTBOX.c.published_at
        query = query.where(state.is_not(None) if published else state.is_(None))
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        StagedEvent(
            row.id, row.event_type, row.payload, row.headers or {}, row.published_at is not None
        )
        for row in rows
    ]
