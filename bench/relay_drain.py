"""The relay draining a backlog on PostgreSQL + RabbitMQ, as separate processes."""

from __future__ import annotations

import asyncio
import os
import time

import aio_pika
import psycopg

from bench.infra import libpq, processes
from cloudcrm_outbox.names import DEFAULT_NAMES

# One transaction writes the whole backlog, so the relays start on a committed table. The
# products are the bench's (``bench.orders.product_id``), so a consumer downstream finds them.
STAGE = """
INSERT INTO outbox (id, event_type, payload, headers)
SELECT gen_random_uuid(), 'OrderPlaced',
       json_build_object('orderId', gen_random_uuid(),
                         'productId', md5('bench-product-' || (1 + n %% 100))::uuid,
                         'customerName', 'customer ' || n, 'quantity', 1),
       '{"event_version": "1"}'::json
FROM generate_series(1, %s) AS n
"""


def _pending(connection: psycopg.Connection) -> int:  # type: ignore[type-arg]
    row = connection.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


async def _fresh_queue(broker_url: str) -> None:
    """A bound queue (the relay's messages must be routable) that starts empty."""
    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            DEFAULT_NAMES.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue("bench.relay", durable=True)
        await queue.bind(exchange, "OrderPlaced")
        await queue.purge()


def drain_rate(
    database_url: str,
    broker_url: str,
    *,
    rows: int,
    relays: int,
    keep_table: bool = False,
    publish_path: str = "auto",
) -> float:
    """Start ``relays`` relay processes idle, commit ``rows`` outbox rows, time the drain.

    The outbox starts empty unless ``keep_table`` (the scale test's retained rows);
    ``publish_path``: the relays' RELAY_PUBLISH_PATH."""
    asyncio.run(_fresh_queue(broker_url))
    env = dict(
        os.environ,
        ORDERING_DATABASE_URL=database_url,
        BROKER_URL=broker_url,
        RELAY_PUBLISH_PATH=publish_path,
    )
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        if not keep_table:
            connection.execute("TRUNCATE outbox")
        with processes(relays, "relay", "ordering", env=env, ready="listening for outbox inserts"):
            connection.execute(STAGE, (rows,))  # NOTIFY wakes the relays at this commit
            started = time.perf_counter()
            while _pending(connection):
                time.sleep(0.1)  # count(*) is not free: poll gently
            elapsed = time.perf_counter() - started
    return rows / elapsed
