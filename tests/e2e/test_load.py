"""The separate-process deployment under load, with the relay and consumer restarted."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import query
from tests.e2e.processes import Background, command_env
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

CLIENTS = 32


@pytest.fixture
def processes() -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for process in started:
        process.stop()


@pytest.mark.parametrize("orders", [400, pytest.param(2000, marks=pytest.mark.soak)])
async def test_orders_from_32_clients_with_restarts_lose_nothing(
    orders: int,
    ordering_db: str,
    catalog_db: str,
    broker: str,
    processes: list[Background],
    tmp_path: Path,
) -> None:
    ordering_port, catalog_port = free_port(), free_port()
    env = command_env(
        ORDERING_DATABASE_URL=ordering_db,
        CATALOG_DATABASE_URL=catalog_db,
        BROKER_URL=broker,
        CATALOG_API_URL=f"http://127.0.0.1:{catalog_port}",
    )

    def start(*args: str) -> Background:
        process = Background(*args, env=env, log_path=tmp_path / f"{len(processes)}.log")
        processes.append(process)
        return process

    consumer = start("consume", "catalog")
    await consumer.wait_for_log("consuming queue=")
    relay = start("relay", "ordering")
    catalog_api = start("api", "catalog", "--port", str(catalog_port))
    ordering_api = start("api", "ordering", "--port", str(ordering_port))
    for api in (catalog_api, ordering_api):
        await api.wait_for_log("Application startup complete")
    await relay.wait_for_log("listening for outbox inserts")

    catalog = f"http://127.0.0.1:{catalog_port}"
    ordering = f"http://127.0.0.1:{ordering_port}"
    async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
        products = []
        for name in ("A", "B", "C", "D"):
            created = await client.post(
                f"{catalog}/api/catalog/products",
                json={"name": name, "price": 1, "stockCount": 100_000},
            )
            products.append(created.json()["id"])

        rng = random.Random(7)
        plan = [(rng.choice(products), rng.randint(1, 5)) for _ in range(orders)]
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        placed: list[tuple[str, int]] = []
        still_queued_at_restart: list[int] = []

        async def customer() -> None:
            while not queue.empty():
                product, quantity = queue.get_nowait()
                response = await client.post(
                    f"{ordering}/api/ordering/order",
                    json={"customerName": "load", "productId": product, "quantity": quantity},
                )
                assert response.status_code == 201, response.text
                placed.append((product, quantity))

        async def restarts() -> None:
            nonlocal relay, consumer
            for _ in range(2):  # mid-load: SIGTERM the consumer, kill -9 the relay
                await asyncio.sleep(0.7)
                still_queued_at_restart.append(queue.qsize())
                consumer.process.send_signal(signal.SIGTERM)
                await consumer.wait_exit(timeout=15)
                consumer = start("consume", "catalog")
                relay.process.kill()
                relay = start("relay", "ordering")

        await asyncio.gather(*(customer() for _ in range(CLIENTS)), restarts())

    assert len(placed) == orders
    assert still_queued_at_restart[0] > 0, "the restarts must land while orders still come"

    async def settled() -> bool:
        [(inbox,)] = await query(catalog_db, "SELECT count(*) FROM inbox")
        return int(inbox) >= orders

    await wait_until(settled, timeout=90)
    await asyncio.sleep(1)  # room for a duplicate to be (wrongly) applied
    expected = {p: 100_000 - sum(q for pid, q in placed if pid == p) for p in products}
    stocks = dict(await query(catalog_db, "SELECT id::text, stock_count FROM products"))
    assert stocks == expected
    [(inbox_rows, applied)] = await query(
        catalog_db, "SELECT count(*), count(*) FILTER (WHERE outcome = 'applied') FROM inbox"
    )
    assert inbox_rows == applied == orders
    [(pending,)] = await query(
        ordering_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    )
    assert pending == 0
