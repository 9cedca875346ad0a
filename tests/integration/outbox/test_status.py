"""``python -m app outbox status``: what waits, for how long, what failed, what has no route."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.outbox.status import read_status
from tests.conftest import query
from tests.e2e.processes import command_env, command_output
from tests.integration.outbox.conftest import QUEUE, relay_for, stage_events
from tests.support.rabbit import bind_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_status_counts_pending_unroutable_failed_and_recent(
    ordering_db: str, engine: AsyncEngine, broker: str
) -> None:
    assert (await read_status(engine)).oldest_pending_age_seconds is None
    await bind_queue(broker, QUEUE, "OrderPlaced")
    await stage_events(engine, 4)
    async with relay_for(ordering_db, broker) as relay:
        assert (await relay.relay_batch()).published == 4
    [unroutable, failed, waiting] = await stage_events(engine, 3)
    await query(
        ordering_db, "UPDATE outbox SET event_type = 'NobodyListens' WHERE id = %s", unroutable
    )
    await query(ordering_db, "UPDATE outbox SET failed_at = now() WHERE id = %s", failed)
    await query(
        ordering_db,
        "UPDATE outbox SET created_at = now() - interval '90 seconds', "
        "next_attempt_at = now() + interval '1 hour' WHERE id = %s",
        waiting,
    )
    async with relay_for(ordering_db, broker) as relay:
        assert (await relay.relay_batch()).unroutable == 1

    status = await read_status(engine)
    assert (status.pending, status.unroutable, status.failed) == (2, 1, 1)
    assert status.published_last_hour == 4
    assert status.oldest_pending_age_seconds is not None
    assert 89 < status.oldest_pending_age_seconds < 120

    printed = command_output(
        "outbox", "status", "ordering", "--json", env=command_env(ORDERING_DATABASE_URL=ordering_db)
    )
    figures = json.loads(printed)["ordering"]
    assert (figures["pending"], figures["unroutable"], figures["failed"]) == (2, 1, 1)
