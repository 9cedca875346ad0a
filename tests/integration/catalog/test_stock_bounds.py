"""Every stock change is total: the API refuses a stock that could not take back what live
reservations hold, and a cancel that would overflow the stock column anyway (a stock set
under the API) is dead-lettered at once with the database's error as its reason — not
retried to the delivery limit — on PostgreSQL + RabbitMQ and on the embedded default."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from app.catalog.handlers import SUBSCRIPTIONS
from app.catalog.service import live_reservations
from cloudcrm_outbox.brokers.embedded.broker import EmbeddedBroker
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.runtime.consumer_process import inbox_consumer
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.subscriptions import by_event_name
from tests.support import postgres
from tests.support.consuming import publish, running_consumer, wait_until
from tests.support.plans import explain, index_scan
from tests.support.rabbit import queue_depth, read_queue
from tests.support.sql import sql

PRODUCTS = "/api/catalog/products"
MAX_STOCK = 2_147_483_647
DLQ = "catalog.events.dlq"


async def _reserve(catalog_url: str, product_id: str, quantity: int, state: str) -> None:
    await sql(
        catalog_url,
        "INSERT INTO stock_reservations (order_id, product_id, quantity, state) "
        "VALUES (%s, %s, %s, %s)",
        uuid.uuid4(), uuid.UUID(product_id), quantity, state,
    )  # fmt: skip


async def test_a_stock_that_could_not_take_back_live_reservations_is_refused(
    catalog_api: httpx.AsyncClient, catalog_url: str
) -> None:
    created = await catalog_api.post(PRODUCTS, json={"name": "A", "price": 1, "stockCount": 7})
    product_id = created.json()["id"]
    path = f"{PRODUCTS}/{product_id}"
    await _reserve(catalog_url, product_id, 3, "reserved")  # an order holds 3
    await _reserve(catalog_url, product_id, 500, "released")  # given back: holds nothing

    refused = [
        await catalog_api.put(path, json={"name": "A", "price": 1, "stockCount": MAX_STOCK}),
        await catalog_api.patch(path, json={"stockCount": MAX_STOCK - 2}),
    ]
    for answer in refused:
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"][-1] == "stockCount", error
        assert "live reservations hold 3" in error["msg"], error
        assert "at most 2147483644" in error["msg"], error
    assert await sql(catalog_url, "SELECT stock_count FROM products") == [(7,)]

    fits = await catalog_api.patch(path, json={"stockCount": MAX_STOCK - 3})
    assert fits.status_code == 200, fits.text
    assert fits.json()["stockCount"] == MAX_STOCK - 3


def _cancel(product_id: uuid.UUID, order_id: uuid.UUID, quantity: int) -> bytes:
    return json.dumps(
        {"orderId": str(order_id), "productId": str(product_id), "quantity": quantity}
    ).encode()


def _placed(product_id: uuid.UUID, order_id: uuid.UUID, quantity: int) -> bytes:
    return json.dumps(
        {"orderId": str(order_id), "productId": str(product_id), "customerName": "Ann",
         "quantity": quantity}
    ).encode()  # fmt: skip


async def _setup(catalog_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    product_id, order_id = uuid.uuid4(), uuid.uuid4()
    await sql(catalog_url, "INSERT INTO products (id, name, price, stock_count) "
              "VALUES (%s, 'P', 1, 10)", product_id)  # fmt: skip
    return product_id, order_id


async def _stock_and_reservation(catalog_url: str, order_id: uuid.UUID) -> tuple[Any, ...]:
    """The product's stock and the order's reservation state; () before it has one."""
    rows = await sql(
        catalog_url,
        "SELECT p.stock_count, r.state FROM products p JOIN stock_reservations r "
        "ON r.product_id = p.id WHERE r.order_id = %s",
        order_id,
    )
    return rows[0] if rows else ()


def _requeued(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "requeued after a pause" in r.getMessage()]


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_a_cancel_that_would_overflow_the_stock_is_dead_lettered_at_once(
    catalog_db: str, broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    product_id, order_id = await _setup(catalog_db)
    placed = {"message_id": str(uuid.uuid4()), "type": "OrderPlaced",
              "content_type": "application/json"}  # fmt: skip
    cancel = {**placed, "message_id": str(uuid.uuid4()), "type": "OrderCancelled"}
    async with running_consumer(catalog_db, broker):
        await publish(broker, [(_placed(product_id, order_id, 3), placed)])
        await wait_until(lambda: _stock_is(catalog_db, order_id, (7, "reserved")), timeout=15)
        # Under the API, which would refuse it: the cancel's +3 cannot fit an int4.
        await sql(catalog_db, "UPDATE products SET stock_count = %s", MAX_STOCK)
        await publish(broker, [(_cancel(product_id, order_id, 3), cancel)])
        [dead] = await read_queue(broker, DLQ, expected=1, timeout=10)
    assert dead.message_id == cancel["message_id"]
    reason = str((dead.headers or {})["x-poison-reason"])
    assert reason.startswith("data error: ") and "out of range" in reason, reason
    assert "22003" in reason, reason
    assert not (dead.headers or {}).get("x-delivery-count"), dead.headers  # delivered once
    assert _requeued(caplog) == []
    assert await _stock_and_reservation(catalog_db, order_id) == (MAX_STOCK, "reserved")
    assert await queue_depth(broker, "catalog.events") == 0


async def _stock_is(url: str, order_id: uuid.UUID, expected: tuple[Any, ...]) -> bool:
    return await _stock_and_reservation(url, order_id) == expected


@asynccontextmanager
async def _embedded_consumer(catalog_url: str) -> AsyncIterator[EmbeddedBroker]:
    """Catalog's consumer on SQLite and the embedded broker, as `make run` wires them."""
    broker = EmbeddedBroker(None)
    engine = make_engine(catalog_url)
    index = by_event_name(SUBSCRIPTIONS)
    consumer = inbox_consumer(
        broker,
        service="catalog",
        processor=InboxProcessor(engine, consumer="catalog", subscriptions=index),
        subscriptions=index,
        policy=ConsumerPolicy(),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.wait_for(consumer.ready.wait(), timeout=10)
        yield broker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await broker.close()
        await engine.dispose()


async def _publish_embedded(broker: EmbeddedBroker, event_type: str, body: bytes) -> str:
    message = OutgoingMessage(uuid.uuid4(), event_type, body, {}, datetime.now(UTC))
    result = await broker.publisher().publish_batch([message])
    assert result.confirmed == [message.message_id], result
    return str(message.message_id)


async def test_a_cancel_that_would_overflow_the_stock_is_dead_lettered_at_once_embedded(
    catalog_sqlite: str, caplog: pytest.LogCaptureFixture
) -> None:
    product_id, order_id = await _setup(catalog_sqlite)
    async with _embedded_consumer(catalog_sqlite) as broker:
        await _publish_embedded(broker, "OrderPlaced", _placed(product_id, order_id, 3))
        await wait_until(lambda: _stock_is(catalog_sqlite, order_id, (7, "reserved")), timeout=15)
        await sql(catalog_sqlite, "UPDATE products SET stock_count = %s", MAX_STOCK)
        cancel = await _publish_embedded(broker, "OrderCancelled", _cancel(product_id, order_id, 3))

        async def dead_letters() -> list[Any]:
            return await broker.dead_letters("catalog")

        await wait_until(dead_letters, timeout=10)
        [dead] = await dead_letters()
    assert dead.message_id == cancel
    assert dead.reason.startswith("data error: ") and "CHECK constraint failed" in dead.reason
    assert dead.deaths == 1
    assert _requeued(caplog) == []  # delivered once: never requeued for another try
    # SQLite, like PostgreSQL, never holds more than an int4 in the stock column.
    assert await _stock_and_reservation(catalog_sqlite, order_id) == (MAX_STOCK, "reserved")


@pytest.mark.postgres
async def test_the_live_reservations_of_a_product_are_read_through_their_index(
    catalog_db: str,
) -> None:
    """Every stock write reads them under the product's row lock (which holds off the
    consumer's orders for that product): never a scan of every order's reservation."""
    product = uuid.uuid4()
    await sql(
        catalog_db,
        "INSERT INTO stock_reservations (order_id, product_id, quantity, state) "
        "SELECT gen_random_uuid(), CASE WHEN mod(n, 100) = 0 THEN %s ELSE gen_random_uuid() END, "
        "1, CASE WHEN mod(n, 3) = 0 THEN 'reserved' ELSE 'released' END "
        "FROM generate_series(1, 20000) AS n",
        product,
    )  # fmt: skip
    await sql(catalog_db, "ANALYZE stock_reservations")
    engine = make_engine(catalog_db)
    try:
        statement = str(
            live_reservations(product).compile(
                dialect=engine.sync_engine.dialect, compile_kwargs={"literal_binds": True}
            )
        )
    finally:
        await engine.dispose()
    plan = await explain(catalog_db, statement)
    index_scan(plan, "ix_stock_reservations_live_product_id")
    [(count, held)] = await sql(catalog_db, statement)
    assert (count, held) == (66, 66)  # n = 300, 600, …, 19800


@pytest.mark.postgres
async def test_reservations_are_counted_after_the_product_is_locked(
    catalog: httpx.AsyncClient, catalog_db: str
) -> None:
    """An order taking stock while the write waits for the product's row: the write then
    counts the order's reservation too (a fresh snapshot after the lock), and refuses."""
    created = await catalog.post(PRODUCTS, json={"name": "A", "price": 1, "stockCount": 10})
    product_id = uuid.UUID(created.json()["id"])
    path = f"{PRODUCTS}/{product_id}"
    async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(catalog_db)) as order:
        # The consumer's reservation and take, not committed yet.
        await order.execute(
            "INSERT INTO stock_reservations (order_id, product_id, quantity, state) "
            "VALUES (gen_random_uuid(), %s, 3, 'reserved')",
            (product_id,),
        )
        await order.execute(
            "UPDATE products SET stock_count = stock_count - 3, version = version + 1 "
            "WHERE id = %s",
            (product_id,),
        )
        body = {"stockCount": MAX_STOCK}
        write = asyncio.create_task(catalog.patch(path, json=body))
        await asyncio.sleep(0.5)
        assert not write.done()  # waiting for the order's row lock
        await order.commit()
    refused = await asyncio.wait_for(write, timeout=10)
    assert refused.status_code == 422, refused.text
    assert "live reservations hold 3" in refused.text
    assert await sql(catalog_db, "SELECT stock_count FROM products") == [(7,)]
