"""What differs between the databases the outbox runs on, behind one interface.

``store_for(dialect)`` picks the implementation once (``postgres.PostgresStore`` or
``sqlite.SqliteStore``, as eventsourcing picks a recorder per database); the writer, the
relay, the inbox and the operator's repairs call it and never ask which database they are
on. A driver's own error is translated where it arises (``faults``, ``data_errors``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from cloudcrm_outbox.storage.engine import is_psycopg

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Executable


@dataclass(frozen=True, slots=True)
class NewOutboxRow:
    """One row ``write_events`` adds: the event's id, name, body and headers (JSON-ready),
    and its message key (None: unkeyed; the database numbers keyed rows)."""

    id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    headers: dict[str, Any]
    message_key: str | None = None


class RelaySteps(Protocol):
    """A relay batch's two database steps, each one round trip where the database allows:
    the claim (which opens the batch's transaction) and the marks (which commit it)."""

    async def claim(self, connection: AsyncConnection) -> Sequence[Any]:
        """The claimed rows (attribute access by column name)."""
        ...

    async def mark_and_commit(
        self, connection: AsyncConnection, confirmed: list[uuid.UUID]
    ) -> None:
        """Mark ``confirmed`` published and end the batch's transaction (or leave the
        commit to the caller's ``begin()`` block, where the database needs it)."""
        ...


class OutboxStore(Protocol):
    """One database's way of doing what the outbox needs beyond portable SQLAlchemy."""

    name: str  # "postgresql" or "sqlite"

    async def insert_outbox_rows(
        self, connection: AsyncConnection, table: Table, rows: Sequence[NewOutboxRow]
    ) -> None:
        """Insert ``rows`` into the outbox ``table`` in the caller's transaction."""
        ...

    def relay_engine(self, engine: AsyncEngine) -> AsyncEngine:
        """The engine the relay's batches run through (``relay_steps`` expects it)."""
        ...

    def relay_steps(
        self, claim: Any, mark_published: Any, mark_published_sql: str, dialect: Dialect
    ) -> RelaySteps:
        """The relay's claim and marks as this database runs them best (``claim``: the
        claim's Select; ``mark_published``: the marks' Update, ``:ids`` bound;
        ``mark_published_sql``: the same marks as SQL text, ``%(ids)s`` bound; ``dialect``:
        the engine's)."""
        ...

    async def record_inbox_rows(
        self,
        session: AsyncSession,
        table: Table,
        consumer: str,
        message_ids: list[uuid.UUID],
        outcome: str,
    ) -> set[uuid.UUID]:
        """Insert an inbox row (``outcome``) per id unless one exists; the ids inserted."""
        ...

    async def set_inbox_outcomes(
        self, session: AsyncSession, table: Table, consumer: str, outcomes: Mapping[uuid.UUID, str]
    ) -> None:
        """Set each inbox row's outcome, in the caller's transaction."""
        ...

    async def set_lock_timeout(self, session: AsyncSession, seconds: float) -> None:
        """Bound this transaction's waits on row locks (``seconds``); a no-op where writers
        never wait on a row (SQLite: one writer at a time)."""
        ...

    def insert_ignoring_conflicts(
        self, table: Table, *, index_elements: Sequence[Any] | None = None
    ) -> Insert:
        """``INSERT … ON CONFLICT DO NOTHING`` into ``table`` (on ``index_elements``, or
        any unique constraint); add ``.values()`` and ``.returning()`` as needed."""
        ...

    async def transaction_lock(self, session: AsyncSession, key: int) -> bool:
        """Try to take the lock ``key`` until the transaction ends; False when another
        transaction holds it (always True where writers are serialised already)."""
        ...

    async def execute_each(
        self,
        connection: AsyncConnection,
        statement: Executable,
        parameters: Sequence[Mapping[str, Any]],
    ) -> list[bool]:
        """Run ``statement`` once per parameter set, in order, in the caller's transaction;
        whether each run matched a row."""
        ...

    def contains(self, column: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        """``column`` holds ``needle`` (plain text, no pattern characters)."""
        ...

    def one_of(self, column: ColumnElement[Any], values: Sequence[str]) -> ColumnElement[bool]:
        """``column`` (text) equals one of ``values``: as one array parameter where the
        database takes one (the same statement text for any number of values, so its plan
        is reused; an IN list of 200 parameters was a third of the key gate's time)."""
        ...

    def timestamp_bound(
        self, column: ColumnElement[Any], moment: datetime
    ) -> tuple[ColumnElement[Any], Any]:
        """``column`` and ``moment`` in a form that compares them to the millisecond, as
        the database clock stores them (for ``>=`` and ``<``)."""
        ...


def store_for(dialect: Dialect) -> OutboxStore:
    """The store of ``dialect``'s database: PostgreSQL (psycopg 3) or SQLite (aiosqlite).
    Raises UnsupportedDatabaseError for any other database or driver."""
    if is_psycopg(dialect):
        from cloudcrm_outbox.storage.postgres import POSTGRES

        return POSTGRES
    from cloudcrm_outbox.storage.sqlite import SQLITE

    return SQLITE
