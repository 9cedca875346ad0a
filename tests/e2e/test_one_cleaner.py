"""Three relays cleaning the same outbox every second: one deletes at a time (seen by
the database, through statement triggers), and none waits on another's row locks."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import count, query
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

RETAINED = 100_000

# Each DELETE on outbox logs its backend, start and end (statement triggers run in the
# deleting transaction, so a logged statement is one that committed).
TRIGGERS = """
CREATE TABLE cleaner_log (
  pid int, phase text, deleted int, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION cleaner_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO cleaner_log (pid, phase) VALUES (pg_backend_pid(), 'start'); RETURN NULL; END $$;
CREATE FUNCTION cleaner_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO cleaner_log (pid, phase, deleted)
  SELECT pg_backend_pid(), 'end', count(*) FROM gone; RETURN NULL; END $$;
CREATE TRIGGER cleaner_started BEFORE DELETE ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION cleaner_started();
CREATE TRIGGER cleaner_ended AFTER DELETE ON outbox REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION cleaner_ended();
"""

# Backends deleting from outbox that wait for a lock (another's rows, or a table lock).
WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query ILIKE 'DELETE FROM outbox%%'"
)


async def test_three_relays_clean_one_at_a_time(deployment: Deployment) -> None:
    url = deployment.ordering_db
    await query(
        url,
        "INSERT INTO outbox (id, event_type, payload, headers, published_at) "
        "SELECT gen_random_uuid(), 'OrderPlaced', '{}', '{}', now() - interval '8 days' "
        f"FROM generate_series(1, {RETAINED})",
    )
    await query(url, TRIGGERS)
    cleaning = {
        "OUTBOX_RETENTION_SECONDS": "3600",
        "RETENTION_INTERVAL_SECONDS": "1",
        "RETENTION_BATCH_SIZE": "500",
        "RETENTION_PAUSE_SECONDS": "0.02",
    }
    waits: list[int] = []

    async def watch() -> None:
        while True:
            [(waiting,)] = await query(url, WAITING)
            waits.append(waiting)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        # Started together, so that their first runs (at start) meet.
        await asyncio.gather(*(deployment.add_relay("ordering", **cleaning) for _ in range(3)))
        await wait_until(lambda: _empty(url), timeout=90)
    finally:
        watcher.cancel()

    log = await query(
        url, "SELECT pid, phase, deleted, at FROM cleaner_log ORDER BY at, phase DESC"
    )
    statements = [
        (start, end, deleted)
        for (_, _, _, start), (_, _, deleted, end) in zip(log[0::2], log[1::2], strict=True)
    ]
    # Ordered by time, the log alternates start, end of the same backend: never two at once.
    assert all(a[0] == b[0] for a, b in zip(log[0::2], log[1::2], strict=True)), log[:20]
    assert [row[1] for row in log] == ["start", "end"] * len(statements)
    assert sum(deleted for _, _, deleted in statements) == RETAINED
    assert all(deleted <= 500 for _, _, deleted in statements)  # bounded batches
    assert waits and max(waits) == 0, "a cleaner waited on a lock"


async def _empty(url: str) -> bool:
    return await count(url, "outbox") == 0
