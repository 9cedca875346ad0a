"""The order loop as deployed: both APIs, both relays and both consumers as processes on
PostgreSQL and RabbitMQ. Placed -> Confirmed | Rejected by catalog's reply; a cancel gives
the stock back exactly once, and never overtakes its order (both keyed by the order)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import query
from tests.support import postgres
from tests.support.auth import HEADERS
from tests.support.consuming import wait_until
from tests.support.deployment import Deployment, place

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def stock(client: httpx.AsyncClient, deployment: Deployment, product: str) -> int:
    response = await client.get(f"{deployment.catalog_url}/api/catalog/products/{product}")
    count: int = response.json()["stockCount"]
    return count


async def quiet(deployment: Deployment) -> bool:
    """Every event of both outboxes published, and each in its consumer's inbox."""
    ordering, catalog = deployment.ordering_db, deployment.catalog_db
    for source, target in [(ordering, catalog), (catalog, ordering)]:
        [(pending, events)] = await query(
            source, "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox"
        )
        [(handled,)] = await query(target, "SELECT count(*) FROM inbox")
        if pending or handled < events:
            return False
    return True


async def states(deployment: Deployment) -> dict[str, tuple[str, str | None]]:
    rows = await query(
        deployment.ordering_db, "SELECT id::text, state, rejection_reason FROM orders"
    )
    return {order_id: (state, reason) for order_id, state, reason in rows}


async def test_ten_in_stock_and_fifty_concurrent_orders(deployment: Deployment) -> None:
    await deployment.start(replies=True)
    async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
        product = await deployment.new_product(client, 10)
        orders = await asyncio.gather(*(place(client, deployment, product) for _ in range(50)))
        await wait_until(lambda: quiet(deployment), timeout=60)

        final = await states(deployment)
        assert Counter(state for state, _ in final.values()) == {"Confirmed": 10, "Rejected": 40}
        assert {reason for state, reason in final.values() if state == "Rejected"} == {
            "insufficient_stock"
        }
        assert set(final) == set(orders)
        assert await stock(client, deployment, product) == 0
        # What the API shows: a rejected order carries catalog's reason.
        shown = (await client.get(f"{deployment.ordering_url}/api/ordering/order?limit=50")).json()
        assert Counter(order["state"] for order in shown) == {"Confirmed": 10, "Rejected": 40}


async def test_an_unknown_product_is_rejected_with_the_reason(deployment: Deployment) -> None:
    await deployment.start(replies=True)
    async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
        order = await place(client, deployment, "00000000-0000-4000-8000-000000000000")
        url = f"{deployment.ordering_url}/api/ordering/order/{order}"

        async def rejected() -> bool:
            return bool((await client.get(url)).json()["state"] == "Rejected")

        await wait_until(rejected, timeout=30)
        shown = (await client.get(url)).json()
        assert shown["rejectionReason"] == "unknown_product"
        cancel = await client.post(f"{url}/cancel")
        assert cancel.status_code == 409  # rejected: nothing to cancel


@pytest.mark.parametrize("orders", [100, pytest.param(1000, marks=pytest.mark.soak)])
async def test_place_then_cancel_orders_racing(deployment: Deployment, orders: int) -> None:
    """Three relays and two consumers per side; each order is cancelled as soon as it is
    placed, so its OrderCancelled would race its OrderPlaced through different relays if
    they were not keyed, and catalog's replies race the cancels. Little stock, so some
    orders are rejected first (their cancel then answers 409 and gives nothing back)."""
    await deployment.start(relays=3, consumers=2, replies=True)
    initial = 5
    async with httpx.AsyncClient(headers=HEADERS, timeout=60) as client:
        product = await deployment.new_product(client, initial)
        remaining = list(range(orders))
        answers: Counter[int] = Counter()
        rng = random.Random(3)

        async def customer() -> None:
            while remaining:
                remaining.pop()
                order = await place(client, deployment, product)
                if rng.random() < 0.3:  # some replies then arrive before the cancel
                    await asyncio.sleep(rng.uniform(0.05, 0.3))
                cancel = await client.post(
                    f"{deployment.ordering_url}/api/ordering/order/{order}/cancel"
                )
                answers[cancel.status_code] += 1

        await asyncio.gather(*(customer() for _ in range(16)))
        await wait_until(lambda: quiet(deployment), timeout=180)

        assert set(answers) <= {200, 409} and answers.total() == orders
        final = await states(deployment)
        assert len(final) == orders
        assert {state for state, _ in final.values()} <= {"Cancelled", "Rejected"}
        assert sum(state == "Rejected" for state, _ in final.values()) == answers[409]
        assert await stock(client, deployment, product) == initial
    reservations = dict(
        await query(
            deployment.catalog_db, "SELECT state, count(*) FROM stock_reservations GROUP BY state"
        )
    )
    # No reservation is left taken, and each one released was given back by exactly one
    # OrderCancelled (the stock, back at its initial count, says the same in sum).
    assert "reserved" not in reservations and sum(reservations.values()) == orders
    cancels = [
        message_id
        for (message_id,) in await query(
            deployment.ordering_db, "SELECT id FROM outbox WHERE event_type = 'OrderCancelled'"
        )
    ]
    [(gave_back,)] = await query(
        deployment.catalog_db,
        "SELECT count(*) FROM inbox WHERE outcome = 'applied' AND message_id = ANY(%s)",
        cancels,
    )
    assert gave_back == reservations.get("released", 0)
    # Keyed by the order, no cancel overtook its order: catalog's arbitration never fired.
    [(overtaken,)] = await query(
        deployment.catalog_db,
        "SELECT count(*) FROM inbox WHERE outcome = 'cancelled_before_placed'",
    )
    assert overtaken == 0


async def test_a_cancel_is_never_published_before_its_order(
    deployment: Deployment,
) -> None:
    """The race catalog's arbitration was written for, now prevented at the source: a
    stalled relay (here, a transaction the test holds) has claimed the OrderPlaced rows;
    three live relays do not publish the orders' OrderCancelled before them (same key,
    an earlier row unpublished). Released, every order is placed then cancelled, in that
    order: stock restored, and catalog never records a cancel before its order."""
    await deployment.start(relays=0, consumers=2, replies=True)
    orders = 30
    async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
        product = await deployment.new_product(client, 100)
        placed = [await place(client, deployment, product) for _ in range(orders)]
        async with await psycopg.AsyncConnection.connect(
            postgres.sync_dsn(deployment.ordering_db)
        ) as stalled_relay:
            claimed = await stalled_relay.execute(
                "SELECT id FROM outbox WHERE event_type = 'OrderPlaced' FOR UPDATE"
            )
            assert len(await claimed.fetchall()) == orders
            for order in placed:
                response = await client.post(
                    f"{deployment.ordering_url}/api/ordering/order/{order}/cancel"
                )
                assert response.status_code == 200
            for _ in range(3):
                await deployment.add_relay("ordering")
            await deployment.add_relay("catalog")
            await asyncio.sleep(3)  # the live relays' chance to publish out of order
            published = await query(
                deployment.ordering_db,
                "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL",
            )
            assert published == [(0,)]
            assert await query(deployment.catalog_db, "SELECT count(*) FROM inbox") == [(0,)]
            await stalled_relay.rollback()  # the stalled relay gives its rows back
        await wait_until(lambda: quiet(deployment), timeout=60)

        assert await stock(client, deployment, product) == 100
        assert {state for state, _ in (await states(deployment)).values()} == {"Cancelled"}
    outcomes: list[Any] = await query(
        deployment.catalog_db, "SELECT outcome, count(*) FROM inbox GROUP BY outcome"
    )
    assert dict(outcomes) == {"applied": 2 * orders}
