"""The services as separate processes on PostgreSQL, and ``dev`` on the embedded defaults."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Background, command_env, run_command, running
from tests.support import postgres
from tests.support.auth import API, HEADERS
from tests.support.servers import free_port


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    names = {s: postgres.unique_name(f"cc_e2e_{s}") for s in ("ordering", "catalog")}
    try:
        yield {service: postgres.create_database(name) for service, name in names.items()}
    finally:
        for name in names.values():
            postgres.drop_database(name)


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_separate_processes_on_postgresql_and_rabbitmq(
    databases: dict[str, str], broker: str, tmp_path: Path
) -> None:
    ordering_port, catalog_port = free_port(), free_port()
    catalog_url = f"http://127.0.0.1:{catalog_port}"
    ordering_url = f"http://127.0.0.1:{ordering_port}"
    env = command_env(
        ORDERING_DATABASE_URL=databases["ordering"],
        CATALOG_DATABASE_URL=databases["catalog"],
        CATALOG_API_URL=catalog_url,
        BROKER_URL=broker,
    )
    log = run_command("migrate", env=env)
    assert "ordering" in log and "catalog" in log

    started: list[Background] = []

    def start(*args: str) -> Background:
        process = Background(*args, env=env, log_path=tmp_path / f"{len(started)}.log")
        started.append(process)
        return process

    try:
        await start("consume", "catalog").wait_for_log("consuming queue=")
        relay = start("relay", "ordering")
        catalog = start("api", "catalog", "--port", str(catalog_port))
        ordering = start("api", "ordering", "--port", str(ordering_port))
        for api in (catalog, ordering):
            await api.wait_for_log("Application startup complete")
        await relay.wait_for_log("listening for outbox inserts")

        async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
            created = await client.post(
                f"{catalog_url}/api/catalog/products",
                json={"name": "Product A", "price": 10.5, "stockCount": 53},
            )
            product_id = created.json()["id"]
            order = await client.post(
                f"{ordering_url}/api/ordering/order",
                json={"customerName": "Ann", "productId": product_id, "quantity": 1},
            )
            assert order.status_code == 201, order.text
            deadline = time.monotonic() + 2
            stock = 53
            while stock != 52 and time.monotonic() < deadline:
                product = await client.get(f"{catalog_url}/api/catalog/products/{product_id}")
                stock = product.json()["stockCount"]
            assert stock == 52  # within 2 s of the order
            [listed] = (await client.get(f"{ordering_url}/api/ordering/order")).json()
            assert listed["productName"] == "Product A"

            catalog.stop()  # catalog down: ordering still lists, without names
            listed_without = await client.get(f"{ordering_url}/api/ordering/order")
            assert listed_without.status_code == 200
            assert listed_without.json()[0]["productName"] is None
    finally:
        for process in started:
            process.stop()


def tutorial_stock_flow(url: str, api: httpx.Client = API) -> None:
    """The tutorial: order the seeded Product A (stock 53); within 2 s its stock is 52 and
    the order is Confirmed; cancelled, it gives the unit back (53 again)."""
    products = api.get(f"{url}/api/catalog/products").json()
    [product] = [p for p in products if p["name"] == "Product A"]
    assert product["stockCount"] == 53
    order = api.post(
        f"{url}/api/ordering/order",
        json={"customerName": "Ann", "productId": product["id"], "quantity": 1},
    )
    assert order.status_code == 201, order.text
    order_url = f"{url}/api/ordering/order/{order.json()['id']}"
    stock_url = f"{url}/api/catalog/products/{product['id']}"
    assert _eventually(lambda: api.get(stock_url).json()["stockCount"], 52)
    assert _eventually(lambda: api.get(order_url).json()["state"], "Confirmed")
    [listed] = api.get(f"{url}/api/ordering/order").json()
    assert listed["id"] == order.json()["id"] and listed["productName"] == "Product A"

    cancelled = api.post(f"{order_url}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "Cancelled"
    assert _eventually(lambda: api.get(stock_url).json()["stockCount"], 53)


def _eventually(read: Callable[[], object], expected: object, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while (seen := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen == expected


def test_dev_on_embedded_defaults_with_the_token_it_prints(tmp_path: Path) -> None:
    """A fresh machine: no AUTH_* settings. dev makes its secret under ./var, prints a
    token and the tutorial's curl; the tutorial works with that token, and not without."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in command_env(BROKER_URL="memory://").items() if k != "AUTH_JWT_SECRET"}
    with running("dev", "--port", str(port), env=env, ready_url=f"{url}/docs", cwd=tmp_path):
        [log] = tmp_path.glob(".e2e-dev-*.log")
        printed = log.read_text()
        [token] = re.findall(r"export TOKEN=(\S+)", printed)
        assert f'curl -H "Authorization: Bearer $TOKEN" {url}/api/catalog/products' in printed
        assert httpx.get(f"{url}/api/catalog/products").status_code == 401
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as api:
            tutorial_stock_flow(url, api)
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"]
    assert (tmp_path / "var" / "ordering.db").exists()
    assert (tmp_path / "var" / "catalog.db").exists()
    assert (tmp_path / "var" / "dev-jwt-secret").stat().st_mode & 0o077 == 0  # owner only


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_dev_on_postgresql_and_rabbitmq(databases: dict[str, str], tmp_path: Path) -> None:
    import asyncio

    from tests.support.rabbit import throwaway_vhost

    async def scenario() -> None:
        async with throwaway_vhost() as broker:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = command_env(
                ORDERING_DATABASE_URL=databases["ordering"],
                CATALOG_DATABASE_URL=databases["catalog"],
                BROKER_URL=broker,
            )
            with running("dev", "--port", str(port), env=env, ready_url=f"{url}/docs"):
                await asyncio.to_thread(tutorial_stock_flow, url)

    asyncio.run(scenario())
