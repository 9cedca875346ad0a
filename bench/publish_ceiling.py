"""The broker's ceiling: pipelined publishes with confirms, no database."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import aio_pika

from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.brokers.rabbitmq.publishing.path import PublishPath
from cloudcrm_outbox.brokers.rabbitmq.publishing.publisher import AmqpPublisher
from cloudcrm_outbox.names import DEFAULT_NAMES

BODY = (
    b'{"orderId": "7c1f5e1e-8a3b-4c1e-9a7e-3b1b2f6d1a11", "productId": '
    b'"0b6f3c1e-2d4a-4f5b-8c6d-7e8f9a0b1c2d", "customerName": "Ann", "quantity": 1}'
)


async def _setup(
    url: str, queue: str
) -> tuple[
    aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractExchange, aio_pika.abc.AbstractQueue
]:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.declare_exchange(
        DEFAULT_NAMES.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    declared = await channel.declare_queue(queue, durable=True)
    await declared.bind(exchange, "OrderPlaced")
    return connection, exchange, declared


async def aio_pika_ceiling(url: str, *, messages: int, in_flight: int = 500) -> float:
    """aio-pika's own API (Message + Exchange.publish), ``in_flight`` confirms outstanding."""
    connection, exchange, queue = await _setup(url, "bench.ceiling")
    try:
        started = time.perf_counter()
        for start in range(0, messages, in_flight):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            BODY,
                            message_id=str(uuid.uuid4()),
                            type="OrderPlaced",
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            timestamp=datetime.now(UTC),
                        ),
                        "OrderPlaced",
                        mandatory=True,
                        timeout=30,
                    )
                    for _ in range(min(in_flight, messages - start))
                )
            )
        rate = messages / (time.perf_counter() - started)
        await queue.purge()
        return rate
    finally:
        await connection.close()


async def relay_publisher_ceiling(
    url: str, *, messages: int, batch: int = 500, publish_path: PublishPath = "fast"
) -> float:
    """The relay's own publisher (confirms), no database: ``publish_path`` "fast" writes a
    batch as one frame write, "public" through aiormq's basic_publish per message."""
    connection, _, queue = await _setup(url, "bench.ceiling")
    publisher = AmqpPublisher(url, publish_timeout=30, publish_path=publish_path)
    try:
        started = time.perf_counter()
        for start in range(0, messages, batch):
            now = datetime.now(UTC)
            result = await publisher.publish_batch(
                [
                    OutgoingMessage(uuid.uuid4(), "OrderPlaced", BODY, {"event_version": "1"}, now)
                    for _ in range(min(batch, messages - start))
                ]
            )
            assert result.broken is None and not result.rejected, result
        rate = messages / (time.perf_counter() - started)
        await queue.purge()
        return rate
    finally:
        await publisher.close()
        await connection.close()
