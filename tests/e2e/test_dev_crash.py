"""``dev`` on its embedded broker, killed with -9 under load, loses nothing.

200 orders at once, ``kill -9`` about one second in, restart with the same files: every
order the database holds ends Confirmed or Rejected, and catalog's stock and reservations
agree with the Confirmed ones. Before the queues lived in a file, the replies the relay had
seen confirmed died with the process and their orders stayed Placed for good.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import time
import uuid
from collections import Counter
from contextlib import closing, suppress
from pathlib import Path

import httpx

from tests.e2e.processes import Background, command_env
from tests.support.auth import HEADERS
from tests.support.servers import free_port

ORDERS = 200
# The first product runs out after a few orders (insufficient_stock), so both outcomes occur.
STOCKS = (5, 100, 100)
KILL_AFTER_SECONDS = 1.0
IN_BROKER_AT_KILL = 5  # events published and not yet consumed when the kill lands
FINAL_STATES = {"Confirmed", "Rejected"}


async def test_kill_9_under_load_leaves_no_order_placed(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = command_env(
        ORDERING_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'ordering.db'}",
        CATALOG_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        BROKER_URL="memory://",
        EMBEDDED_BROKER_PATH=str(tmp_path / "broker.db"),
        SEED_DEMO_PRODUCTS="false",
        # Under this load SQLite's one writer makes the pipeline bursty: events can pass
        # from relay to consumer between two looks. A batch that waits to fill keeps its
        # deliveries unacked for up to a second, so the kill lands on some every time.
        CONSUMER_BATCH_WINDOW_SECONDS="1",
    )

    def start(name: str) -> Background:
        return Background("dev", "--port", str(port), env=env, log_path=tmp_path / f"{name}.log")

    first = start("before-kill")
    try:
        await _wait_ready(first, url)
        initial, answered = await _place_orders_and_kill(first, url, tmp_path)
    finally:
        first.stop()

    second = start("after-restart")
    try:
        await _wait_ready(second, url)
        states = await _wait_settled(tmp_path / "ordering.db", timeout=30)
    finally:
        second.process.send_signal(signal.SIGTERM)
        await second.wait_exit(timeout=10)
        second.stop()

    stuck = Counter(state for state, _, _ in states.values() if state not in FINAL_STATES)
    assert states and not stuck, (
        f"{sum(stuck.values())} of {len(states)} committed orders never settled: {stuck}"
        f" ({answered} POSTs were answered before the kill)"
    )
    confirmed = {order for order, (state, _, _) in states.items() if state == "Confirmed"}
    rejected = {order for order, (state, _, _) in states.items() if state == "Rejected"}
    assert confirmed and rejected  # both outcomes were exercised
    taken: Counter[uuid.UUID] = Counter()
    for order in confirmed:
        _, product, quantity = states[order]
        taken[product] += quantity

    stock, reservations = _catalog(tmp_path / "catalog.db")
    assert stock == {product: initial[product] - taken[product] for product in stock}
    assert {o for o, (state, _, _) in reservations.items() if state == "reserved"} == confirmed
    assert {o for o, (state, _, _) in reservations.items() if state == "rejected"} == rejected
    reserved: Counter[uuid.UUID] = Counter()
    for state, product, quantity in reservations.values():
        if state == "reserved":
            reserved[product] += quantity
    assert reserved == taken


async def _place_orders_and_kill(
    process: Background, url: str, databases: Path
) -> tuple[dict[uuid.UUID, int], int]:
    """Create the products, fire the orders at once and ``kill -9`` the process while they
    are being answered. The products' initial stock, and the orders answered 201 before."""
    limits = httpx.Limits(max_connections=ORDERS)
    async with httpx.AsyncClient(
        headers=HEADERS, base_url=url, timeout=30, limits=limits
    ) as client:
        products: list[str] = []
        for n, stock in enumerate(STOCKS):
            created = await client.post(
                "/api/catalog/products",
                json={"name": f"Product {n}", "price": 1.5, "stockCount": stock},
            )
            assert created.status_code == 201, created.text
            products.append(created.json()["id"])
        rng = random.Random(13)
        answered = 0
        first_answered, half_answered = asyncio.Event(), asyncio.Event()

        async def order() -> None:
            nonlocal answered
            placed = await client.post(
                "/api/ordering/order",
                json={
                    "customerName": "Ann",
                    "productId": rng.choice(products),
                    "quantity": rng.randint(1, 3),
                },
            )
            if placed.status_code == 201:
                answered += 1
                first_answered.set()
                if answered >= ORDERS // 2:
                    half_answered.set()

        posts = [asyncio.create_task(order()) for _ in range(ORDERS)]
        # About a second in (counted from the first answer, so a slow start still kills
        # under load), or as soon as half are answered.
        await asyncio.wait_for(first_answered.wait(), timeout=20)
        with suppress(TimeoutError):
            await asyncio.wait_for(half_answered.wait(), timeout=KILL_AFTER_SECONDS)
        # ... at a moment when events are between a relay's confirm and a consumer's
        # commit: what a broker that keeps its queues in memory loses.
        in_broker = await _wait_in_broker(databases, at_least=IN_BROKER_AT_KILL, timeout=10)
        killed_at = answered
        process.process.send_signal(signal.SIGKILL)
        assert await process.wait_exit(timeout=10) == -signal.SIGKILL
        await asyncio.gather(*posts, return_exceptions=True)  # the rest fail: no server
    assert in_broker >= IN_BROKER_AT_KILL, f"only {in_broker} events in the broker at the kill"
    return dict(zip(map(uuid.UUID, products), STOCKS, strict=True)), killed_at


async def _wait_in_broker(databases: Path, *, at_least: int, timeout: float) -> int:
    """Wait until ``at_least`` events are published (by either relay) and not yet consumed
    (by either inbox); the last count seen. Outboxes are read before inboxes, so the count
    never exceeds what was in the broker when the outboxes were read."""
    deadline = time.monotonic() + timeout
    while True:
        published = _count(databases, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
        consumed = _count(databases, "SELECT count(*) FROM inbox")
        if published - consumed >= at_least or time.monotonic() > deadline:
            return published - consumed
        await asyncio.sleep(0.005)


def _count(databases: Path, statement: str) -> int:
    total = 0
    for service in ("ordering", "catalog"):
        with closing(sqlite3.connect(databases / f"{service}.db")) as connection:
            [(count,)] = connection.execute(statement)
            total += int(count)
    return total


async def _wait_ready(process: Background, url: str) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(headers=HEADERS, timeout=1) as client:
        while time.monotonic() < deadline:
            if process.process.poll() is not None:
                raise AssertionError(f"dev exited {process.process.returncode}:\n{process.log()}")
            try:
                if (await client.get(f"{url}/api/catalog/products")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"dev never answered:\n{process.log()}")


Order = tuple[str, uuid.UUID, int]  # state, product, quantity


async def _wait_settled(database: Path, *, timeout: float) -> dict[uuid.UUID, Order]:
    """Every order in ordering's database, once none is Placed (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        with closing(sqlite3.connect(database)) as connection:
            rows = connection.execute("SELECT id, state, product_id, quantity FROM orders")
            states = {uuid.UUID(o): (s, uuid.UUID(p), q) for o, s, p, q in rows}
        settled = all(state in FINAL_STATES for state, _, _ in states.values())
        if settled or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.1)


def _catalog(database: Path) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, Order]]:
    """Catalog's stock per product, and its reservations by order."""
    with closing(sqlite3.connect(database)) as connection:
        stock = {
            uuid.UUID(p): n for p, n in connection.execute("SELECT id, stock_count FROM products")
        }
        reservations = {
            uuid.UUID(o): (s, uuid.UUID(p), q)
            for o, s, p, q in connection.execute(
                "SELECT order_id, state, product_id, quantity FROM stock_reservations"
            )
        }
    return stock, reservations
