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

from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.store import OutboxStore, store_for
from cloudcrm_outbox.storage.tables import outbox_tables
from cloudcrm_outbox.times import as_utc, utc_text


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
            "failed_at": utc_text(self.failed_at),
        }


@dataclass(frozen=True)
class FailedSelection:
    """Which failed rows a replay takes: those whose id is in ``ids`` (None: all), of
    ``event_type`` when given, whose last error contains ``error_contains`` when given."""

    ids: Collection[uuid.UUID] | None = None
    event_type: str | None = None
    error_contains: str | None = None


def _failed_where(
    names: MessagingNames, selection: FailedSelection, store: OutboxStore
) -> ColumnElement[bool]:
    outbox = outbox_tables(names).outbox
    # Failed and never published: a row both published and failed (written by hand, or
    # by another version) must not be sent again by a replay of "the failed ones".
    conditions: list[ColumnElement[bool]] = [
        outbox.c.failed_at.is_not(None),
        outbox.c.published_at.is_(None),
    ]
    if selection.ids is not None:
        conditions.append(outbox.c.id.in_(list(selection.ids)))
    if selection.event_type is not None:
        conditions.append(outbox.c.event_type == selection.event_type)
    if selection.error_contains is not None:
        # Case-sensitive on both databases (SQLite's LIKE ignores ASCII case), and the
        # operator's text matched as written (no LIKE wildcards).
        conditions.append(store.contains(outbox.c.last_error, selection.error_contains))
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
    store = store_for(engine.dialect)
    query = (
        select(outbox.c.id, outbox.c.event_type, outbox.c.attempts, outbox.c.last_error,
               outbox.c.failed_at)
        .where(_failed_where(names, FailedSelection(event_type=event_type), store))
        .order_by(outbox.c.failed_at, outbox.c.id)
        .limit(limit)
    )  # fmt: skip
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [FailedRow(row[0], row[1], row[2], row[3], as_utc(row[4])) for row in rows]


def restarted() -> dict[str, Any]:
    """The columns of a row sent back to pending, whatever it was: no attempts counted,
    no error, not unroutable, due now (the database clock)."""
    return {
        "attempts": 0,
        "last_error": None,
        "unroutable_since": None,
        "next_attempt_at": db_now_plus(0),
    }


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
    where = _failed_where(names, selection, store_for(engine.dialect))
    async with engine.begin() as connection:
        if dry_run:
            return list((await connection.execute(select(outbox.c.id).where(where))).scalars())
        statement = (
            update(outbox).where(where).values(failed_at=None, **restarted()).returning(outbox.c.id)
        )
        return list((await connection.execute(statement)).scalars())


@dataclass(frozen=True)
class OutboxEvent:
    """One outbox row as an operator follows it: its id (the message id), event type, when
    it was written, published and failed (UTC; None when not), attempts and last error."""

    id: uuid.UUID
    event_type: str
    created_at: datetime
    published_at: datetime | None
    failed_at: datetime | None
    attempts: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        def moment(value: datetime | None) -> str | None:
            return None if value is None else utc_text(value)

        return {
            "id": str(self.id),
            "event_type": self.event_type,
            "created_at": utc_text(self.created_at),
            "published_at": moment(self.published_at),
            "failed_at": moment(self.failed_at),
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


async def events_about(
    engine: AsyncEngine,
    *,
    field: str,
    value: str,
    limit: int = 100,
    names: MessagingNames = DEFAULT_NAMES,
) -> list[OutboxEvent]:
    """The outbox rows whose payload's top-level ``field`` (camelCase, as on the wire) is
    ``value``, oldest first: how an operator finds an order's message ids. It reads the
    rows the outbox retains (no index serves an arbitrary field): an operator's lookup,
    not a hot path."""
    outbox = outbox_tables(names).outbox
    query = (
        select(outbox.c.id, outbox.c.event_type, outbox.c.created_at, outbox.c.published_at,
               outbox.c.failed_at, outbox.c.attempts, outbox.c.last_error)
        .where(outbox.c.payload[field].as_string() == value)
        .order_by(outbox.c.created_at, outbox.c.id)
        .limit(limit)
    )  # fmt: skip
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        OutboxEvent(row[0], row[1], as_utc(row[2]), _maybe_utc(row[3]), _maybe_utc(row[4]),
                    row[5], row[6])
        for row in rows
    ]  # fmt: skip


def _maybe_utc(value: datetime | str | None) -> datetime | None:
    return None if value is None else as_utc(value)


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
            "processed_at": utc_text(self.processed_at),
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


async def latest_inbox_entries(
    engine: AsyncEngine,
    *,
    consumer: str,
    limit: int = 20,
    names: MessagingNames = DEFAULT_NAMES,
) -> list[InboxEntry]:
    """``consumer``'s ``limit`` most recent inbox rows, newest first (through the
    ``processed_at`` index)."""
    inbox = outbox_tables(names).inbox
    query = (
        select(inbox.c.message_id, inbox.c.processed_at, inbox.c.outcome)
        .where(inbox.c.consumer == consumer)
        .order_by(inbox.c.processed_at.desc())
        .limit(limit)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [InboxEntry(consumer, row[0], as_utc(row[1]), row[2]) for row in rows]
