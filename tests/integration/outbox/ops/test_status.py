"""What an outbox's status reports: what waits, for how long, what failed, what has no
route (``read_status``; the ``outbox status`` command prints it, see
tests/integration/ordering/test_outbox_status_command.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.ops.status import read_status
from tests.conftest import query
from tests.integration.outbox.conftest import QUEUE, relay_for, stage_events
from tests.support.rabbit import bind_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def make_figures(database_url: str, engine: AsyncEngine, broker: str) -> None:
    """4 published, then 1 unroutable, 1 failed and 1 waiting 90 s for its retry."""
    await bind_queue(broker, QUEUE, "OrderPlaced")
    await stage_events(engine, 4)
    async with relay_for(database_url, broker) as relay:
        assert (await relay.relay_batch()).published == 4
    [unroutable, failed, waiting] = await stage_events(engine, 3)
    await query(
        database_url, "UPDATE outbox SET event_type = 'NobodyListens' WHERE id = %s", unroutable
    )
    await query(database_url, "UPDATE outbox SET failed_at = now() WHERE id = %s", failed)
    await query(
        database_url,
        "UPDATE outbox SET created_at = now() - interval '90 seconds', "
        "next_attempt_at = now() + interval '1 hour' WHERE id = %s",
        waiting,
    )
    async with relay_for(database_url, broker) as relay:
        assert (await relay.relay_batch()).unroutable == 1


async def test_status_counts_pending_unroutable_failed_and_recent(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    assert (await read_status(engine)).oldest_pending_age_seconds is None
    await make_figures(outbox_db, engine, broker)
    status = await read_status(engine)
    assert (status.pending, status.unroutable, status.failed) == (2, 1, 1)
    assert status.published_last_hour == 4
    assert status.oldest_pending_age_seconds is not None
    assert 89 < status.oldest_pending_age_seconds < 120
