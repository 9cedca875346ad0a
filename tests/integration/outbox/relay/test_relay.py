"""The relay against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.rabbitmq.publishing.path import PublishPath
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.storage.engine import make_sessionmaker
from tests.conftest import query
from tests.integration.outbox.conftest import PUBLISH_PATHS, QUEUE, relay_for, stage_events
from tests.support import events as service
from tests.support.rabbit import bind_queue, read_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def pending_ids(database_url: str) -> set[uuid.UUID]:
    rows = await query(database_url, "SELECT id FROM outbox WHERE published_at IS NULL")
    return {row[0] for row in rows}


async def published_ids(database_url: str) -> set[uuid.UUID]:
    rows = await query(database_url, "SELECT id FROM outbox WHERE published_at IS NOT NULL")
    return {row[0] for row in rows}


@PUBLISH_PATHS
async def test_every_committed_row_is_published_with_the_contract_properties(
    outbox_db: str, engine: AsyncEngine, broker: str, publish_path: PublishPath
) -> None:
    await bind_queue(broker, QUEUE, "OrderPlaced")
    sessions = make_sessionmaker(engine)
    for index in range(20):
        async with sessions() as session, session.begin():
            await service.place_order(
                session,
                customer_name=f"customer {index}",
                product_id=uuid.uuid4(),
                quantity=index + 1,
                correlation_id=f"corr-{index}" if index % 2 else None,
            )
    rows = {
        row[0]: row
        for row in await query(outbox_db, "SELECT id, payload, headers, created_at FROM outbox")
    }

    async with relay_for(outbox_db, broker, publish_path=publish_path) as relay:
        assert await relay.drain() == 20

    messages = await read_queue(broker, QUEUE, expected=20)
    assert len(messages) == 20
    for message in messages:
        _, payload, headers, created_at = rows[uuid.UUID(message.message_id or "")]
        assert message.exchange == "cloudcrm.events"
        assert message.routing_key == "OrderPlaced"
        assert message.type == "OrderPlaced"
        assert message.content_type == "application/json"
        assert message.delivery_mode == 2  # persistent
        assert json.loads(message.body) == payload
        assert isinstance(message.timestamp, datetime)
        assert abs((message.timestamp - created_at).total_seconds()) < 1
        assert message.correlation_id == headers.get("correlation_id")
        assert message.headers.get("event_version") == "1"
    assert await pending_ids(outbox_db) == set()


async def test_a_row_committed_late_is_still_published(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    await bind_queue(broker, QUEUE, "OrderPlaced")
    sessions = make_sessionmaker(engine)
    async with relay_for(outbox_db, broker) as relay, sessions() as early:
        # Opened first: its row gets the earliest created_at and next_attempt_at ...
        await early.begin()
        early_order = await service.place_order(
            early, customer_name="early", product_id=uuid.uuid4(), quantity=1
        )
        # ... while later transactions commit and are relayed first.
        await stage_events(engine, 3)
        assert await relay.drain() == 3
        await early.commit()
        assert await relay.drain() == 1

    messages = await read_queue(broker, QUEUE, expected=4)
    order_ids = [json.loads(m.body)["orderId"] for m in messages]
    assert str(early_order.order_id) in order_ids
    assert len(messages) == 4 and await pending_ids(outbox_db) == set()


async def test_three_relays_drain_5000_rows_each_published_once(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    await bind_queue(broker, QUEUE, "OrderPlaced")
    ids = await stage_events(engine, 5000)

    async def one_relay() -> int:
        async with relay_for(outbox_db, broker, batch_size=100) as relay:
            published = 0
            while await pending_ids(outbox_db):
                published += await relay.drain()
            return published

    counts = await asyncio.gather(one_relay(), one_relay(), one_relay())

    messages = await read_queue(broker, QUEUE, expected=5000, timeout=60)
    seen = Counter(m.message_id for m in messages)
    assert len(messages) == 5000
    assert set(seen) == {str(i) for i in ids}
    assert max(seen.values()) == 1
    assert sum(counts) == 5000
    assert all(count > 0 for count in counts), f"a relay did no work: {counts}"


class SimulatedCrashError(BaseException):
    """Not an Exception: nothing in the relay may catch it, as nothing survives kill -9."""


async def test_crash_after_confirm_before_mark_republishes_the_same_messages(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    await bind_queue(broker, QUEUE, "OrderPlaced")
    ids = await stage_events(engine, 30)
    confirmed_before_crash: list[uuid.UUID] = []

    async def crash(confirmed: Sequence[uuid.UUID]) -> None:
        confirmed_before_crash.extend(confirmed)
        raise SimulatedCrashError

    async with relay_for(outbox_db, broker, after_confirm=crash) as doomed:
        with pytest.raises(SimulatedCrashError):
            await doomed.drain()
    assert sorted(confirmed_before_crash) == sorted(ids)
    assert await pending_ids(outbox_db) == set(ids)  # nothing was marked

    async with relay_for(outbox_db, broker) as restarted:
        assert await restarted.drain() == 30

    messages = await read_queue(broker, QUEUE, expected=60)
    seen = Counter(uuid.UUID(m.message_id or "") for m in messages)
    assert seen == dict.fromkeys(ids, 2)  # each published twice, none lost
    assert await pending_ids(outbox_db) == set()


async def test_rolled_back_order_is_never_published(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    await bind_queue(broker, QUEUE, "OrderPlaced")
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await session.begin()
        await service.place_order(
            session, customer_name="gone", product_id=uuid.uuid4(), quantity=1
        )
        await session.rollback()
    async with sessions() as session, session.begin():
        await service.place_order(
            session, customer_name="kept", product_id=uuid.uuid4(), quantity=1
        )

    async with relay_for(outbox_db, broker) as relay:
        assert await relay.drain() == 1

    messages = await read_queue(broker, QUEUE, expected=1)
    assert [json.loads(m.body)["customerName"] for m in messages] == ["kept"]


@PUBLISH_PATHS
async def test_unroutable_message_is_not_marked_published(
    outbox_db: str, engine: AsyncEngine, broker: str, publish_path: PublishPath
) -> None:
    [row_id] = await stage_events(engine, 1)  # no queue is bound to OrderPlaced

    async with relay_for(outbox_db, broker, publish_path=publish_path) as relay:
        report = await relay.relay_batch()

    assert (report.published, report.rejected, report.unroutable) == (0, 0, 1)
    [(published_at, attempts, last_error, failed_at, retry_in, since)] = await query(
        outbox_db,
        "SELECT published_at, attempts, last_error, failed_at, "
        "extract(epoch FROM next_attempt_at - now()), unroutable_since FROM outbox WHERE id = %s",
        row_id,
    )
    assert published_at is None and failed_at is None
    assert attempts == 0  # not the row's fault: no attempt counted
    assert since is not None
    assert "NO_ROUTE" in last_error
    assert retry_in > 0  # backed off, not retried at once


async def test_row_reaching_max_attempts_is_failed_and_the_others_flow(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    await bind_queue(broker, QUEUE, "OrderPlaced")
    [poison] = await stage_events(engine, 1)
    # A correlation id of 260 UTF-8 bytes: over an AMQP short string.
    await query(
        outbox_db,
        "UPDATE outbox SET headers = json_build_object('correlation_id', repeat('é', 130)) "
        "WHERE id = %s",
        poison,
    )
    good = await stage_events(engine, 5)

    async with relay_for(
        outbox_db, broker, max_attempts=3, retry_base_seconds=0, batch_size=50
    ) as relay:
        for _ in range(5):
            await relay.relay_batch()
        good += await stage_events(engine, 2)
        await relay.relay_batch()

    [(attempts, failed_at, last_error, published_at)] = await query(
        outbox_db,
        "SELECT attempts, failed_at, last_error, published_at FROM outbox WHERE id = %s",
        poison,
    )
    assert attempts == 3 and failed_at is not None and published_at is None
    assert "255 bytes" in last_error
    assert await published_ids(outbox_db) == set(good)
    messages = await read_queue(broker, QUEUE, expected=7)
    assert {uuid.UUID(m.message_id or "") for m in messages} == set(good)


async def test_broker_unreachable_marks_nothing(outbox_db: str, engine: AsyncEngine) -> None:
    from tests.support.servers import free_port

    ids = await stage_events(engine, 3)
    async with relay_for(outbox_db, f"amqp://guest:guest@127.0.0.1:{free_port()}/") as relay:
        with pytest.raises(BrokerUnavailableError):
            await relay.relay_batch()
    rows = await query(outbox_db, "SELECT id, attempts FROM outbox WHERE published_at IS NULL")
    assert sorted(rows) == sorted((i, 0) for i in ids)  # not even an attempt counted


@PUBLISH_PATHS
async def test_connection_cut_mid_batch_marks_only_confirmed_rows_then_resumes(
    outbox_db: str, engine: AsyncEngine, broker: str, publish_path: PublishPath
) -> None:
    from urllib.parse import urlsplit

    from tests.support.proxy import TcpProxy

    await bind_queue(broker, QUEUE, "OrderPlaced")
    ids = await stage_events(engine, 2000)
    target = urlsplit(broker)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    via_proxy = broker.replace(f":{target.port}/", f":{proxy.port}/")
    try:
        async with relay_for(
            outbox_db, via_proxy, batch_size=2000, publish_path=publish_path
        ) as relay:
            # Connect first, then cut once ~100 KB of the batch's publishes went upstream.
            proxy.cut_after(150_000)
            with pytest.raises(BrokerUnavailableError):
                await relay.relay_batch()

            marked = await published_ids(outbox_db)
            received = await read_queue(broker, QUEUE, expected=len(marked), timeout=10)
            received_ids = {uuid.UUID(m.message_id or "") for m in received}
            # The invariant: nothing is marked published that the broker did not take.
            assert marked <= received_ids
            assert 0 < len(received_ids) < 2000, "the cut must land mid-batch"

            # The connection comes back: the relay reconnects and publishes the rest.
            published_after = await relay.drain()
    finally:
        await proxy.close()

    assert await pending_ids(outbox_db) == set()
    assert published_after == 2000 - len(marked)
    rest = await read_queue(broker, QUEUE, expected=published_after, timeout=30)
    assert received_ids | {uuid.UUID(m.message_id or "") for m in rest} == set(ids)
