"""A 10 MB dead letter is seen by every reader the project offers, even while another
reader holds it (librdkafka #488, Apache Pulsar #6961: a dead-lettered message was
reported gone).

Tried as a user would, the consumer dead-lettered a 10 MB message into
``catalog.events.dlq`` and it stayed there; but the readers reported it in neither queue.
A quorum queue cannot be browsed: ``dlq list`` (and the admin API's ``GET dlq``, and the
Operations page through it) takes each dead letter with ``basic.get`` and holds it unacked
until its connection closes, which for 10 MB takes from a third of a second to seconds.
Meanwhile every other reader saw only what nobody held: ``outbox status``, the admin API's
``outbox/status`` and the page's count read a ready count of 0 (queue.declare-ok counts
ready messages only), and a second listing took nothing and printed no dead letters.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import pytest

from app.admin import operations
from app.messaging.registry import all_bindings
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.brokers.rabbitmq.topology import declare_at
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.storage.engine import make_engine
from tests.support.consuming import order_placed, running_consumer, wait_until
from tests.support.rabbit import queue_depth

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

DLQ = "catalog.events.dlq"


async def _dead_lettered_10_mb(broker: str, catalog_db: str) -> str:
    """A 10 MB OrderPlaced published by hand to catalog.events, dead-lettered by the
    consumer (a body over 64 KiB); its message id."""
    await declare_at(broker, all_bindings(), within=30)
    poison_id = str(uuid.uuid4())
    async with running_consumer(catalog_db, broker):
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel(publisher_confirms=True)
            body = order_placed(uuid.uuid4(), customerName="A" * 10_000_000)
            message = aio_pika.Message(
                body, message_id=poison_id, type="OrderPlaced", content_type="application/json"
            )
            await channel.default_exchange.publish(message, "catalog.events")

        async def dead_lettered() -> int:
            return await queue_depth(broker, DLQ)

        await wait_until(dead_lettered, timeout=30)
    return poison_id


@asynccontextmanager
async def another_listing(broker: str) -> AsyncIterator[asyncio.Event]:
    """What a concurrent ``dlq list`` does to the dead-letter queue: it takes the dead
    letter with ``basic.get`` and holds it, unacked, until its connection closes. Yields an
    event: set it to close that connection (the letter goes back to the queue)."""
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold() -> None:
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(DLQ, passive=True)
            assert await queue.get(no_ack=False, fail=False) is not None
            holding.set()
            await release.wait()

    task = asyncio.create_task(hold())
    try:
        await asyncio.wait_for(holding.wait(), timeout=20)
        yield release
    finally:
        release.set()
        await task


async def test_every_reader_sees_a_10_mb_dead_letter_while_another_listing_holds_it(
    broker: str, catalog_db: str
) -> None:
    poison_id = await _dead_lettered_10_mb(broker, catalog_db)
    rabbit = RabbitMQBroker(broker)
    engine = make_engine(catalog_db, pool_size=1)
    try:
        async with another_listing(broker) as release:
            # The readers behind `dlq list`, the admin API's `GET dlq` and `outbox/status`,
            # `outbox status` and the Operations page, several at once, as an operator
            # with a terminal and the page open runs them.
            readers = asyncio.gather(
                *(operations.dlq_list(rabbit, "catalog", limit=100) for _ in range(3)),
                *(operations.outbox_status(engine, rabbit, "catalog") for _ in range(2)),
            )
            await asyncio.sleep(1.0)  # the other listing still holds it
            release.set()
            *listings, first_status, second_status = await readers
    finally:
        await engine.dispose()
    for listing in listings:
        assert [letter["message_id"] for letter in listing["dead_letters"]] == [poison_id]
    assert (first_status["dead_letters"], second_status["dead_letters"]) == (1, 1)
    [letter] = await rabbit.dead_letters("catalog")
    assert (letter.message_id, len(letter.body)) == (poison_id, 10_000_139)


async def test_a_reader_says_the_dead_letters_are_held_rather_than_that_there_are_none(
    broker: str, catalog_db: str
) -> None:
    """Held by another reader for longer than this one may wait (its connect timeout): it
    says so, and counts nothing, instead of reporting an empty queue."""
    poison_id = await _dead_lettered_10_mb(broker, catalog_db)
    rabbit = RabbitMQBroker(broker, connect_timeout=2)
    engine = make_engine(catalog_db, pool_size=1)
    try:
        async with another_listing(broker):
            with pytest.raises(BrokerUnavailableError, match="held by another"):
                await rabbit.dead_letters("catalog")
            status = await operations.outbox_status(engine, rabbit, "catalog")
            assert status["dead_letters"] is None  # not counted: "-", never 0
    finally:
        await engine.dispose()
    assert [letter.message_id for letter in await rabbit.dead_letters("catalog")] == [poison_id]
