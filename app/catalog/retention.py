"""Catalog's finished stock reservations, deleted once old.

The rule for a very late cancel: a reservation is the record of what catalog did for an
order. A ``reserved`` one is live (the order may still be cancelled, and its stock given
back) and is never deleted. A finished one (``rejected``, ``released``, or a cancel's
tombstone, ``cancelled_first``) is deleted once its last change is older than
``RESERVATION_RETENTION_SECONDS`` (30 days by default, never less than the inbox's
retention). An ``OrderCancelled`` that arrives after its order's finished reservation is
gone finds no row and is handled as a cancel that came first: it gives nothing back and
leaves a tombstone. So a very late cancel never returns stock twice; and a very late
``OrderPlaced`` (a dead letter replayed months later) of a cancelled order would reserve
again, which is why dead letters older than the retention are purged, not replayed
(docs/operate.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.models import STOCK_RESERVATIONS, TERMINAL
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.retention import delete_in_batches

reservations = STOCK_RESERVATIONS


async def delete_finished_reservations(
    engine: AsyncEngine,
    *,
    older_than_seconds: float,
    batch_size: int,
    pause_seconds: float = 0.0,
    **_: Any,
) -> int:
    """Delete finished reservations last changed more than ``older_than_seconds`` ago,
    ``batch_size`` per transaction (through the partial index of finished rows); returns
    how many. (``**_``: the outbox's names a retention job is also handed.)"""
    # TERMINAL as SQL text, the index's own predicate: PostgreSQL uses a partial index
    # only when it can prove the query implies its predicate.
    condition = and_(TERMINAL, reservations.c.updated_at < db_now_plus(-older_than_seconds))
    return await delete_in_batches(
        engine,
        reservations,
        keys=[reservations.c.order_id],
        condition=condition,
        age=reservations.c.updated_at,
        batch_size=batch_size,
        pause_seconds=pause_seconds,
    )
