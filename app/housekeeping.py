"""A service's own retention jobs, run in its consumer process (and in ``dev``) beside the
library's outbox and inbox retention: today, catalog's finished stock reservations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.outbox.database import make_engine
from app.outbox.process import RetentionPolicy, scheduler_with_retention
from app.settings import Settings


@asynccontextmanager
async def housekeeping(settings: Settings, service: str) -> AsyncIterator[None]:
    """Run ``service``'s retention jobs (none for ordering) until the block ends."""
    if service != "catalog":
        yield
        return
    from app.catalog.retention import delete_finished_reservations

    engine = make_engine(settings.catalog_database_url, pool_size=1)
    policy = RetentionPolicy(
        older_than_seconds=settings.reservation_retention_seconds,
        interval_seconds=settings.retention_interval_seconds,
        batch_size=settings.retention_batch_size,
        pause_seconds=settings.retention_pause_seconds,
        enabled=settings.retention_enabled,
    )
    scheduler = scheduler_with_retention(policy, engine, delete_finished_reservations)
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
        await engine.dispose()
