"""The relay's bookkeeping on SQLite (the embedded default) with a scripted fake broker.

Locking and SKIP LOCKED are proven on PostgreSQL (tests/integration/outbox); these
check the marking rules and the SQL on the other dialect the project supports.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox import add_event
from cloudcrm_outbox.brokers.publisher import OutgoingMessage, PublishResult
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.relay import OutboxRelay
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from cloudcrm_outbox.storage.retention import delete_published_outbox_rows
from tests.support.events import OrderPlaced, create_outbox_schema


class ScriptedBroker:
    """Confirms everything, except ids it is told to reject or to lose with the connection."""

    def __init__(self) -> None:
        self.received: list[OutgoingMessage] = []
        self.reject: set[uuid.UUID] = set()
        self.unroutable: set[uuid.UUID] = set()
        self.nack: set[uuid.UUID] = set()
        self.lose_after: int | None = None

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        result = PublishResult()
        for index, message in enumerate(messages):
            if self.lose_after is not None and index >= self.lose_after:
                result.broken = ConnectionResetError("scripted cut")
                break
            self.received.append(message)
            if message.message_id in self.reject:
                result.rejected[message.message_id] = "refused by the broker: 406"
            elif message.message_id in self.nack:
                result.nacked[message.message_id] = "nacked by the broker"
            elif message.message_id in self.unroutable:
                result.unroutable[message.message_id] = "returned by the broker: 312 NO_ROUTE"
            else:
                result.confirmed.append(message.message_id)
        return result

    async def close(self) -> None:
        return None


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(create_outbox_schema)
    yield engine
    await engine.dispose()


async def stage(engine: AsyncEngine, count: int) -> list[uuid.UUID]:
    async with make_sessionmaker(engine)() as session, session.begin():
        return [
            add_event(
                session,
                OrderPlaced(
                    order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="A", quantity=1
                ),
            ).id
            for _ in range(count)
        ]


async def rows(engine: AsyncEngine) -> dict[uuid.UUID, tuple[object, ...]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT id, published_at, attempts, failed_at, last_error FROM outbox")
        )
        return {uuid.UUID(hex=row[0]): tuple(row[1:]) for row in result}


async def test_confirmed_rows_are_marked_and_bodies_are_the_stored_json(
    engine: AsyncEngine,
) -> None:
    ids = await stage(engine, 7)
    broker = ScriptedBroker()

    published = await OutboxRelay(engine, broker, RelayPolicy(batch_size=3)).drain()

    assert published == 7
    assert sorted(m.message_id for m in broker.received) == sorted(ids)
    assert all(m.body.startswith(b'{"orderId"') for m in broker.received)
    assert all(published_at is not None for published_at, *_ in (await rows(engine)).values())


async def test_rejected_row_counts_an_attempt_then_fails_at_the_maximum(
    engine: AsyncEngine,
) -> None:
    [poison, good] = await stage(engine, 2)
    broker = ScriptedBroker()
    broker.reject.add(poison)
    relay = OutboxRelay(engine, broker, RelayPolicy(max_attempts=2, retry_base_seconds=0))

    first = await relay.relay_batch()
    second = await relay.relay_batch()
    third = await relay.relay_batch()

    assert (first.published, first.rejected, first.failed) == (1, 1, 0)
    assert (second.rejected, second.failed) == (1, 1)
    assert third.claimed == 0  # a failed row is never claimed again
    state = await rows(engine)
    assert state[poison][1:3] != (None, None) and state[poison][1] == 2
    assert state[poison][0] is None and "406" in str(state[poison][3])
    assert state[good][0] is not None


async def test_a_nacked_row_stays_pending_without_an_attempt_and_never_fails(
    engine: AsyncEngine,
) -> None:
    [nacked, good] = await stage(engine, 2)
    broker = ScriptedBroker()
    broker.nack.add(nacked)
    # No delay (SQLite keeps whole seconds): the row is due again at once.
    policy = RelayPolicy(max_attempts=1, retry_base_seconds=0, retry_max_seconds=0)
    relay = OutboxRelay(engine, broker, policy)

    reports = [await relay.relay_batch() for _ in range(3)]  # 3 x max_attempts
    assert [r.nacked for r in reports] == [1, 1, 1] and not any(r.failed for r in reports)
    state = await rows(engine)
    published_at, attempts, failed_at, last_error = state[nacked][:4]
    assert (published_at, attempts, failed_at) == (None, 0, None)
    assert "nacked" in str(last_error)
    assert state[good][0] is not None  # confirmed beside it: marked, not held back

    broker.nack.clear()  # the queue takes messages again
    report = await relay.relay_batch()
    assert (report.claimed, report.published) == (1, 1)
    assert (await rows(engine))[nacked][0] is not None


async def test_unroutable_row_counts_no_attempt_and_fails_only_by_age(engine: AsyncEngine) -> None:
    [lost] = await stage(engine, 1)
    broker = ScriptedBroker()
    broker.unroutable.add(lost)
    # SQLite keeps whole seconds: no backoff and no probe interval (due again at once,
    # whatever second it is), and a give-up well apart from the early batches.
    policy = RelayPolicy(
        max_attempts=1,
        retry_base_seconds=0,
        retry_max_seconds=0,
        unroutable_give_up_seconds=3,
        unroutable_probe_seconds=0,
    )
    relay = OutboxRelay(engine, broker, policy)

    reports = [await relay.relay_batch() for _ in range(3)]  # three times max_attempts
    assert [r.unroutable for r in reports] == [1, 1, 1] and not any(r.failed for r in reports)
    await asyncio.sleep(3.2)
    await relay.relay_batch()  # sets the next attempt after the wait, on the database clock
    await relay.relay_batch()
    state = await rows(engine)
    published_at, attempts, failed_at, last_error = state[lost][:4]
    assert published_at is None and attempts == 0
    assert failed_at is not None and "NO_ROUTE" in str(last_error)


async def test_rejected_row_waits_for_its_backoff(engine: AsyncEngine) -> None:
    [poison] = await stage(engine, 1)
    broker = ScriptedBroker()
    broker.reject.add(poison)
    relay = OutboxRelay(engine, broker, RelayPolicy(retry_base_seconds=60))

    assert (await relay.relay_batch()).rejected == 1
    assert (await relay.relay_batch()).claimed == 0  # not before a minute has passed


async def test_lost_connection_marks_only_what_was_confirmed(engine: AsyncEngine) -> None:
    ids = await stage(engine, 5)
    broker = ScriptedBroker()
    broker.lose_after = 2
    relay = OutboxRelay(engine, broker, RelayPolicy())

    with pytest.raises(BrokerUnavailableError):
        await relay.relay_batch()

    state = await rows(engine)
    marked = {row_id for row_id, (published_at, *_) in state.items() if published_at}
    assert marked == {m.message_id for m in broker.received}
    assert len(marked) == 2
    assert all(state[i][1] == 0 for i in ids)  # the broker's fault, not the rows'

    broker.lose_after = None
    assert await relay.drain() == 3


async def test_retention_on_sqlite_deletes_only_old_published_rows(engine: AsyncEngine) -> None:
    old, recent, pending = await stage(engine, 3)
    async with engine.begin() as connection:
        for row_id, age in ((old, "-8 days"), (recent, "-1 days")):
            await connection.execute(
                text("UPDATE outbox SET published_at = datetime('now', :age) WHERE id = :id"),
                {"age": age, "id": row_id.hex},
            )

    deleted = await delete_published_outbox_rows(
        engine, older_than_seconds=7 * 24 * 3600, batch_size=1
    )

    assert deleted == 1
    assert set(await rows(engine)) == {recent, pending}


async def test_republish_on_sqlite_reads_times_of_any_offset_as_utc(engine: AsyncEngine) -> None:
    from datetime import datetime

    from sqlalchemy import text

    from cloudcrm_outbox.ops.republish import PublishedSelection, republish

    [row] = await stage(engine, 1)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET published_at = '2026-11-30 07:00:00.000000'")
        )

    def at(moment: str) -> PublishedSelection:
        return PublishedSelection(since=datetime.fromisoformat(moment))

    # 10:00+05:00 is 05:00Z, before the row; 02:00:01-05:00 is 07:00:01Z, after it.
    assert await republish(engine, at("2026-11-30T10:00:00+05:00"), dry_run=True) == 1
    assert await republish(engine, at("2026-11-30T02:00:01-05:00"), dry_run=True) == 0
    # The very second of --since is in, the very second of --until out ([since, until)).
    assert await republish(engine, at("2026-11-30T07:00:00Z"), dry_run=True) == 1
    until = PublishedSelection(
        since=datetime.fromisoformat("2026-11-30T06:00:00Z"),
        until=datetime.fromisoformat("2026-11-30T12:00:00+05:00"),
    )
    assert await republish(engine, until, dry_run=True) == 0
    assert await republish(engine, at("2026-11-30T06:59:59+00:00")) == 1
    async with engine.connect() as connection:
        published = (await connection.execute(text("SELECT published_at FROM outbox"))).all()
    assert published == [(None,)] and row


async def test_one_unroutable_row_probes_and_its_confirm_releases_the_others(
    engine: AsyncEngine,
) -> None:
    # The embedded default's dialect: rows of an event no queue is bound to yet wait for
    # one probe (app/outbox/relay/unroutable.py), and go at once when it is routed.
    waiting = await stage(engine, 5)
    broker = ScriptedBroker()
    broker.unroutable.update(waiting)
    policy = RelayPolicy(retry_max_seconds=3600, unroutable_probe_seconds=0)
    relay = OutboxRelay(engine, broker, policy)

    first = await relay.relay_batch()
    assert (first.unroutable, first.released) == (5, 0) and first.retry_in == 0
    again = await relay.relay_batch()  # only the probe is due: the others wait an hour
    assert (again.claimed, again.unroutable) == (1, 1)
    [probe] = broker.received[5:]
    # The oldest (by created_at, then id: rows written in one transaction may still get
    # two milliseconds of SQLite's clock).
    async with engine.connect() as connection:
        oldest = (
            await connection.execute(text("SELECT id FROM outbox ORDER BY created_at, id LIMIT 1"))
        ).scalar_one()
    assert str(probe.message_id).replace("-", "") == str(oldest).replace("-", "")

    broker.unroutable.clear()  # the queue appears
    routed = await relay.relay_batch()
    assert (routed.claimed, routed.published, routed.released) == (1, 1, 4)
    rest = await relay.relay_batch()
    assert (rest.claimed, rest.published) == (4, 4)
    state = await rows(engine)
    assert all(state[row_id][0] is not None for row_id in waiting)


async def test_headers_nested_deeper_than_python_reads_fail_that_row_alone(
    engine: AsyncEngine,
) -> None:
    """As on PostgreSQL: reading such a row's headers raised RecursionError at the claim,
    so no batch holding it (and no row behind it) was ever published."""
    first, odd, last = await stage(engine, 3)
    deep = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET headers = :deep WHERE id = :id"),
            {"deep": deep, "id": odd.hex},
        )
    broker = ScriptedBroker()

    report = await OutboxRelay(engine, broker, RelayPolicy()).relay_batch()

    assert (report.published, report.rejected) == (2, 1)
    assert {m.message_id for m in broker.received} == {first, last}
    assert "headers unreadable: nested too deeply" in str((await rows(engine))[odd][3])


async def test_headers_stored_as_json_null_are_none(engine: AsyncEngine) -> None:
    """What SQLAlchemy's JSON type stores for None: read as no headers, as before the
    claim read them as text."""
    json_null, empty = await stage(engine, 2)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET headers = 'null' WHERE id = :id"), {"id": json_null.hex}
        )
        await connection.execute(
            text("UPDATE outbox SET headers = '{}' WHERE id = :id"), {"id": empty.hex}
        )
    broker = ScriptedBroker()

    report = await OutboxRelay(engine, broker, RelayPolicy()).relay_batch()

    assert report.published == 2
    received = {m.message_id: dict(m.headers) for m in broker.received}
    # Only what the relay adds itself (a trace context, when a tracer is set), as for a
    # row whose headers are an empty object.
    assert set(received[json_null]) == set(received[empty]) <= {"traceparent", "tracestate"}
