"""The outbox on SQLite through aiosqlite: SQLAlchemy's statements as they are, one writer
at a time (writers queue on ``BEGIN IMMEDIATE``, ``engine``), and times compared as the
text the database clock writes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, String, Table, bindparam, func, type_coerce, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from cloudcrm_outbox.storage.store import NewOutboxRow


class _SqlAlchemySteps:
    """The claim and the marks as SQLAlchemy statements; the caller's ``begin()`` block
    opens and commits the transaction."""

    def __init__(self, claim: Any, mark_published: Any) -> None:
        self._claim = claim
        self._mark_published = mark_published

    async def claim(self, connection: AsyncConnection) -> Sequence[Any]:
        return (await connection.execute(self._claim)).all()

    async def mark_and_commit(
        self, connection: AsyncConnection, confirmed: list[uuid.UUID]
    ) -> None:
        if confirmed:
            await connection.execute(self._mark_published, {"ids": confirmed})


class SqliteStore:
    """The outbox's statements on SQLite (aiosqlite)."""

    name = "sqlite"

    async def insert_outbox_rows(
        self, connection: AsyncConnection, table: Table, rows: Sequence[NewOutboxRow]
    ) -> None:
        values = [
            {
                "id": r.id,
                "event_type": r.event_type,
                "payload": r.payload,
                "headers": r.headers,
                "message_key": r.message_key,
            }
            for r in rows
        ]
        await connection.execute(table.insert(), values)

    def relay_engine(self, engine: AsyncEngine) -> AsyncEngine:
        return engine

    def relay_steps(
        self, claim: Any, mark_published: Any, mark_published_sql: str, dialect: Dialect
    ) -> _SqlAlchemySteps:
        return _SqlAlchemySteps(claim, mark_published)

    async def record_inbox_rows(
        self,
        session: AsyncSession,
        table: Table,
        consumer: str,
        message_ids: list[uuid.UUID],
        outcome: str,
    ) -> set[uuid.UUID]:
        statement = sqlite.insert(table).on_conflict_do_nothing().returning(table.c.message_id)
        rows = [
            {"consumer": consumer, "message_id": mid, "outcome": outcome} for mid in message_ids
        ]
        return set((await session.scalars(statement, rows)).all())

    async def set_inbox_outcomes(
        self, session: AsyncSession, table: Table, consumer: str, outcomes: Mapping[uuid.UUID, str]
    ) -> None:
        statement = (
            update(table)
            .where(table.c.consumer == bindparam("b_consumer"))
            .where(table.c.message_id == bindparam("b_message_id"))
            .values(outcome=bindparam("b_outcome"))
        )
        await session.execute(
            statement,
            [{"b_consumer": consumer, "b_message_id": mid, "b_outcome": outcome}
             for mid, outcome in outcomes.items()],
        )  # fmt: skip

    async def set_lock_timeout(self, session: AsyncSession, seconds: float) -> None:
        """Nothing to bound: one writer at a time, queued at BEGIN IMMEDIATE."""

    def insert_ignoring_conflicts(
        self, table: Table, *, index_elements: Sequence[Any] | None = None
    ) -> Insert:
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)

    async def transaction_lock(self, session: AsyncSession, key: int) -> bool:
        """Always taken: the transaction is the only writer until it ends."""
        return True

    async def execute_each(
        self,
        connection: AsyncConnection,
        statement: Executable,
        parameters: Sequence[Mapping[str, Any]],
    ) -> list[bool]:
        matched: list[bool] = []
        for p in parameters:
            result = await connection.execute(statement, dict(p))
            matched.append(
                result.first() is not None if result.returns_rows else result.rowcount > 0
            )
        return matched

    def contains(self, column: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        return func.instr(column, needle) > 0

    def one_of(self, column: ColumnElement[Any], values: Sequence[str]) -> ColumnElement[bool]:
        return column.in_(list(values))

    def timestamp_bound(
        self, column: ColumnElement[Any], moment: datetime
    ) -> tuple[ColumnElement[Any], Any]:
        """SQLite keeps the database clock's timestamps as text to the millisecond
        ('2026-11-30 05:00:00.120'; whole seconds before that); a bound sent as
        '… 05:00:00.120000' sorts after it, and would leave out a row stamped at that very
        millisecond. So both sides are compared as text."""
        return type_coerce(column, String), _clock_text(moment)


def _clock_text(moment: datetime) -> str:
    # Without trailing zeros: '05:00:00.12' sorts just before '05:00:00.120' (the clock's
    # milliseconds) and '05:00:00.120000' (a time SQLAlchemy wrote), all the same instant,
    # so that ">= since" keeps them and "< until" leaves them out, as it should.
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return text + f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else text


SQLITE = SqliteStore()
