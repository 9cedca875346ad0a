"""What an operator repairs in an outbox and looks up in an inbox: failed rows, listed and
put back to pending; the outcome of one message.

A row fails when it was rejected ``max_attempts`` times or stayed unroutable past the give-up
time; it is kept, never deleted by retention (only published rows are), so it can be
replayed once its cause is fixed. A replay puts the rows back exactly as new ones: no
attempts, no failure, no error, due now, in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.outbox.clock import as_utc, db_now_plus
from app.outbox.models import outbox_tables
from app.outbox.names import DEFAULT_NAMES, MessagingNames


@dataclass(frozen=True)
class FailedRow:
    """A failed outbox row: its id (the message id), event type, attempts made, the last
    error, and when it failed (the database's clock, UTC)."""

    id: uuid.UUID
    event_type: str
    attempts: int
    last_error: str | None
    failed_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "event_type": self.event_type,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "failed_at": self.failed_at.isoformat(),
        }


@dataclass(frozen=True)
class FailedSelection:
    """Which failed rows a replay takes: those whose id is in ``ids`` (None: all), of
    ``event_type`` when given, whose last error contains ``error_contains`` when given."""

    ids: Collection[uuid.UUID] | None = None
    event_type: str | None = None
    error_contains: str | None = None


def _failed_where(names: MessagingNames, selection: FailedSelection) -> ColumnElement[bool]:
    outbox = outbox_tables(names).outbox
    conditions: list[ColumnElement[bool]] = [outbox.c.failed_at.is_not(None)]
    if selection.ids is not None:
        conditions.append(outbox.c.id.in_(list(selection.ids)))
    if selection.event_type is not None:
        conditions.append(outbox.c.event_type == selection.event_type)
    if selection.error_contains is not None:
        # contains() escapes % and _: the operator's text is matched as written.
        conditions.append(outbox.c.last_error.contains(selection.error_contains, autoescape=True))
    return and_(*conditions)


async def failed_rows(
    engine: AsyncEngine,
    *,
    event_type: str | None = None,
    limit: int = 100,
    names: MessagingNames = DEFAULT_NAMES,
) -> list[FailedRow]:
    """Failed rows, oldest failure first, at most ``limit`` (through the partial index of
    failed rows: never a scan of the published ones)."""
    outbox = outbox_tables(names).outbox
    query = (
        select(outbox.c.id, outbox.c.event_type, outbox.c.attempts, outbox.c.last_error,
               outbox.c.failed_at)
        .where(_failed_where(names, FailedSelection(event_type=event_type)))
        .order_by(outbox.c.failed_at, outbox.c.id)
        .limit(limit)
    )  # fmt: skip
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [FailedRow(row[0], row[1], row[2], row[3], as_utc(row[4])) for row in rows]


async def replay_failed(
    engine: AsyncEngine,
    selection: FailedSelection,
    *,
    dry_run: bool = False,
    names: MessagingNames = DEFAULT_NAMES,
) -> list[uuid.UUID]:
    """Put the selected failed rows back to pending (attempts 0, no failure, no error, due
    now) in one transaction; returns their ids. ``dry_run``: only which ones it would."""
    outbox = outbox_tables(names).outbox
    where = _failed_where(names, selection)
    async with engine.begin() as connection:
        if dry_run:
            return list((await connection.execute(select(outbox.c.id).where(where))).scalars())
        statement = (
            update(outbox)
            .where(where)
            .values(
                failed_at=None,
                attempts=0,
                last_error=None,
                unroutable_since=None,
                next_attempt_at=db_now_plus(0),
            )
            .returning(outbox.c.id)
        )
        return list((await connection.execute(statement)).scalars())


@dataclass(frozen=True)
class InboxEntry:
    """What a consumer did with one message: when (UTC) and with which outcome."""

    consumer: str
    message_id: uuid.UUID
    processed_at: datetime
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "message_id": str(self.message_id),
            "processed_at": self.processed_at.isoformat(),
            "outcome": self.outcome,
        }


async def inbox_entry(
    engine: AsyncEngine,
    *,
    consumer: str,
    message_id: uuid.UUID,
    names: MessagingNames = DEFAULT_NAMES,
) -> InboxEntry | None:
    """``consumer``'s inbox row for ``message_id``; None when it never processed it (or
    retention has removed the row)."""
    inbox = outbox_tables(names).inbox
    query = select(inbox.c.processed_at, inbox.c.outcome).where(
        inbox.c.consumer == consumer, inbox.c.message_id == message_id
    )
    async with engine.connect() as connection:
        row = (await connection.execute(query)).first()
    if row is None:
        return None
    return InboxEntry(consumer, message_id, as_utc(row[0]), row[1])
