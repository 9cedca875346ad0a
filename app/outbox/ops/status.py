"""What an operator asks of an outbox: how much waits, how old, how much failed.

Each figure is read through an index (pending rows through the partial pending index,
failed rows through the partial failed index, the last hour's through ``published_at``),
never by scanning the published rows the table retains.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.tables import outbox_tables
from cloudcrm_outbox.times import as_utc


@dataclass(frozen=True)
class OutboxStatus:
    """One outbox's state: counts of rows, and ages in seconds (None when nothing waits)."""

    pending: int
    failed: int
    oldest_pending_age_seconds: float | None
    published_last_hour: int
    unroutable: int  # pending rows RabbitMQ returned as unroutable (no queue bound)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def read_status(
    engine: AsyncEngine, *, names: MessagingNames = DEFAULT_NAMES
) -> OutboxStatus:
    """Read the status of the outbox in ``engine``'s database (the database's clock)."""
    outbox = outbox_tables(names).outbox
    pending = select(
        func.count(),
        func.min(outbox.c.created_at),
        func.count(outbox.c.unroutable_since),
        db_now_plus(0),
    ).where(outbox.c.published_at.is_(None), outbox.c.failed_at.is_(None))
    # Failed and never published: what ``outbox failed`` lists and a replay can take.
    failed = select(func.count()).where(
        outbox.c.failed_at.is_not(None), outbox.c.published_at.is_(None)
    )
    recent = select(func.count()).where(outbox.c.published_at >= db_now_plus(-3600))
    async with engine.connect() as connection:
        count, oldest, unroutable, now = (await connection.execute(pending)).one()
        failed_count = (await connection.execute(failed)).scalar_one()
        recent_count = (await connection.execute(recent)).scalar_one()
    age = None if oldest is None else (as_utc(now) - as_utc(oldest)).total_seconds()
    return OutboxStatus(
        pending=count,
        failed=failed_count,
        oldest_pending_age_seconds=None if age is None else round(max(age, 0.0), 3),
        published_last_hour=recent_count,
        unroutable=unroutable,
    )
