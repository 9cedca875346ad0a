"""Relays and consumers whose database connections go dark (bytes swallowed, nothing
closed), as ``python -m app relay|consume`` run: on PostgreSQL and RabbitMQ, through a
proxy the test owns."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.messaging.registry import all_bindings
from app.ordering.contracts import OrderPlaced
from cloudcrm_outbox import add_event
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from tests.conftest import query
from tests.integration.outbox.conftest import relay_for
from tests.support.auth import HEADERS
from tests.support.catalog import stock_of
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

# Short bounds, so that the tests run in seconds: a batch's database work is given 2 s to
# be answered (each statement 1 s on the server).
SHORT = {"DATABASE_ANSWER_TIMEOUT_SECONDS": "2", "CONSUMER_STATEMENT_TIMEOUT_SECONDS": "1"}


async def _unpublished(ordering_db: str) -> int:
    [(pending,)] = await query(
        ordering_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    )
    return int(pending)


async def _placed_after_going_dark(deployment: Deployment) -> tuple[uuid.UUID, list[str]]:
    """A product, one order applied through every connection the processes hold (so each
    holds one), then those connections gone dark and 5 orders placed; the 5 orders' ids."""
    assert deployment.postgres_proxy is not None
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        product = uuid.UUID(await deployment.new_product(client, 100))
        await place(client, deployment, str(product))

        async def first_applied() -> bool:
            return await stock_of(deployment.catalog_db, product) == 99

        await wait_until(first_applied, timeout=30)
        deployment.postgres_proxy.go_dark()
        return product, [await place(client, deployment, str(product)) for _ in range(5)]


async def test_a_consumer_whose_database_connections_go_dark_carries_on(
    deployment: Deployment,
) -> None:
    """sqlx PR #4355 (after a failover, a killed container or a dropped NAT mapping the
    client waits for ever on a reply that never comes), OPAL PR #946, awx PR #14998.

    Every connection catalog's consumer holds goes dark while new ones work: it must
    notice within its configured bound, drop the connection and apply the orders."""
    await deployment.with_proxies()
    await deployment.start(relays=0, **SHORT)  # the consumer through the proxy
    await deployment.add_relay("ordering", ORDERING_DATABASE_URL=deployment.ordering_db)
    product, _ = await _placed_after_going_dark(deployment)

    async def all_applied() -> bool:
        return await stock_of(deployment.catalog_db, product) == 94

    await wait_until(all_applied, timeout=30)
    [(inbox_rows,)] = await query(deployment.catalog_db, "SELECT count(*) FROM inbox")
    assert inbox_rows == 6  # each order once


async def test_a_relay_whose_database_connections_go_dark_carries_on(
    deployment: Deployment,
) -> None:
    """sqlx PR #4355, OPAL PR #946, awx PR #14998: every connection ordering's relay holds
    (its LISTEN connection too) goes dark while new ones work: it must notice within its
    configured bound, drop the connection and publish the orders."""
    await deployment.with_proxies()
    await deployment.start(consumers=0, **SHORT)  # the relay through the proxy
    await deployment.add_consumer("catalog", CATALOG_DATABASE_URL=deployment.catalog_db)
    product, _ = await _placed_after_going_dark(deployment)

    async def all_published() -> bool:
        return await _unpublished(deployment.ordering_db) == 0

    await wait_until(all_published, timeout=30)

    async def all_applied() -> bool:
        return await stock_of(deployment.catalog_db, product) == 94

    await wait_until(all_applied, timeout=30)
    # Its LISTEN connection, dark too, was found out and made again (notifications flow).
    [relay] = deployment.relays
    await relay.wait_for_log("listening for outbox inserts", count=2, timeout=30)


async def _claimed_by_someone(ordering_db: str) -> bool:
    # Pending rows that a SKIP LOCKED claim cannot take: another session holds them.
    pending = await _unpublished(ordering_db)
    [(free,)] = await query(
        ordering_db,
        "SELECT count(*) FROM (SELECT id FROM outbox WHERE published_at IS NULL "
        "FOR UPDATE SKIP LOCKED) AS claimable",
    )
    return pending > 0 and free == 0


async def test_rows_claimed_by_a_relay_cut_off_from_its_database_go_to_another(
    deployment: Deployment,
) -> None:
    """Wolverine #565 (outboxed messages not dispatched after a crash) and #2279 (rows owned
    by a dead node): a relay claims 5 rows (FOR UPDATE SKIP LOCKED) and is cut off from its
    database mid-batch, while it publishes; PostgreSQL would keep its session idle in
    transaction, holding the row locks, for as long as the TCP connection looks alive.
    The claim must not outlive the relay: within the configured claim bound (3 s here)
    another relay publishes those rows."""
    claim_bound = 3.0
    await deployment.with_proxies()
    assert deployment.postgres_proxy is not None and deployment.rabbitmq_proxy is not None
    await RabbitMQBroker(deployment.broker).declare(all_bindings())
    cut_off = await deployment.add_relay(
        "ordering",
        RELAY_CLAIM_TIMEOUT_SECONDS=str(claim_bound),
        RELAY_PUBLISH_TIMEOUT_SECONDS="1",
        **SHORT,
    )
    # Its broker slow from now on: the batch it claims stays in flight for seconds.
    deployment.rabbitmq_proxy.delay = 1.0
    engine = make_engine(deployment.ordering_db)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            ids = [
                add_event(
                    session,
                    OrderPlaced(
                        order_id=uuid.uuid4(),
                        product_id=uuid.uuid4(),
                        customer_name="Ann",
                        quantity=1,
                    ),
                ).id
                for _ in range(5)
            ]
    finally:
        await engine.dispose()

    async def claimed() -> bool:
        return await _claimed_by_someone(deployment.ordering_db)

    await wait_until(claimed, timeout=15, interval=0.02)
    # Cut off mid-batch: its connections go dark, and it dies (nothing it could still
    # send would reach the database anyway).
    deployment.postgres_proxy.go_dark()
    cut_off.process.kill()
    await cut_off.wait_exit(timeout=10)

    async with relay_for(deployment.ordering_db, deployment.broker) as other:

        async def published_by_the_other() -> bool:
            await other.relay_batch()
            return await _unpublished(deployment.ordering_db) == 0

        # The configured bound, and room for a loaded machine: never the 93 s and more
        # that rows stayed locked without one.
        await wait_until(published_by_the_other, timeout=claim_bound + 12, interval=0.2)
    [(marked,)] = await query(
        deployment.ordering_db,
        "SELECT count(*) FROM outbox WHERE id = ANY(%s) AND published_at IS NOT NULL",
        ids,
    )
    assert marked == 5
