"""Deleting old rows in bounded batches, so retention never holds long locks."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from app.outbox.clock import db_now_plus
from app.outbox.models import outbox_tables
from app.outbox.names import DEFAULT_NAMES, MessagingNames


async def delete_in_batches(
    engine: AsyncEngine,
    table: Table,
    *,
    keys: Sequence[Column[object]],
    condition: ColumnElement[bool],
    batch_size: int,
) -> int:
    """Delete the rows matching ``condition``, ``batch_size`` per transaction."""
    key = tuple_(*keys) if len(keys) > 1 else keys[0]
    statement = delete(table).where(key.in_(select(*keys).where(condition).limit(batch_size)))
    total = 0
    while True:
        async with engine.begin() as connection:
            deleted = (await connection.execute(statement)).rowcount
        total += deleted
        if deleted < batch_size:
            return total


async def delete_published_outbox_rows(
    engine: AsyncEngine,
    *,
    older_than_seconds: float,
    batch_size: int,
    names: MessagingNames = DEFAULT_NAMES,
) -> int:
    """Remove rows published more than ``older_than_seconds`` ago (by the database clock);
    returns how many.

    Pending and failed rows are never touched: only ``published_at`` qualifies a row.
    """
    outbox = outbox_tables(names).outbox
    return await delete_in_batches(
        engine,
        outbox,
        keys=[outbox.c.id],
        condition=outbox.c.published_at < db_now_plus(-older_than_seconds),
        batch_size=batch_size,
    )


async def delete_old_inbox_rows(
    engine: AsyncEngine,
    *,
    older_than_seconds: float,
    batch_size: int,
    names: MessagingNames = DEFAULT_NAMES,
) -> int:
    """Remove inbox rows processed more than ``older_than_seconds`` ago; returns how many.

    A message redelivered after its row is gone would be applied again, so the retention
    must exceed any redelivery delay (RabbitMQ redelivers within seconds to minutes).
    """
    inbox = outbox_tables(names).inbox
    condition: ColumnElement[bool] = inbox.c.processed_at < db_now_plus(-older_than_seconds)
    return await delete_in_batches(
        engine,
        inbox,
        keys=[inbox.c.consumer, inbox.c.message_id],
        condition=condition,
        batch_size=batch_size,
    )
