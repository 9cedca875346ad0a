"""Claim pending outbox rows, publish them with confirms, mark the confirmed ones.

One batch is one database transaction on one connection:

    BEGIN
    SELECT … FROM outbox WHERE pending ORDER BY next_attempt_at LIMIT n FOR UPDATE SKIP LOCKED
    publish all n pipelined, wait for every confirm (bounded by a timeout)
    UPDATE outbox SET published_at = now() WHERE id IN (confirmed)
    UPDATE outbox SET attempts = attempts + 1, … WHERE id = rejected   (rare)
    COMMIT

Why this shape:
- Rows commit out of id order, so rows are never selected by "id > last seen"; every
  pending row is eligible until it is marked, whenever its transaction committed.
- ``FOR UPDATE SKIP LOCKED`` lets several relays (and several loops in one relay) drain
  the same table without waiting on or double-publishing each other's rows.
- The row lock is the lease: if the relay dies anywhere before COMMIT, PostgreSQL drops
  the connection's locks and rolls back, so every unconfirmed row is pending again and is
  published again (a duplicate, which the consumers' inbox absorbs; never a loss).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import (
    Select,
    Text,
    bindparam,
    case,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import ReturningUpdate

from app.outbox.clock import db_now_plus
from app.outbox.database import driver_connection, is_psycopg
from app.outbox.models import OUTBOX
from app.outbox.publisher import BrokerUnavailableError, OutgoingMessage, Publisher

logger = logging.getLogger(__name__)

outbox = OUTBOX


@dataclass(frozen=True)
class RelayPolicy:
    """Batch size, and when a row that could not be published is retried or failed.

    A rejected row (nacked, refused, impossible to encode: its own fault) is retried with
    exponential backoff from ``retry_base_seconds`` up to ``retry_max_seconds`` and failed
    at ``max_attempts``. An unroutable row (no queue bound yet: not its fault) is retried
    with backoff capped at ``retry_max_seconds``, without counting attempts, and failed
    only once it has been unroutable for ``unroutable_give_up_seconds``.
    """

    batch_size: int = 500
    max_attempts: int = 10
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    unroutable_give_up_seconds: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class BatchReport:
    claimed: int
    published: int
    rejected: int
    failed: int  # rejected rows that reached max_attempts, unroutable ones past give-up
    seconds: float
    unroutable: int = 0


def claim_statement(batch_size: int) -> Select[Any]:
    return (
        select(
            outbox.c.id,
            outbox.c.event_type,
            # The JSON text as stored: published as-is, not parsed and re-serialised.
            cast(outbox.c.payload, Text).label("body"),
            outbox.c.headers,
            outbox.c.created_at,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.unroutable_since,
        )
        .where(
            outbox.c.published_at.is_(None),
            outbox.c.failed_at.is_(None),
            outbox.c.next_attempt_at <= db_now_plus(0),
        )
        .order_by(outbox.c.next_attempt_at)
        .limit(batch_size)
        # SKIP LOCKED: rows another relay is publishing are not waited for, just skipped.
        .with_for_update(skip_locked=True)
    )


# Without psycopg's pipeline (SQLite): the marks through SQLAlchemy.
_MARK_PUBLISHED = (
    update(outbox)
    .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
    .values(published_at=db_now_plus(0), last_error=None)
)


def _record_rejection(max_attempts: int) -> ReturningUpdate[Any]:
    attempts = outbox.c.attempts + 1
    return (
        update(outbox)
        .where(outbox.c.id == bindparam("row_id"))
        .values(
            attempts=attempts,
            last_error=bindparam("error"),
            next_attempt_at=db_now_plus(bindparam("delay")),
            failed_at=case((attempts >= max_attempts, db_now_plus(0)), else_=None),
            unroutable_since=None,
        )
        .returning(outbox.c.failed_at)
    )


def _record_unroutable(*, give_up: bool) -> ReturningUpdate[Any]:
    # ``unroutable_since`` keeps the first NO_ROUTE (on the database clock); attempts are
    # not counted, since no attempt of the row's own failed.
    return (
        update(outbox)
        .where(outbox.c.id == bindparam("row_id"))
        .values(
            unroutable_since=func.coalesce(outbox.c.unroutable_since, db_now_plus(0)),
            last_error=bindparam("error"),
            next_attempt_at=db_now_plus(bindparam("delay")),
            failed_at=db_now_plus(0) if give_up else None,
        )
        .returning(outbox.c.failed_at)
    )


class OutboxRelay:
    """Moves committed outbox rows of one database to a broker."""

    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        policy: RelayPolicy,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._policy = policy
        self._claim = claim_statement(policy.batch_size)
        # On psycopg, the claim and the marks run on the driver's connection in pipeline
        # mode (SQLAlchemy does not drive pipelines): same SQL, half the round trips.
        self._pipelined = is_psycopg(engine.dialect)
        self._claim_sql = inlined_sql(self._claim, engine.dialect) if self._pipelined else ""
        self._reject = _record_rejection(policy.max_attempts)
        self._unroutable = {
            give_up: _record_unroutable(give_up=give_up) for give_up in (False, True)
        }

    async def relay_batch(self) -> BatchReport:
        """Claim, publish and mark one batch. Raises BrokerUnavailableError after marking
        whatever was confirmed before the connection failed."""
        started = time.perf_counter()
        async with self._engine.begin() as connection:
            rows = await self._claim_rows(connection)
            if not rows:
                return BatchReport(0, 0, 0, 0, time.perf_counter() - started)
            messages, unreadable = _outgoing(rows)
            result = await self._publisher.publish_batch(messages)
            result.rejected.update(unreadable)
            failed = await self._record_rejections(connection, rows, result.rejected)
            failed += await self._record_unroutable(connection, rows, result.unroutable)
            await self._mark_and_commit(connection, result.confirmed)
        report = BatchReport(
            claimed=len(rows),
            published=len(result.confirmed),
            rejected=len(result.rejected),
            failed=failed,
            seconds=time.perf_counter() - started,
            unroutable=len(result.unroutable),
        )
        _log_batch(report)
        if result.broken is not None:
            raise BrokerUnavailableError(f"connection lost mid-batch: {result.broken!r}")
        return report

    async def _claim_rows(self, connection: AsyncConnection) -> Sequence[Any]:
        if not self._pipelined:
            return (await connection.execute(self._claim)).all()
        driver = await driver_connection(connection)
        # BEGIN and the claim go out together: one round trip instead of two.
        async with driver.pipeline(), driver.cursor(row_factory=namedtuple_row) as cursor:
            await cursor.execute(self._claim_sql, prepare=True)
            rows: list[Any] = await cursor.fetchall()
            return rows

    async def _mark_and_commit(
        self, connection: AsyncConnection, confirmed: list[uuid.UUID]
    ) -> None:
        if not self._pipelined:
            if confirmed:
                await connection.execute(_MARK_PUBLISHED, {"ids": confirmed})
            return  # committed by the caller's ``begin()`` block
        driver = await driver_connection(connection)
        # The marks and COMMIT go out together: one round trip instead of two. The caller's
        # ``begin()`` block then finds no transaction open, and psycopg sends nothing more.
        async with driver.pipeline():
            if confirmed:
                await driver.execute(_MARK_PUBLISHED_PG, {"ids": confirmed}, prepare=True)
            await driver.commit()

    async def _record_rejections(
        self, connection: AsyncConnection, rows: Sequence[Any], rejected: dict[uuid.UUID, str]
    ) -> int:
        if not rejected:
            return 0
        attempts_by_id = {row.id: row.attempts for row in rows}
        failed = 0
        for row_id, error in rejected.items():
            delay = self._retry_delay(attempts_by_id[row_id])
            parameters = {"row_id": row_id, "error": error[:2000], "delay": delay}
            failed_at = (await connection.execute(self._reject, parameters)).scalar_one()
            failed += failed_at is not None
        return failed

    async def _record_unroutable(
        self, connection: AsyncConnection, rows: Sequence[Any], unroutable: dict[uuid.UUID, str]
    ) -> int:
        if not unroutable:
            return 0
        policy = self._policy
        by_id = {row.id: row for row in rows}
        failed = 0
        for row_id, error in unroutable.items():
            row = by_id[row_id]
            since = row.unroutable_since
            # How long it has been unroutable, both times on the database clock. Waiting
            # as long again doubles the delay each time, capped: no counter needed.
            waited = (row.next_attempt_at - since).total_seconds() if since else 0.0
            give_up = since is not None and waited >= policy.unroutable_give_up_seconds
            delay = min(policy.retry_max_seconds, max(policy.retry_base_seconds, waited))
            parameters = {"row_id": row_id, "error": error[:2000], "delay": delay}
            statement = self._unroutable[give_up]
            failed += (await connection.execute(statement, parameters)).scalar_one() is not None
        _log_unroutable(rows, unroutable)
        return failed

    def _retry_delay(self, attempts_so_far: int) -> float:
        """Exponential: base, 2 x base, 4 x base, … capped at the maximum."""
        policy = self._policy
        exponential: float = policy.retry_base_seconds * 2.0 ** min(attempts_so_far, 32)
        return min(policy.retry_max_seconds, exponential)

    async def drain(self) -> int:
        """Relay batches until a batch comes back short; returns the rows published."""
        published = 0
        while True:
            report = await self.relay_batch()
            published += report.published
            if report.claimed < self._policy.batch_size:
                return published


def inlined_sql(statement: Select[Any], dialect: Dialect) -> str:
    """``statement`` as SQL text, its parameters inlined (they are constants)."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


# ``_MARK_PUBLISHED`` as psycopg runs it: one uuid[] parameter, so the statement text is
# the same for any batch size and is prepared once.
_MARK_PUBLISHED_PG = (
    "UPDATE outbox SET published_at = clock_timestamp(), last_error = NULL WHERE id = ANY(%(ids)s)"
)


def _outgoing(rows: Sequence[Any]) -> tuple[list[OutgoingMessage], dict[uuid.UUID, str]]:
    """The rows as messages, and the reasons of those that cannot be read as one (a row
    is data: one written by hand or by another version must fail alone)."""
    messages: list[OutgoingMessage] = []
    unreadable: dict[uuid.UUID, str] = {}
    for row in rows:
        headers = row.headers if row.headers is not None else {}
        if not isinstance(headers, dict) or not all(isinstance(k, str) for k in headers):
            unreadable[row.id] = f"unpublishable: headers are not a JSON object: {headers!r:.200}"
        elif row.body is None:
            unreadable[row.id] = "unpublishable: the row has no payload"
        else:
            messages.append(
                OutgoingMessage(
                    message_id=row.id,
                    event_type=row.event_type,
                    body=row.body.encode(),
                    headers=headers,
                    created_at=row.created_at,
                )
            )
    return messages, unreadable


def _log_unroutable(rows: Sequence[Any], unroutable: dict[uuid.UUID, str]) -> None:
    routing_keys = sorted({row.event_type for row in rows if row.id in unroutable})
    logger.warning(
        "events returned unroutable (no queue bound); retrying",
        extra={"rows": len(unroutable), "routing_keys": routing_keys},
    )


def _log_batch(report: BatchReport) -> None:
    level = logging.WARNING if report.rejected or report.unroutable else logging.INFO
    logger.log(
        level,
        "relayed batch",
        extra={
            "claimed": report.claimed,
            "published": report.published,
            "rejected": report.rejected,
            "unroutable": report.unroutable,
            "failed": report.failed,
            "duration_ms": round(report.seconds * 1000, 1),
        },
    )
