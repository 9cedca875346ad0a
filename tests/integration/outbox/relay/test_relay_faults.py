"""Rows that cannot be published fail alone; rows with no route wait for one.

On real PostgreSQL and RabbitMQ: what a row carries into AMQP properties and headers is
checked against the broker's limits, one row at a time, and the rows around it flow.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.brokers.rabbitmq.publishing import frames as amqp_frames
from cloudcrm_outbox.brokers.rabbitmq.publishing import publisher as amqp
from cloudcrm_outbox.brokers.rabbitmq.publishing.path import PublishPath
from cloudcrm_outbox.errors import BrokerUnavailableError
from tests.conftest import query
from tests.integration.outbox.conftest import PUBLISH_PATHS, QUEUE, relay_for, stage_events
from tests.support.events import CATALOG
from tests.support.logs import plain_message
from tests.support.rabbit import bind_queue, queue_depth, read_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

SHORT_255 = "é" * 127 + "a"  # 255 UTF-8 bytes: the most an AMQP short string holds
SHORT_256 = "é" * 128  # 256 bytes
MAX_BODY = 64 * 1024


def _json_string_of(size: int) -> str:
    return f"'\"{'a' * (size - 2)}\"'"  # a JSON string literal whose text is ``size`` bytes


# (case, SQL SET clause for the middle row, whether RabbitMQ can take it, what to check)
CASES: list[tuple[str, str, bool]] = [
    ("routing key and type of 255 bytes", f"event_type = '{SHORT_255}'", True),
    ("routing key and type of 256 bytes", f"event_type = '{SHORT_256}'", False),
    (
        "correlation id of 255 bytes",
        f"headers = json_build_object('correlation_id', '{SHORT_255}')",
        True,
    ),
    (
        "correlation id of 256 bytes",
        f"headers = json_build_object('correlation_id', '{SHORT_256}')",
        False,
    ),
    ("header name of 128 bytes", "headers = json_build_object(repeat('h', 128), 'v')", True),
    ("header name of 129 bytes", "headers = json_build_object(repeat('h', 129), 'v')", False),
    ("header value of 100 KB", "headers = json_build_object('big', repeat('v', 100000))", True),
    (
        "headers larger than a frame",
        "headers = json_build_object('big', repeat('v', 140000))",
        False,
    ),
    ("header integer of 2^62", "headers = json_build_object('n', 4611686018427387904)", True),
    ("header integer of 2^70", "headers = json_build_object('n', 1180591620717411303424)", False),
    ("body of 64 KiB", f"payload = {_json_string_of(MAX_BODY)}", True),
    ("body of 64 KiB + 1", f"payload = {_json_string_of(MAX_BODY + 1)}", False),
    ("headers that are not an object", "headers = '[1, 2]'", False),
    # JSON's 1e999 reads as infinity; RabbitMQ would close the whole connection over it.
    ("header value infinite", """headers = '{"a": [1, {"b": -1e999}]}'""", False),
    ("header name a lone surrogate", """headers = '{"\\ud800": 1}'""", False),
]


@pytest.mark.parametrize(("case", "change", "fits"), CASES, ids=[c[0] for c in CASES])
async def test_each_property_is_checked_against_the_broker_limits_row_by_row(
    outbox_db: str, engine: AsyncEngine, broker: str, case: str, change: str, fits: bool
) -> None:
    await bind_queue(broker, QUEUE, "#")  # every routing key, the 255-byte one too
    first, odd, last = await stage_events(engine, 3)
    await query(outbox_db, f"UPDATE outbox SET {change} WHERE id = %s", odd)
    [(stored_headers, stored_type)] = await query(
        outbox_db, "SELECT headers, event_type FROM outbox WHERE id = %s", odd
    )

    async with relay_for(outbox_db, broker) as relay:
        report = await relay.relay_batch()

    received = {m.message_id: m for m in await read_queue(broker, QUEUE, expected=2 + fits)}
    assert {str(first), str(last)} <= set(received), "the rows around it must flow"
    [(attempts, last_error, published_at)] = await query(
        outbox_db, "SELECT attempts, last_error, published_at FROM outbox WHERE id = %s", odd
    )
    if fits:
        # RabbitMQ took it, and it arrived exactly as the row holds it.
        assert report.published == 3 and published_at is not None
        message = received[str(odd)]
        assert message.type == stored_type and message.routing_key == stored_type
        expected = dict(stored_headers)
        assert message.correlation_id == expected.pop("correlation_id", None)
        assert {k: v for k, v in (message.headers or {}).items() if k in expected} == expected
    else:
        assert report.published == 2 and report.rejected == 1
        assert str(odd) not in received
        assert published_at is None and attempts == 1
        assert last_error.startswith("unpublishable:"), last_error


@PUBLISH_PATHS
async def test_a_broker_refusal_of_one_message_fails_that_row_alone(
    outbox_db: str,
    engine: AsyncEngine,
    broker: str,
    monkeypatch: pytest.MonkeyPatch,
    publish_path: PublishPath,
) -> None:
    # A refusal nobody predicted: RabbitMQ closes the channel (406) over one message. Here
    # the message claims another user (user_id), which RabbitMQ refuses that way.
    await bind_queue(broker, QUEUE, "OrderPlaced")
    ids = await stage_events(engine, 6)
    refused = ids[2]
    original = amqp_frames.properties

    def properties(message: OutgoingMessage, user_id: str | None = None) -> Any:
        props = original(message, user_id)
        if message.message_id == refused:
            props.user_id = "somebody-else"
        return props

    monkeypatch.setattr(amqp_frames, "properties", properties)  # the fast path's
    monkeypatch.setattr(amqp, "properties", properties)  # the public path's
    async with relay_for(outbox_db, broker, publish_path=publish_path) as relay:
        report = await relay.relay_batch()

    assert (report.published, report.rejected) == (5, 1)
    received = await read_queue(broker, QUEUE, expected=5)
    assert {m.message_id for m in received} == {str(i) for i in ids if i != refused}
    [(attempts, last_error)] = await query(
        outbox_db, "SELECT attempts, last_error FROM outbox WHERE id = %s", refused
    )
    assert attempts == 1 and "user_id" in last_error


async def test_an_unroutable_row_is_retried_past_max_attempts_then_failed_by_age(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    [row_id] = await stage_events(engine, 1)  # no queue is bound to OrderPlaced
    policy: dict[str, float] = {
        "max_attempts": 2,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "unroutable_give_up_seconds": 1.0,
        "unroutable_probe_seconds": 0.05,  # alone, the row is its event's probe
    }
    async with relay_for(outbox_db, broker, **policy) as relay:
        for _ in range(6):  # three times max_attempts: not failed for it
            await _relay_when_due(relay, outbox_db, row_id)
        [(failed_at, attempts)] = await query(
            outbox_db, "SELECT failed_at, attempts FROM outbox WHERE id = %s", row_id
        )
        assert failed_at is None and attempts == 0
        while not (await query(outbox_db, "SELECT 1 FROM outbox WHERE failed_at IS NOT NULL")):
            await _relay_when_due(relay, outbox_db, row_id)

    [(attempts, last_error, since, failed_at)] = await query(
        outbox_db,
        "SELECT attempts, last_error, unroutable_since, failed_at FROM outbox WHERE id = %s",
        row_id,
    )
    assert attempts == 0 and "NO_ROUTE" in last_error
    assert (failed_at - since).total_seconds() >= 1.0  # failed by age, not by count


async def _relay_when_due(relay: Any, database_url: str, row_id: uuid.UUID) -> None:
    [(wait,)] = await query(
        database_url,
        "SELECT greatest(0, extract(epoch FROM next_attempt_at - clock_timestamp())) "
        "FROM outbox WHERE id = %s",
        row_id,
    )
    await asyncio.sleep(float(wait) + 0.01)
    await relay.relay_batch()


async def test_the_relay_declares_the_queues_it_publishes_to(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    # A fresh vhost, no consumer ever started: the relay declares catalog.events itself,
    # so the first event is routed and waits there for the consumer.
    ids = await stage_events(engine, 3)
    publisher = amqp.AmqpPublisher(broker, publish_timeout=5, bindings=[CATALOG])
    from cloudcrm_outbox.relay.policy import RelayPolicy
    from cloudcrm_outbox.relay.relay import OutboxRelay

    relay = OutboxRelay(engine, publisher, RelayPolicy())
    try:
        report = await relay.relay_batch()
    finally:
        await publisher.close()
    assert report.published == 3 and report.unroutable == 0
    received = await read_queue(broker, "catalog.events", expected=3)
    assert {m.message_id for m in received} == {str(i) for i in ids}


async def test_a_deleted_queue_is_declared_again_and_its_events_routed(
    outbox_db: str, engine: AsyncEngine, broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(amqp, "REDECLARE_INTERVAL_SECONDS", 0.0)
    publisher = amqp.AmqpPublisher(broker, publish_timeout=5, bindings=[CATALOG])
    from cloudcrm_outbox.relay.policy import RelayPolicy
    from cloudcrm_outbox.relay.relay import OutboxRelay

    relay = OutboxRelay(engine, publisher, RelayPolicy(unroutable_probe_seconds=0))
    try:
        await stage_events(engine, 1)
        assert (await relay.relay_batch()).published == 1
        await _delete_queue(broker, "catalog.events")  # an operator's mistake
        [late] = await stage_events(engine, 1)
        first = await relay.relay_batch()  # returned: no route
        second = await relay.relay_batch()  # declared again, then routed
    finally:
        await publisher.close()
    assert first.unroutable == 1 and second.published == 1
    assert await queue_depth(broker, "catalog.events") == 1
    [(attempts, published_at)] = await query(
        outbox_db, "SELECT attempts, published_at FROM outbox WHERE id = %s", late
    )
    assert attempts == 0 and published_at is not None


async def _delete_queue(broker_url: str, name: str) -> None:
    import aio_pika

    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


async def test_an_exchange_deleted_under_the_relay_is_declared_again(
    outbox_db: str, engine: AsyncEngine, broker: str
) -> None:
    from cloudcrm_outbox.relay.policy import RelayPolicy
    from cloudcrm_outbox.relay.relay import OutboxRelay

    publisher = amqp.AmqpPublisher(broker, publish_timeout=5, bindings=[CATALOG])
    relay = OutboxRelay(engine, publisher, RelayPolicy())
    try:
        await stage_events(engine, 1)
        assert (await relay.relay_batch()).published == 1
        async with await aio_pika.connect(broker) as connection:
            await (await connection.channel()).exchange_delete("cloudcrm.events")
        ids = await stage_events(engine, 2)
        # The broker closes the channel (404): not the rows' fault, nothing marked...
        with pytest.raises(BrokerUnavailableError):
            await relay.relay_batch()
        # ... and the next batch reconnects, declares the exchange and bindings again.
        assert (await relay.relay_batch()).published == 2
    finally:
        await publisher.close()
    received = await read_queue(broker, "catalog.events", expected=3)
    assert {str(i) for i in ids} <= {m.message_id for m in received}
    rows = await query(outbox_db, "SELECT attempts FROM outbox WHERE id = ANY(%s)", ids)
    assert rows == [(0,), (0,)]


@PUBLISH_PATHS
async def test_nacked_rows_stay_pending_uncounted_and_go_once_the_queue_takes_them(
    outbox_db: str,
    engine: AsyncEngine,
    broker: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    publish_path: PublishPath,
) -> None:
    monkeypatch.setattr(amqp, "RENEW_INTERVAL_SECONDS", 0.0)  # a new channel after each
    # A real basic.nack: a queue full at two messages, with reject-publish (RabbitMQ's
    # overflow behaviour that nacks instead of dropping).
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "cloudcrm.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        full = await channel.declare_queue(
            QUEUE, durable=True, arguments={"x-max-length": 2, "x-overflow": "reject-publish"}
        )
        await full.bind(exchange, "OrderPlaced")
    ids = await stage_events(engine, 4)
    caplog.set_level("INFO", logger="cloudcrm_outbox.brokers.rabbitmq.publishing.publisher")

    policy = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.05, "max_attempts": 1}
    async with relay_for(outbox_db, broker, publish_path=publish_path, **policy) as relay:
        for _ in range(3):  # three times max_attempts: a nack never fails a row
            assert (await relay.relay_batch()).nacked == 2
            await asyncio.sleep(0.1)  # past the nacked rows' retry delay
        pending = await query(
            outbox_db,
            "SELECT attempts, failed_at, last_error FROM outbox WHERE published_at IS NULL",
        )
        assert len(pending) == 2
        assert all(a == 0 and f is None and "nacked" in e for a, f, e in pending)
        # Each nacked batch dropped its channel: every batch connected afresh.
        connects = [r for r in caplog.records if plain_message(r) == "connected to RabbitMQ"]
        assert len(connects) == 3

        first_two = await read_queue(broker, QUEUE, expected=2)  # room again
        report = await relay.relay_batch()
    assert (report.claimed, report.published, report.nacked) == (2, 2, 0)
    last_two = await read_queue(broker, QUEUE, expected=2)
    assert {m.message_id for m in [*first_two, *last_two]} == {str(i) for i in ids}


async def test_a_nack_renews_the_channel_without_cutting_a_batch_still_waiting_for_confirms(
    broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relay workers share one publisher. Worker B's 500 messages wait for their confirms
    # (held here until released) while worker A's message is nacked and worker C's next
    # batch opens a fresh channel: B's connection must outlive B's wait, or all 500 would
    # count as lost and be published again.
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "cloudcrm.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        full = await channel.declare_queue(
            "test.full", durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
        )
        await full.bind(exchange, "Nacked")
        fine = await channel.declare_queue(QUEUE, durable=True)
        await fine.bind(exchange, "OrderPlaced")

    release, sent = asyncio.Event(), asyncio.Event()
    real_publish_frames = amqp.publish_frames

    async def held_when_large(channel: Any, encoded: Any) -> Any:
        confirms = await real_publish_frames(channel, encoded)
        if len(encoded) < 100:
            return confirms
        sent.set()

        async def held(confirm: Any) -> Any:
            await release.wait()
            return await confirm

        return [asyncio.ensure_future(held(confirm)) for confirm in confirms]

    monkeypatch.setattr(amqp, "publish_frames", held_when_large)

    def message(event_type: str) -> OutgoingMessage:
        return OutgoingMessage(uuid.uuid4(), event_type, b"{}", {}, datetime.now(UTC))

    publisher = amqp.AmqpPublisher(broker, publish_timeout=10)
    try:
        first = await publisher.publish_batch([message("OrderPlaced")])  # connects
        assert len(first.confirmed) == 1
        b_messages = [message("OrderPlaced") for _ in range(500)]
        b = asyncio.create_task(publisher.publish_batch(b_messages))
        await asyncio.wait_for(sent.wait(), timeout=10)  # B's frames out, confirms held
        a = await publisher.publish_batch([message("Nacked")])
        assert len(a.nacked) == 1
        c = await publisher.publish_batch([message("OrderPlaced")])  # on a fresh channel
        assert len(c.confirmed) == 1 and not b.done()
        release.set()
        b_result = await b
    finally:
        await publisher.close()
    assert b_result.broken is None and len(b_result.confirmed) == 500
    received = await read_queue(broker, QUEUE, expected=502)
    assert len({m.message_id for m in received}) == len(received) == 502  # none twice


@pytest.mark.parametrize("depth", [3000, 900])
async def test_headers_nested_deeper_than_python_reads_fail_that_row_alone(
    outbox_db: str, engine: AsyncEngine, broker: str, depth: int
) -> None:
    """JSON any writer may store (PostgreSQL reads it): Python's JSON reader, at the claim,
    or pamqp's encoder, raised RecursionError, which failed every batch holding the row,
    and every row behind it waited for good."""
    await bind_queue(broker, QUEUE, "OrderPlaced")
    first, odd, last = await stage_events(engine, 3)
    deep = '{"a": ' + "[" * depth + "]" * depth + "}"
    await query(outbox_db, "UPDATE outbox SET headers = CAST(%s AS json) WHERE id = %s", deep, odd)

    async with relay_for(outbox_db, broker) as relay:
        report = await relay.relay_batch()

    received = await read_queue(broker, QUEUE, expected=2)
    assert {m.message_id for m in received} == {str(first), str(last)}
    assert (report.published, report.rejected) == (2, 1)
    [(last_error,)] = await query(outbox_db, "SELECT last_error FROM outbox WHERE id = %s", odd)
    assert last_error.startswith("unpublishable:") and "nested" in last_error, last_error
