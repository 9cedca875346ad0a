"""Rows returned unroutable (312 NO_ROUTE): one probe per event, the others wait for it.

An event nobody's queue is bound to yet (its consumer not started, or ``broker declare``
not run: a least-privilege relay may not declare the queue itself) is returned by the
broker. Retrying every such row on a short schedule would flood the broker for as long
as the queue is missing; retrying each on its own growing backoff left a row placed
before the queue existed waiting seconds to minutes after it appeared. So, per routing
key, one row (the oldest returned, the *probe*) is retried every
``RelayPolicy.unroutable_probe_seconds``; the others wait on the backoff. When any row of
that key that had been returned is confirmed (the probe, or a waiting row that came due),
the route exists: the rows still waiting for it are made due at once, in the same
transaction as the mark (a nack says the route exists too: the queue is there, only full
or between leaders, so it releases them as well). A waiting row's own retry, after
``retry_max_seconds``, is only the fallback should the probe be lost (an operator failed
it): returned again, it finds no probe and becomes one.

Nothing is kept in memory: whether a key has a probe is read from the outbox (a pending
unroutable row of that key due within the probe interval), so relays on several hosts,
and a restarted one, agree. Two batches of one key returned at the same instant may both
choose a probe (each cannot see the other's uncommitted choice): at most one probe per
concurrent batch, still a bounded trickle. The rows' ``unroutable_since`` (the first
NO_ROUTE) and give-up are the same for probes and waiting rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.statements import RelayStatements
from cloudcrm_outbox.storage.clock import db_now_plus

logger = library_logger(__name__)


@dataclass(frozen=True)
class ProbeStatements:
    """``probe_due``: a row of ``key`` already probing (not among ``ids``); ``release``:
    the rows of ``keys`` waiting for a route made due now."""

    probe_due: Select[Any]
    release: Update


def probe_statements(outbox: Table, policy: RelayPolicy) -> ProbeStatements:
    """The statements on ``outbox`` (built once per relay)."""
    pending_unroutable = (
        outbox.c.published_at.is_(None),
        outbox.c.failed_at.is_(None),
        outbox.c.unroutable_since.is_not(None),
    )
    probe_due = (
        select(outbox.c.id)
        .where(
            *pending_unroutable,
            outbox.c.event_type == bindparam("key"),
            # Through ix_outbox_pending: only rows due within the probe interval are read.
            outbox.c.next_attempt_at <= db_now_plus(policy.unroutable_probe_seconds),
            outbox.c.id.not_in(bindparam("ids", expanding=True)),
        )
        .limit(1)
    )
    waiting = (
        select(outbox.c.id)
        .where(
            *pending_unroutable,
            outbox.c.event_type.in_(bindparam("keys", expanding=True)),
            outbox.c.next_attempt_at > db_now_plus(0),
        )
        # SKIP LOCKED: a row another batch holds is being published already; waiting for
        # its lock while holding this batch's could deadlock two releases.
        .with_for_update(skip_locked=True)
    )
    release = (
        update(outbox)
        .where(outbox.c.id.in_(waiting.scalar_subquery()))
        .values(next_attempt_at=db_now_plus(0))
    )
    return ProbeStatements(probe_due=probe_due, release=release)


async def record_unroutable(
    connection: AsyncConnection,
    statements: tuple[RelayStatements, ProbeStatements],
    policy: RelayPolicy,
    rows: Sequence[Any],
    unroutable: dict[uuid.UUID, str],
) -> tuple[int, float | None]:
    """Record ``unroutable`` (row id → the broker's reason) among the claimed ``rows``:
    per routing key, the oldest becomes the probe unless a row of that key already is.
    Returns (rows failed: unroutable past the give-up, seconds until the soonest probe
    of this batch is due, or None when it chose none)."""
    sql, probes = statements
    returned = sorted(
        (row for row in rows if row.id in unroutable), key=lambda r: (r.created_at, str(r.id))
    )
    batch = [row.id for row in rows]
    chosen: set[uuid.UUID] = set()
    for key in {row.event_type for row in returned}:
        probing = await connection.execute(probes.probe_due, {"key": key, "ids": batch})
        if probing.first() is None:
            chosen.add(next(row.id for row in returned if row.event_type == key))
    if any(not row.unroutable_since for row in returned):  # news: not a probe again
        logger.warning(
            "events returned unroutable (no queue bound); one per event is retried soon, "
            "the others once it is routed",
            extra={"rows": len(returned), "routing_keys": sorted({r.event_type for r in returned})},
        )
    failed = 0
    for row in returned:
        probe = row.id in chosen
        delay, give_up = policy.unroutable_delay(
            row.unroutable_since, row.next_attempt_at, probe=probe
        )
        parameters = {"row_id": row.id, "error": unroutable[row.id][:2000], "delay": delay}
        statement = sql.unroutable_give_up if give_up else sql.unroutable
        failed += (await connection.execute(statement, parameters)).scalar_one() is not None
    return failed, (policy.unroutable_probe_seconds if chosen else None)


async def release_waiting(
    connection: AsyncConnection, probes: ProbeStatements, rows: Sequence[Any], routed: list[Any]
) -> int:
    """After confirms: the routing keys of ``routed`` rows (ids confirmed or nacked) that
    had been returned before have a route now; their other waiting rows are made due.
    Returns how many."""
    done = set(routed)
    keys = sorted({row.event_type for row in rows if row.id in done and row.unroutable_since})
    if not keys:
        return 0
    released = (await connection.execute(probes.release, {"keys": keys})).rowcount
    if released:
        logger.info(
            "a route appeared: rows waiting for it are due now",
            extra={"routing_keys": keys, "rows": released},
        )
    return int(released)
