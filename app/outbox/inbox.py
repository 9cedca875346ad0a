"""Effectively-once processing: the inbox row and the handler's effect commit together.

For a batch of decoded messages, in ONE transaction:

    BEGIN; INSERT INTO inbox (consumer, message_id, outcome)  -- one round trip
        SELECT …, unnest(ids), 'applied'
        ON CONFLICT DO NOTHING RETURNING message_id -- the database decides what is new
    handlers apply the new events                  -- their effects, same transaction
    UPDATE inbox SET outcome = …                   -- only outcomes other than "applied"
    COMMIT                                         -- only then are the messages acked

The insert is the arbiter, never a prior SELECT: two consumers that receive the same
message race on the primary key, the second blocks until the first commits and then
inserts nothing, so it skips the effect. A redelivery after a crash (committed, not yet
acked) finds its row and is skipped the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy import bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.outbox.database import (
    SELF_DELIMITING,
    driver_connection,
    is_psycopg,
    make_sessionmaker,
    simple_query,
)
from app.outbox.decoding import Decoded
from app.outbox.models import outbox_tables
from app.outbox.names import DEFAULT_NAMES, MessagingNames
from app.outbox.subscriptions import APPLIED, Subscription
from app.outbox.tracing import consume_spans

# Rows are inserted as "applied", the usual outcome, and corrected a few statements later
# in the same transaction when a handler concluded otherwise; no other transaction can
# see a row before that.

_INSERT_ARRAY = (
    "INSERT INTO {table} (consumer, message_id, outcome) "
    "SELECT %s, unnest(CAST(%s AS uuid[])), %s "
    "ON CONFLICT DO NOTHING RETURNING message_id"
)
_SET_OUTCOMES = (
    "UPDATE {table} AS i SET outcome = c.outcome "
    "FROM unnest(CAST(%s AS uuid[]), CAST(%s AS varchar[])) AS c(message_id, outcome) "
    "WHERE i.consumer = %s AND i.message_id = c.message_id"
)


class AbortedTransactionError(RuntimeError):
    """A batch's transaction was aborted by a database error a handler caught: nothing of
    it can commit (PostgreSQL rolls back at COMMIT), so the batch fails instead."""


class InboxProcessor:
    """Applies batches of messages for one consumer name, each message at most once."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        consumer: str,
        subscriptions: Mapping[str, Subscription],
        names: MessagingNames = DEFAULT_NAMES,
    ) -> None:
        """``consumer``: the name its inbox rows carry; ``subscriptions`` by event name;
        ``names`` picks the inbox table."""
        # PostgreSQL: the batch's first statement is "BEGIN; INSERT INTO inbox …", one
        # round trip, on a connection taken SELF_DELIMITING; SQLite: SQLAlchemy's own
        # transaction. The sessions' bind stays the plain engine, which a handler may use.
        self._sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self._consumer = consumer
        self._subscriptions = subscriptions
        self._on_postgresql = is_psycopg(engine.dialect)
        inbox = outbox_tables(names).inbox
        dialect = postgresql if self._on_postgresql else sqlite
        self._insert = dialect.insert(inbox).on_conflict_do_nothing().returning(inbox.c.message_id)
        # A checked SQL name (MessagingNames).
        self._begin_and_insert = "BEGIN; " + _INSERT_ARRAY.format(table=inbox.name)
        self._set_outcomes = _SET_OUTCOMES.format(table=inbox.name)
        self._set_outcome = (
            update(inbox)
            .where(inbox.c.consumer == bindparam("b_consumer"))
            .where(inbox.c.message_id == bindparam("b_message_id"))
            .values(outcome=bindparam("b_outcome"))
        )

    async def process(self, messages: Sequence[Decoded]) -> dict[uuid.UUID, str]:
        """Apply the new messages among ``messages``; returns their outcomes by id.

        Messages already in the inbox (duplicates) get no entry. Raises on any database
        error, with nothing committed.
        """
        traced = [(m.message_id, m.event.event_name, m.traceparent) for m in messages]
        with consume_spans(traced):
            return await self._process(messages)

    async def _process(self, messages: Sequence[Decoded]) -> dict[uuid.UUID, str]:
        # COMMIT is SQLAlchemy's, at the block's end: its commit-time work (flushing staged
        # objects, before_commit hooks, releasing savepoints) runs inside the transaction.
        # (Sending the replies with a COMMIT of our own saved a round trip but moved that
        # work after the real COMMIT: tried, and dropped.)
        async with self._sessions() as session, session.begin():
            fresh = await self._record(session, messages)
            outcomes = await self._apply(session, fresh)
            corrected = {mid: o for mid, o in outcomes.items() if o != APPLIED}
            if not self._on_postgresql:
                if corrected:
                    await session.execute(self._set_outcome, self._corrections(corrected))
                return outcomes
            if not messages:
                return outcomes  # nothing was sent: no transaction to close
            driver = await driver_connection(await session.connection())
            if corrected:
                parameters = (list(corrected), list(corrected.values()), self._consumer)
                await driver.execute(self._set_outcomes, parameters, prepare=True)
            if driver.info.transaction_status == TransactionStatus.INERROR:
                # A handler caught a database error and went on. PostgreSQL would answer
                # the COMMIT with a ROLLBACK, silently: the messages would be acked with
                # nothing applied.
                raise AbortedTransactionError(
                    "a handler went on after a database error: the transaction is aborted"
                )
        return outcomes

    def _corrections(self, corrected: Mapping[uuid.UUID, str]) -> list[dict[str, Any]]:
        return [
            {"b_consumer": self._consumer, "b_message_id": mid, "b_outcome": outcome}
            for mid, outcome in corrected.items()
        ]

    async def _record(self, session: AsyncSession, messages: Sequence[Decoded]) -> list[Decoded]:
        """Insert the inbox rows; keep the first delivery of each message that was new."""
        unique: dict[uuid.UUID, Decoded] = {}
        for message in messages:
            unique.setdefault(message.message_id, message)
        if not unique:
            return []
        if self._on_postgresql:
            inserted = await self._begin_and_insert_rows(session, list(unique))
        else:
            rows = [
                {"consumer": self._consumer, "message_id": mid, "outcome": APPLIED}
                for mid in unique
            ]
            inserted = set((await session.scalars(self._insert, rows)).all())
        return [message for mid, message in unique.items() if mid in inserted]

    async def _begin_and_insert_rows(
        self, session: AsyncSession, message_ids: list[uuid.UUID]
    ) -> set[uuid.UUID]:
        """PostgreSQL: BEGIN and the insert in one message (``simple_query``), the ids as one
        array literal whatever the batch size. It must be the session's first statement:
        it takes the session's connection, in autocommit until this BEGIN."""
        rows = await simple_query(
            await session.connection(execution_options=SELF_DELIMITING),
            self._begin_and_insert,
            (self._consumer, message_ids, APPLIED),
        )
        return {row[0] for row in rows}

    async def _apply(self, session: AsyncSession, fresh: Sequence[Decoded]) -> dict[uuid.UUID, str]:
        """Hand each run of same-type events to its handler, runs in delivery order: the
        effects are then those of applying the messages one by one in the order they came
        (an order's cancel delivered after it was placed is handled after it, too)."""
        outcomes: dict[uuid.UUID, str] = {}
        for event_name, run in groupby(fresh, key=lambda message: message.event.event_name):
            group = list(run)
            handled = await self._subscriptions[event_name].handle(
                session, [message.event for message in group]
            )
            if len(handled) != len(group):
                raise RuntimeError(f"{event_name} handler returned {len(handled)} outcomes")
            outcomes.update(zip((m.message_id for m in group), handled, strict=True))
        return outcomes
