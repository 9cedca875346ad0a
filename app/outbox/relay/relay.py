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

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloudcrm_outbox.brokers.publisher import Publisher
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.observability.metrics import OUTBOX_PUBLISH_ERRORS
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.reporting import (
    count_batch,
    end_publish_spans,
    log_relay_batch,
    start_publish_spans,
)
from cloudcrm_outbox.relay.statements import outgoing_messages, relay_statements
from cloudcrm_outbox.relay.unroutable import probe_statements, record_unroutable, release_waiting
from cloudcrm_outbox.storage.liveness import AnswerDeadline
from cloudcrm_outbox.storage.store import store_for
from cloudcrm_outbox.storage.tables import outbox_tables

logger = library_logger(__name__)


@dataclass(frozen=True)
class BatchReport:
    claimed: int
    published: int
    rejected: int
    failed: int  # rejected rows that reached max_attempts, unroutable ones past give-up
    seconds: float
    unroutable: int = 0
    nacked: int = 0  # left pending: the broker could not take them now
    released: int = 0  # rows that waited for a route, due now (one appeared: relay_probes)
    # Keyed rows confirmed: the next row of each of their keys may be claimed at once.
    keyed: int = 0
    retry_in: float | None = None  # seconds until a probe of this batch is due again


def _keyed_among(rows: Sequence[Any], confirmed: Sequence[uuid.UUID]) -> int:
    """How many of the ``confirmed`` rows are keyed."""
    done = set(confirmed)
    return sum(1 for row in rows if row.id in done and row.message_key is not None)


class OutboxRelay:
    """Moves committed outbox rows of one database to a broker."""

    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        policy: RelayPolicy,
        *,
        names: MessagingNames = DEFAULT_NAMES,
        service: str = "outbox",
        answer_timeout: float | None = None,
    ) -> None:
        """``names`` picks the outbox table (``names.outbox_table``); ``service`` labels
        the relay's metrics; ``answer_timeout`` (seconds) bounds each database step of a
        batch (the claim; the marks and COMMIT), after which its connection is taken for
        one that stopped answering and dropped (``liveness.AnswerDeadline``)."""
        self._service = service
        self._answer_timeout = answer_timeout
        for reason in ("rejected", "nacked", "unroutable", "connection_lost"):  # 0, not "no data"
            OUTBOX_PUBLISH_ERRORS.labels(service, reason)
        self._publisher = publisher
        self._policy = policy
        self._names = names
        self._sql = relay_statements(
            outbox_tables(names).outbox,
            batch_size=policy.batch_size,
            max_attempts=policy.max_attempts,
        )
        self._probes = probe_statements(outbox_tables(names).outbox, policy)
        # On PostgreSQL the batch's statements open and close its transaction themselves,
        # "BEGIN; <claim>" and "<marks>; COMMIT": one round trip each, and no pipeline mode
        # (storage.postgres.simple_query). SQLite: the same statements through SQLAlchemy.
        store = store_for(engine.dialect)
        self._transactions = store.relay_engine(engine)
        self._steps = store.relay_steps(
            self._sql.claim, self._sql.mark_published, self._sql.mark_published_pg, engine.dialect
        )

    async def relay_batch(self) -> BatchReport:
        """Claim, publish and mark one batch. Raises BrokerUnavailableError after marking
        whatever was confirmed before the connection failed."""
        started = time.perf_counter()
        # A connection gone silent must not hold the batch for ever: each database step
        # gets the answer deadline (the server, for its part, ends the session and its
        # claim at idle_in_transaction_session_timeout).
        deadline = AnswerDeadline(self._answer_timeout)
        async with deadline, self._transactions.begin() as connection:
            await deadline.start(connection)
            rows = await self._steps.claim(connection)
            if not rows:
                return BatchReport(0, 0, 0, 0, time.perf_counter() - started)
            messages, unreadable = outgoing_messages(rows, self._names)
            messages, spans = start_publish_spans(messages)
            async with deadline.paused():  # the broker's time (its own timeout)
                result = await self._publisher.publish_batch(messages)
            end_publish_spans(spans, result)
            result.rejected.update(unreadable)
            failed = await self._record_rejections(connection, rows, result.rejected)
            retry_in = None
            if result.unroutable:
                statements = (self._sql, self._probes)
                gave_up, retry_in = await record_unroutable(
                    connection, statements, self._policy, rows, result.unroutable
                )
                failed += gave_up
            await self._record_nacked(connection, rows, result.nacked)
            routed = [*result.confirmed, *result.nacked]
            released = await release_waiting(connection, self._probes, rows, routed)
            await self._steps.mark_and_commit(connection, result.confirmed)
        report = BatchReport(
            claimed=len(rows),
            published=len(result.confirmed),
            rejected=len(result.rejected),
            failed=failed,
            seconds=time.perf_counter() - started,
            unroutable=len(result.unroutable),
            nacked=len(result.nacked),
            released=released,
            retry_in=retry_in,
            keyed=_keyed_among(rows, result.confirmed),
        )
        newly = any(row.id in result.unroutable and not row.unroutable_since for row in rows)
        log_relay_batch(report, messages, result, newly_unroutable=newly)
        count_batch(self._service, {row.id: row.event_type for row in rows}, result, report.seconds)
        if result.broken is not None:
            raise BrokerUnavailableError(f"connection lost mid-batch: {result.broken!r}")
        return report

    async def _record_rejections(
        self, connection: AsyncConnection, rows: Sequence[Any], rejected: dict[uuid.UUID, str]
    ) -> int:
        if not rejected:
            return 0
        attempts_by_id = {row.id: row.attempts for row in rows}
        failed = 0
        for row_id, error in rejected.items():
            delay = self._policy.retry_delay(attempts_by_id[row_id])
            parameters = {"row_id": row_id, "error": error[:2000], "delay": delay}
            failed_at = (await connection.execute(self._sql.reject, parameters)).scalar_one()
            failed += failed_at is not None
        return failed

    async def _record_nacked(
        self, connection: AsyncConnection, rows: Sequence[Any], nacked: dict[uuid.UUID, str]
    ) -> None:
        if not nacked:
            return
        by_id = {row.id: row for row in rows}
        parameters = [
            {
                "row_id": row_id,
                "error": error[:2000],
                "delay": self._policy.nacked_delay(
                    by_id[row_id].created_at,
                    by_id[row_id].next_attempt_at,
                    bool(by_id[row_id].nacked_before),
                ),
            }
            for row_id, error in nacked.items()
        ]
        await connection.execute(self._sql.retry_later, parameters)

    async def drain(self) -> int:
        """Relay batches until a batch comes back short; returns the rows published."""
        published = 0
        while True:
            report = await self.relay_batch()
            published += report.published
            # A short batch means nothing more is due, unless it published keyed rows:
            # the next row of each of their keys is claimable only now.
            if report.claimed < self._policy.batch_size and not (report.released or report.keyed):
                return published
