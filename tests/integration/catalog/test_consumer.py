"""Catalog consumes OrderPlaced through its inbox: once, and poison never blocks."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from tests.conftest import count, query
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import (
    order_placed,
    publish,
    publish_without_message_id,
    running_consumer,
    valid_props,
    wait_until,
)
from tests.support.rabbit import read_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

DLQ = "catalog.events.dlq"


async def outcomes(database_url: str) -> Counter[str]:
    rows = await query(database_url, "SELECT outcome FROM inbox WHERE consumer = 'catalog'")
    return Counter(outcome for (outcome,) in rows)


async def test_the_same_message_three_times_lowers_stock_once(catalog_db: str, broker: str) -> None:
    product = await new_product(catalog_db, 10)
    message_id = uuid.uuid4()
    body = order_placed(product, 3)
    async with running_consumer(catalog_db, broker):
        await publish(broker, [(body, valid_props(message_id))] * 3)
        await wait_until(lambda: _queue_settled(catalog_db, expected_rows=1))
        await asyncio.sleep(0.5)  # room for a wrongly applied duplicate to show

    assert await stock_of(catalog_db, product) == 7
    assert await query(catalog_db, "SELECT message_id, outcome FROM inbox") == [
        (message_id, "applied")
    ]


async def test_duplicates_to_two_consumers_at_once_apply_once(catalog_db: str, broker: str) -> None:
    products = [await new_product(catalog_db, 1000) for _ in range(5)]
    messages = [(order_placed(products[i % 5], 2), valid_props()) for i in range(200)]
    async with (
        running_consumer(catalog_db, broker, prefetch=20, batch_size=10),
        running_consumer(catalog_db, broker, prefetch=20, batch_size=10),
    ):
        # Every message three times, interleaved, so both consumers get copies.
        await publish(broker, messages * 3)
        await wait_until(lambda: _queue_settled(catalog_db, expected_rows=200))
        await asyncio.sleep(0.5)

    assert await outcomes(catalog_db) == Counter(applied=200)
    assert [await stock_of(catalog_db, p) for p in products] == [1000 - 40 * 2] * 5


async def _queue_settled(database_url: str, *, expected_rows: int) -> bool:
    return await count(database_url, "inbox") >= expected_rows


class SimulatedCrashError(BaseException):
    """Escapes every handler, as kill -9 would."""


async def test_crash_after_commit_before_ack_skips_the_redelivery(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 100)
    committed: list[uuid.UUID] = []

    async def crash(message_ids: Sequence[uuid.UUID]) -> None:
        committed.extend(message_ids)
        raise SimulatedCrashError

    with pytest.raises(SimulatedCrashError):
        async with running_consumer(
            catalog_db, broker, after_commit=crash, batch_window_seconds=0.5
        ) as doomed:
            await publish(broker, [(order_placed(product, 5), valid_props()) for _ in range(4)])
            await asyncio.wait_for(doomed, timeout=20)
    assert len(committed) == 4
    assert await stock_of(catalog_db, product) == 80  # committed, never acked

    async with running_consumer(catalog_db, broker):
        await wait_until(lambda: _queue_empty(broker))
        await asyncio.sleep(0.3)

    assert await stock_of(catalog_db, product) == 80  # redeliveries skipped by the inbox
    assert await outcomes(catalog_db) == Counter(applied=4)


async def _queue_empty(broker: str) -> bool:
    from tests.support.rabbit import queue_depth

    return await queue_depth(broker, "catalog.events") == 0


async def test_hot_product_two_consumers_never_oversell(catalog_db: str, broker: str) -> None:
    product = await new_product(catalog_db, 1500)
    async with (
        running_consumer(catalog_db, broker, prefetch=100, batch_size=50),
        running_consumer(catalog_db, broker, prefetch=100, batch_size=50),
    ):
        await publish(broker, [(order_placed(product, 1), valid_props()) for _ in range(2000)])
        await wait_until(lambda: _queue_settled(catalog_db, expected_rows=2000), timeout=60)

    assert await stock_of(catalog_db, product) == 0
    assert await outcomes(catalog_db) == Counter(applied=1500, insufficient_stock=500)


async def test_unknown_product_and_short_stock_are_recorded_not_retried(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 2)
    unknown, short, fits = valid_props(), valid_props(), valid_props()
    async with running_consumer(catalog_db, broker):
        await publish(
            broker,
            [
                (order_placed(uuid.uuid4(), 1), unknown),
                (order_placed(product, 3), short),
                (order_placed(product, 2), fits),
            ],
        )
        await wait_until(lambda: _queue_settled(catalog_db, expected_rows=3))
        await wait_until(lambda: _queue_empty(broker))

    rows = dict(await query(catalog_db, "SELECT message_id::text, outcome FROM inbox"))
    assert rows == {
        unknown["message_id"]: "unknown_product",
        short["message_id"]: "insufficient_stock",
        fits["message_id"]: "applied",
    }
    assert await stock_of(catalog_db, product) == 0


async def test_an_unknown_field_from_a_newer_publisher_is_ignored_and_the_order_applied(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 10)
    newer = valid_props()
    async with running_consumer(catalog_db, broker):
        await publish(
            broker,
            [(order_placed(product, 3, discount=5), {**newer, "headers": {"event_version": "1"}})],
        )
        await wait_until(lambda: _queue_settled(catalog_db, expected_rows=1))
        await wait_until(lambda: _queue_empty(broker))

    assert await query(catalog_db, "SELECT message_id::text, outcome FROM inbox") == [
        (newer["message_id"], "applied")
    ]
    assert await stock_of(catalog_db, product) == 7
    assert await _dead_letters(broker) == 0


async def _dead_letters(broker: str) -> int:
    from tests.support.rabbit import queue_depth

    return await queue_depth(broker, DLQ)


def poison_cases(product: uuid.UUID) -> list[tuple[str, bytes, dict[str, Any], str]]:
    """(case, body, properties, words expected in the reason)."""
    good = order_placed(product, 1)
    return [
        ("invalid JSON", b'{"orderId": ', valid_props(), "invalid OrderPlaced"),
        ("JSON array", b"[1, 2]", valid_props(), "invalid OrderPlaced"),
        (
            "wrong content type",
            good,
            {**valid_props(), "content_type": "text/plain"},
            "content type",
        ),
        ("message_id not a UUID", good, {**valid_props(), "message_id": "abc"}, "not a UUID"),
        (
            "unknown event type",
            good,
            {**valid_props(), "type": "OrderShipped"},
            "unknown event type",
        ),
        ("no type", good, {**valid_props(), "type": None}, "no type"),
        ("quantity 0", order_placed(product, 0), valid_props(), "quantity"),
        ("quantity -5", order_placed(product, -5), valid_props(), "quantity"),
        ("quantity as string", order_placed(product, "3"), valid_props(), "quantity"),  # type: ignore[arg-type]
        (
            "unsupported version",
            good,
            {**valid_props(), "headers": {"event_version": "2"}},
            "unsupported version 2 of OrderPlaced",
        ),
        (
            "missing field",
            b'{"orderId": "' + str(uuid.uuid4()).encode() + b'"}',
            valid_props(),
            "productId",
        ),
        (
            "huge name",
            order_placed(product, 1, customerName="x" * 1000),
            valid_props(),
            "customerName",
        ),
        (
            "body over 64 KiB",
            order_placed(product, 1, customerName="x" * 70_000),
            valid_props(),
            "limit",
        ),
    ]


async def test_poison_is_dead_lettered_with_its_reason_and_the_next_message_flows(
    catalog_db: str, broker: str
) -> None:
    product = await new_product(catalog_db, 1000)
    cases = poison_cases(product)
    messages: list[tuple[bytes, dict[str, Any]]] = []
    valid_ids = []
    for name, body, props, _ in cases:
        headers = {**props.get("headers", {}), "test-case": name}
        messages.append((body, {**props, "headers": headers}))
        follower = valid_props()
        valid_ids.append(follower["message_id"])
        messages.append((order_placed(product, 1), follower))

    async with running_consumer(catalog_db, broker):
        await publish(broker, messages, routing_key=lambda _: "OrderPlaced")
        await publish_without_message_id(
            broker,
            order_placed(product, 1),
            message_type="OrderPlaced",
            content_type="application/json",
            headers={"test-case": "missing message_id"},
        )
        cases.append(("missing message_id", b"", {}, "missing message_id"))
        await wait_until(lambda: _queue_settled(catalog_db, expected_rows=len(cases) - 1))
        dead = await read_queue(broker, DLQ, expected=len(cases), timeout=20)

    reasons = {str(m.headers["test-case"]): str(m.headers["x-poison-reason"]) for m in dead}
    assert set(reasons) == {name for name, *_ in cases}
    for name, _, _, words in cases:
        assert words in reasons[name], (name, reasons[name])
    assert all(m.headers["x-poison-queue"] == "catalog.events" for m in dead)
    applied = {str(mid) for (mid,) in await query(catalog_db, "SELECT message_id FROM inbox")}
    assert applied == set(valid_ids)
    assert await stock_of(catalog_db, product) == 1000 - len(valid_ids)


async def test_message_failing_every_time_is_dead_lettered_after_the_delivery_limit(
    catalog_db: str, broker: str
) -> None:
    healthy, cursed = await new_product(catalog_db, 100), await new_product(catalog_db, 100)
    await query(
        catalog_db,
        f"""
        CREATE FUNCTION fail_cursed() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'cursed product'; END $$;
        CREATE TRIGGER cursed BEFORE UPDATE ON products FOR EACH ROW
            WHEN (OLD.id = '{cursed}') EXECUTE FUNCTION fail_cursed();
        """,
    )
    doomed = valid_props()
    async with running_consumer(catalog_db, broker, delivery_limit=3):
        await publish(
            broker,
            [(order_placed(healthy, 1), valid_props()) for _ in range(5)]
            + [(order_placed(cursed, 1), doomed)]
            + [(order_placed(healthy, 1), valid_props()) for _ in range(5)],
        )
        dead = await read_queue(broker, DLQ, expected=1, timeout=30)
        await wait_until(lambda: _queue_settled(catalog_db, expected_rows=10))

    assert [m.message_id for m in dead] == [doomed["message_id"]]
    reason = dead[0].headers["x-poison-reason"]
    # The limit, and what failed it (the handler's own error, kept from its deliveries).
    assert reason.startswith("delivery limit: failed 3 times (limit 3); last error: "), reason
    assert "cursed product" in reason, reason
    assert await stock_of(catalog_db, healthy) == 90
    assert await stock_of(catalog_db, cursed) == 100
    assert await outcomes(catalog_db) == Counter(applied=10)


async def test_database_connection_cut_during_batches_loses_nothing_applies_nothing_twice(
    catalog_db: str, broker: str
) -> None:
    from urllib.parse import urlsplit

    from tests.support.proxy import TcpProxy

    products = [await new_product(catalog_db, 10_000) for _ in range(4)]
    target = urlsplit(catalog_db.replace("postgresql+psycopg", "postgresql"))
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    via_proxy = catalog_db.replace(f":{target.port}/", f":{proxy.port}/")
    try:
        async with running_consumer(
            via_proxy, broker, batch_size=50, database_reconnect_max_seconds=0.2
        ):
            await publish(
                broker, [(order_placed(products[i % 4], 1), valid_props()) for i in range(3000)]
            )
            for _ in range(6):
                await asyncio.sleep(0.15)
                proxy.cut()
            await wait_until(lambda: _queue_settled(catalog_db, expected_rows=3000), timeout=60)
            await wait_until(lambda: _queue_empty(broker))
    finally:
        await proxy.close()

    assert await outcomes(catalog_db) == Counter(applied=3000)
    assert sum([await stock_of(catalog_db, p) for p in products]) == 4 * 10_000 - 3000


async def test_broker_connection_cut_the_consumer_reconnects_and_applies_each_once(
    catalog_db: str, broker: str
) -> None:
    from urllib.parse import urlsplit

    from tests.support.proxy import TcpProxy

    products = [await new_product(catalog_db, 10_000) for _ in range(4)]
    target = urlsplit(broker)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    via_proxy = broker.replace(f":{target.port}/", f":{proxy.port}/")
    try:
        async with running_consumer(catalog_db, via_proxy, batch_size=50, prefetch=100):

            async def trickle() -> None:  # a steady flow, so the cuts land mid-stream
                for _ in range(20):
                    batch = [(order_placed(products[i % 4], 1), valid_props()) for i in range(150)]
                    await publish(broker, batch)
                    await asyncio.sleep(0.05)

            publishing = asyncio.create_task(trickle())
            for _ in range(5):  # acks, deliveries and commits all get caught mid-way
                await asyncio.sleep(0.25)
                proxy.cut()
            await publishing
            await wait_until(lambda: _queue_settled(catalog_db, expected_rows=3000), timeout=60)
            await wait_until(lambda: _queue_empty(broker))
    finally:
        await proxy.close()

    assert proxy.connections > 1  # it did reconnect
    assert await outcomes(catalog_db) == Counter(applied=3000)
    assert sum([await stock_of(catalog_db, p) for p in products]) == 4 * 10_000 - 3000
