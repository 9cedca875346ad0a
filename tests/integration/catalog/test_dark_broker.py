"""A consumer whose broker connection goes dark (bytes swallowed, nothing closed) carries
on, on real RabbitMQ and PostgreSQL: it notices within a bound, not minutes later."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import count
from tests.support.catalog import new_product
from tests.support.consuming import order_placed, publish, running_consumer, valid_props, wait_until
from tests.support.proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.fixture
async def proxied_broker(broker: str) -> AsyncIterator[tuple[str, TcpProxy]]:
    """``broker`` through a proxy the test owns: (its URL, the proxy)."""
    proxy = await TcpProxy("127.0.0.1", 5672).start()
    try:
        yield broker.replace(":5672/", f":{proxy.port}/"), proxy
    finally:
        await proxy.close()


# The heartbeat asked for in the URL: a short one in `make test` (the same path, sooner),
# none in `make soak` (the default the connections ask for, DEFAULT_HEARTBEAT_SECONDS).
HEARTBEATS = [2, pytest.param(None, marks=pytest.mark.soak)]


@pytest.mark.parametrize("heartbeat", HEARTBEATS)
async def test_a_consumer_whose_broker_connection_goes_dark_resumes_within_a_minute(
    catalog_db: str, broker: str, proxied_broker: tuple[str, TcpProxy], heartbeat: int | None
) -> None:
    """A dropped NAT mapping or a failed-over load balancer closes nothing: RabbitMQ keeps
    delivering to the silent connection and the consumer waits for deliveries that never
    arrive, until a heartbeat timeout on each side notices. With AMQP's usual 60 s
    heartbeat that is about three minutes of stalled orders; it must be well under one."""
    url, proxy = proxied_broker
    if heartbeat is not None:
        url += f"?heartbeat={heartbeat}"
    product = await new_product(catalog_db, 100)
    async with running_consumer(catalog_db, url):
        await publish(broker, [(order_placed(product, 1), valid_props())])
        await wait_until(lambda: count(catalog_db, "inbox"), timeout=20)
        proxy.go_dark()
        started = time.monotonic()
        await publish(broker, [(order_placed(product, 1), valid_props()) for _ in range(3)])
        await wait_until(lambda: _applied(catalog_db, 4), timeout=60, interval=0.5)
        assert time.monotonic() - started < 60


async def _applied(database_url: str, expected: int) -> bool:
    return await count(database_url, "inbox") == expected
