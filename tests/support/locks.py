"""Holding a PostgreSQL table locked from the test, to stall the transactions that need it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql

from tests.conftest import query
from tests.support import postgres


@asynccontextmanager
async def table_locked(url: str, table: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction holding ``table`` in ACCESS EXCLUSIVE mode until the block ends or the
    caller rolls the yielded connection back."""
    async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(url)) as connection:
        lock = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))
        await connection.execute(lock)
        yield connection


async def sessions_waiting_on_locks(url: str) -> int:
    """How many sessions of ``url``'s database wait for a lock now."""
    [(waiting,)] = await query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'",
    )
    return int(waiting)
