"""What the idle chain is made of: the broker's own hop and one inbox transaction.

The idle wake-up (order commit -> inbox commit, one order at a time) includes a trip
through a quorum queue and a consumer transaction. Measured alone, at the same rest, on
the same machine, their sum is the chain's floor; the target (issue 19) allows the
relay's wake-up and claim and the consumer's code 2 ms on top of it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika

from app.catalog.handlers import SUBSCRIPTIONS
from app.ordering.contracts import OrderPlaced
from bench.stats import latency_summary
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.subscriptions import by_event_name

# Between samples, the idle wake-up's own pause between orders: each sample starts from
# the same rest as the chain it is a floor of. (10 ms apart, both floors read about
# 0.3 and 0.6 ms lower here: a process woken from a longer sleep pays more on this VM.)
IDLE_PAUSE_S = 0.2


async def quorum_publish_to_delivery(broker_url: str, samples: int = 100) -> dict[str, float]:
    """One persistent message at a time through a quorum queue, as the relay publishes
    (confirms on): publish -> the consumer's callback."""
    connection = await aio_pika.connect(broker_url)
    try:
        publishing = await connection.channel(publisher_confirms=True)
        consuming = await connection.channel()
        queue = await consuming.declare_queue(
            f"bench.floor.{uuid.uuid4().hex[:8]}",
            durable=True,
            arguments={"x-queue-type": "quorum"},
        )
        delivered: asyncio.Queue[float] = asyncio.Queue()

        async def receive(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            delivered.put_nowait(time.perf_counter())
            await message.ack()

        tag = await queue.consume(receive)
        latencies = []
        for _ in range(samples):
            body = aio_pika.Message(b"{}" * 100, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            sent = time.perf_counter()
            await publishing.default_exchange.publish(body, routing_key=queue.name)
            latencies.append(await delivered.get() - sent)
            await asyncio.sleep(IDLE_PAUSE_S)
        await queue.cancel(tag)  # before the delete, which would cancel it noisily
        await queue.delete(if_unused=False, if_empty=False)
        return latency_summary(latencies)
    finally:
        await connection.close()


async def one_message_inbox_transaction(
    catalog_db: str, product: uuid.UUID, samples: int = 100
) -> dict[str, float]:
    """``InboxProcessor.process`` for a single OrderPlaced of ``product`` (in stock):
    BEGIN + inbox insert, the stock update, COMMIT, as the consumer runs it."""
    engine = make_engine(catalog_db, pool_size=1, pre_ping=False)
    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name(SUBSCRIPTIONS)
    )
    try:
        latencies = []
        for index in range(samples + 20):  # the first 20 warm up (prepared statements)
            event = OrderPlaced(
                order_id=uuid.uuid4(), product_id=product, customer_name="bench", quantity=1
            )
            started = time.perf_counter()
            await processor.process([Decoded(message_id=uuid.uuid4(), event=event)])
            if index >= 20:
                latencies.append(time.perf_counter() - started)
            await asyncio.sleep(IDLE_PAUSE_S)
        return latency_summary(latencies)
    finally:
        await engine.dispose()
