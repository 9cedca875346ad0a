from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.storage.retention import delete_published_outbox_rows
from tests.conftest import query
from tests.integration.outbox.conftest import stage_events

pytestmark = pytest.mark.postgres

DAY = 24 * 3600


async def test_retention_deletes_only_old_published_rows(
    outbox_db: str, engine: AsyncEngine
) -> None:
    ids = await stage_events(engine, 12)
    old_published, recent_published = ids[:5], ids[5:7]
    old_pending, old_failed, new_pending = ids[7:9], ids[9:10], ids[10:]
    ages = [
        (
            old_published,
            "published_at = now() - interval '8 days', created_at = now() - interval '8 days'",
        ),
        (recent_published, "published_at = now() - interval '6 days'"),
        (
            old_pending,
            "created_at = now() - interval '30 days', next_attempt_at = now() - interval '30 days'",
        ),
        (
            old_failed,
            "failed_at = now() - interval '30 days', created_at = now() - interval '30 days'",
        ),
    ]
    for rows, assignment in ages:
        await query(outbox_db, f"UPDATE outbox SET {assignment} WHERE id = ANY(%s)", rows)

    deleted = await delete_published_outbox_rows(
        engine,
        older_than_seconds=7 * DAY,
        batch_size=2,  # several bounded batches
    )

    assert deleted == 5
    remaining = {row[0] for row in await query(outbox_db, "SELECT id FROM outbox")}
    assert remaining == set(recent_published + old_pending + old_failed + new_pending)
    assert await delete_published_outbox_rows(engine, older_than_seconds=7 * DAY, batch_size=2) == 0


async def test_inbox_retention_deletes_only_old_rows(outbox_db: str) -> None:
    import uuid

    from cloudcrm_outbox.storage.engine import make_engine
    from cloudcrm_outbox.storage.retention import delete_old_inbox_rows

    old = [uuid.uuid4() for _ in range(3)]
    recent = [uuid.uuid4() for _ in range(2)]
    for message_id, age in [(m, "8 days") for m in old] + [(m, "1 day") for m in recent]:
        await query(
            outbox_db,
            "INSERT INTO inbox (consumer, message_id, outcome, processed_at) "
            "VALUES ('catalog', %s, 'applied', now() - %s::interval)",
            message_id,
            age,
        )
    engine = make_engine(outbox_db)
    try:
        deleted = await delete_old_inbox_rows(engine, older_than_seconds=7 * DAY, batch_size=2)
    finally:
        await engine.dispose()

    assert deleted == 3
    assert {row[0] for row in await query(outbox_db, "SELECT message_id FROM inbox")} == set(recent)


async def test_a_row_put_back_to_pending_while_retention_runs_is_not_deleted(
    outbox_db: str, engine: AsyncEngine
) -> None:
    import asyncio

    import psycopg

    from tests.support import postgres

    [republished, *others] = await stage_events(engine, 5)
    await query(outbox_db, "UPDATE outbox SET published_at = now() - interval '8 days'")
    # A republish holds the row, about to make it pending again, when retention chooses it.
    async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(outbox_db)) as other:
        await other.execute("UPDATE outbox SET published_at = NULL WHERE id = %s", (republished,))
        cleaning = asyncio.create_task(
            delete_published_outbox_rows(engine, older_than_seconds=7 * DAY, batch_size=100)
        )
        await asyncio.sleep(0.5)  # retention waits on the row's lock
        await other.commit()
        deleted = await asyncio.wait_for(cleaning, 10)

    assert deleted == len(others)
    assert await query(outbox_db, "SELECT id, published_at FROM outbox") == [(republished, None)]
