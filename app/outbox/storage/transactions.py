"""Transactions whose own SQL opens and closes them, on PostgreSQL: ``BEGIN; <claim>`` and
``<marks>; COMMIT``, each one message of the simple query protocol (the relay's batches)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloudcrm_outbox.storage.engine import driver_connection, is_psycopg


def self_delimiting(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for transactions whose own SQL opens and closes them (``BEGIN; …`` and
    ``…; COMMIT`` through ``simple_query``): on PostgreSQL its connections are left in
    autocommit, so psycopg sends no BEGIN of its own (a round trip); SQLAlchemy restores the
    pool's setting when a connection goes back, and its rollback at a failed block's end
    still closes a transaction left open (psycopg acts on the server's status). On SQLite,
    ``engine`` itself.

    Anything run before that BEGIN or after that COMMIT commits on its own: only for code
    that runs no one else's (the relay's batches), never for sessions that run handlers,
    whose after_begin listeners, flushes and before_commit hooks would escape."""
    if is_psycopg(engine.dialect):
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


async def simple_query(
    connection: AsyncConnection,
    sql: str,
    parameters: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    row_factory: Any = None,
) -> list[Any]:
    """Run ``sql`` — one or several statements, such as ``BEGIN; <claim>`` or
    ``<update>; COMMIT`` — as ONE message of PostgreSQL's simple query protocol (one round
    trip; PostgreSQL docs, "Multiple Statements in a Simple Query"), with ``parameters``
    bound by psycopg's client-side cursor (quoted as literals). Returns the rows of the
    last statement that returns rows ([] if none does).

    Cheaper than psycopg's pipeline mode for the same round trips: measured here, a claim,
    mark and commit of one row took 0.31-0.35 ms of client CPU against 0.68-0.75 ms.
    Raises psycopg.Error as the statement that failed raised it; the statements after it
    in ``sql`` are not run (the transaction is then aborted: the caller rolls back)."""
    driver = await driver_connection(connection)
    rows: list[Any] = []
    from psycopg import AsyncClientCursor  # PostgreSQL only: the library runs without it
    from psycopg.rows import tuple_row

    async with AsyncClientCursor(driver, row_factory=row_factory or tuple_row) as cursor:
        await cursor.execute(sql, parameters)
        while True:
            if cursor.description is not None:
                rows = await cursor.fetchall()
            if not cursor.nextset():
                return rows
