"""Deleting old rows in bounded batches, one cleaner at a time per table.

Every relay and consumer runs retention on its own timer. Without coordination three
relays cleaning at once each scan for the same rows and wait on each other's row locks;
so each batch first takes a transaction-scoped advisory lock named after its table
(``pg_try_advisory_xact_lock``, PostgreSQL docs "Advisory Locks") and, when another
process holds it, this run ends at once: whoever holds it is deleting the same rows.
A transaction-scoped lock cannot outlive its transaction, whatever happens to the
process or its connection.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from sqlalchemy import Column, Table, delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Delete
from sqlalchemy.sql.elements import ColumnElement

from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.tables import outbox_tables

logger = library_logger(__name__)


def cleaner_lock_key(table_name: str) -> int:
    """The advisory lock key (a signed 64-bit integer, PostgreSQL's ``bigint`` form) of
    retention on ``table_name``: the same in every process and version."""
    digest = hashlib.blake2b(f"cloudcrm.retention:{table_name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def delete_in_batches(
    engine: AsyncEngine,
    table: Table,
    *,
    keys: Sequence[Column[object]],
    condition: ColumnElement[bool],
    age: ColumnElement[object],
    batch_size: int,
    pause_seconds: float = 0.0,
) -> int:
    """Delete the rows matching ``condition``, oldest ``age`` first, ``batch_size`` per
    transaction with ``pause_seconds`` between transactions; returns how many.

    ``condition`` must bound ``age`` by a value the planner can use (``db_now_plus``) and
    ``age`` be indexed: then a run costs what it deletes, not what the table holds. On
    PostgreSQL the run stops (returning what it deleted so far) when another process is
    cleaning the same table.
    """
    statement = batch_delete(table, keys=keys, condition=condition, age=age, limit=batch_size)
    lock_key = cleaner_lock_key(table.name)
    total = 0
    while True:
        async with engine.begin() as connection:
            if not await _cleaner_lock(connection, lock_key):
                logger.debug("another process is cleaning", extra={"table": table.name})
                return total
            deleted = (await connection.execute(statement)).rowcount
        total += deleted
        if deleted < batch_size:
            return total
        # A pause between batches: a long backlog of old rows is deleted at a pace that
        # leaves the database to the requests and the relays.
        await asyncio.sleep(pause_seconds)


def batch_delete(
    table: Table,
    *,
    keys: Sequence[Column[object]],
    condition: ColumnElement[bool],
    age: ColumnElement[object],
    limit: int,
) -> Delete:
    """One retention batch: ``DELETE`` the ``limit`` oldest (by ``age``) rows of ``table``
    matching ``condition``, found by their primary key ``keys``."""
    key = tuple_(*keys) if len(keys) > 1 else keys[0]
    oldest = select(*keys).where(condition).order_by(age).limit(limit)
    # The condition again on the DELETE itself: a row another transaction changed after the
    # subquery chose it (put back to pending by a republish) is re-checked against it when
    # its lock is released (PostgreSQL's EvalPlanQual re-checks the DELETE's own WHERE, not
    # the subquery's), and is then left alone.
    return delete(table).where(key.in_(oldest), condition)


async def _cleaner_lock(connection: AsyncConnection, key: int) -> bool:
    if connection.dialect.name != "postgresql":
        return True  # SQLite: one process (dev), whose writes are serialised anyway
    locked = await connection.scalar(select(func.pg_try_advisory_xact_lock(key)))
    return bool(locked)


async def delete_published_outbox_rows(
    engine: AsyncEngine,
    *,
    older_than_seconds: float,
    batch_size: int,
    pause_seconds: float = 0.0,
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
        age=outbox.c.published_at,
        batch_size=batch_size,
        pause_seconds=pause_seconds,
    )


async def delete_old_inbox_rows(
    engine: AsyncEngine,
    *,
    older_than_seconds: float,
    batch_size: int,
    pause_seconds: float = 0.0,
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
        age=inbox.c.processed_at,
        batch_size=batch_size,
        pause_seconds=pause_seconds,
    )
