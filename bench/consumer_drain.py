"""The catalog consumer draining a queue of OrderPlaced, against a naive baseline."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime

import aio_pika
import psycopg
from aiormq.abc import DeliveredMessage
from sqlalchemy import text

from app.messaging.registry import bindings_of
from bench.infra import inbox_rows, libpq, started_together
from bench.orders import stock_products
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.brokers.rabbitmq.publishing.publisher import AmqpPublisher
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_topology
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker


def _fresh_products(database_url: str) -> list[uuid.UUID]:
    """An empty inbox and the bench's products, each run."""
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        connection.execute("TRUNCATE inbox, products, stock_reservations, outbox")
    return stock_products(database_url)


async def fill_queue(broker_url: str, products: list[uuid.UUID], messages: int) -> None:
    """Declare catalog's topology and queue ``messages`` OrderPlaced in it."""
    async with await aio_pika.connect(broker_url) as connection:
        await declare_topology(connection, [bindings_of("catalog")])
        channel = await connection.channel()
        await (await channel.get_queue("catalog.events")).purge()
    publisher = AmqpPublisher(broker_url, publish_timeout=60)
    try:
        for start in range(0, messages, 1000):
            now = datetime.now(UTC)
            batch = [
                OutgoingMessage(
                    uuid.uuid4(),
                    "OrderPlaced",
                    (
                        f'{{"orderId": "{uuid.uuid4()}", '
                        f'"productId": "{products[i % len(products)]}",'
                        f' "customerName": "customer {i}", "quantity": 1}}'
                    ).encode(),
                    {"event_version": "1"},
                    now,
                )
                for i in range(start, min(messages, start + 1000))
            ]
            result = await publisher.publish_batch(batch)
            assert len(result.confirmed) == len(batch), result
    finally:
        await publisher.close()


def consumer_rate(
    database_url: str, broker_url: str, *, messages: int, consumers: int = 1
) -> float:
    """``consumers`` processes of ``python -m app consume catalog`` draining ``messages``
    already queued (competing consumers on one queue)."""
    products = _fresh_products(database_url)
    asyncio.run(fill_queue(broker_url, products, messages))
    env = dict(os.environ, CATALOG_DATABASE_URL=database_url, BROKER_URL=broker_url)
    with (
        psycopg.connect(libpq(database_url), autocommit=True) as connection,
        started_together(consumers, "consume", "catalog", env=env, ready="consuming") as started,
    ):
        while inbox_rows(connection) < messages:
            time.sleep(0.1)  # count(*) is not free: poll gently
        return messages / (time.perf_counter() - started)


async def _naive(database_url: str, broker_url: str, messages: int) -> float:
    """One transaction per message doing what the consumer does for it: inbox insert,
    reservation row, conditional decrement, the reply in catalog's outbox; commit, ack."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    done = asyncio.Event()
    handled = 0

    async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal handled
        body = json.loads(message.body)
        order = {"o": uuid.UUID(body["orderId"]), "p": uuid.UUID(body["productId"])}
        async with sessions() as session, session.begin():
            new = await session.execute(_NAIVE_INBOX, {"id": uuid.UUID(message.message_id or "")})
            if new.first() is not None:
                await session.execute(_NAIVE_RESERVATION, order | {"q": body["quantity"]})
                await session.execute(_NAIVE_TAKE, {"q": body["quantity"], "p": order["p"]})
                reply = {"orderId": body["orderId"], "productId": body["productId"], "quantity": 1}
                await session.execute(_NAIVE_REPLY, {"id": uuid.uuid4(), "body": json.dumps(reply)})
        await message.ack()
        handled += 1
        if handled == messages:
            done.set()

    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.get_queue("catalog.events")
        started = time.perf_counter()
        await queue.consume(handle)
        await done.wait()
        rate = messages / (time.perf_counter() - started)
    await engine.dispose()
    return rate


_NAIVE_INBOX = text(
    "INSERT INTO inbox (consumer, message_id, outcome) VALUES ('naive', :id, 'x') "
    "ON CONFLICT DO NOTHING RETURNING message_id"
)
_NAIVE_RESERVATION = text(
    "INSERT INTO stock_reservations (order_id, product_id, quantity, state) "
    "VALUES (:o, :p, :q, 'reserved') ON CONFLICT DO NOTHING"
)
_NAIVE_TAKE = text(
    "UPDATE products SET stock_count = stock_count - :q WHERE id = :p AND stock_count >= :q"
)
_NAIVE_REPLY = text(
    "INSERT INTO outbox (id, event_type, payload, headers) "
    "VALUES (:id, 'StockReserved', CAST(:body AS json), '{}')"
)


def naive_rate(database_url: str, broker_url: str, *, messages: int) -> float:
    products = _fresh_products(database_url)
    asyncio.run(fill_queue(broker_url, products, messages))
    return asyncio.run(_naive(database_url, broker_url, messages))


async def _raw(broker_url: str, messages: int) -> float:
    """A plain consumer on aiormq's channel (as the service's consumer reads it): prefetch
    1,000, one multiple-ack per 100 messages, no database: what RabbitMQ and the AMQP
    client allow this machine."""
    done = asyncio.Event()
    seen = 0

    async with await aio_pika.connect(broker_url) as connection:
        channel = await (await connection.channel()).get_underlay_channel()
        await channel.basic_qos(prefetch_count=1000)

        async def handle(message: DeliveredMessage) -> None:
            nonlocal seen
            seen += 1
            if seen % 100 == 0 or seen == messages:
                await channel.basic_ack(message.delivery_tag or 0, multiple=True)
            if seen == messages:
                done.set()

        started = time.perf_counter()
        await channel.basic_consume("catalog.events", handle)
        await done.wait()
        return messages / (time.perf_counter() - started)


def raw_consume_ceiling(database_url: str, broker_url: str, *, messages: int) -> float:
    """The same queue of ``messages`` OrderPlaced drained by ``_raw``."""
    products = _fresh_products(database_url)
    asyncio.run(fill_queue(broker_url, products, messages))
    return asyncio.run(_raw(broker_url, messages))
