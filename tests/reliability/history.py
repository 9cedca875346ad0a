"""A Jepsen-style history: every order request and what became of it, then the verdict.

Each request carries a unique customer name (its key), so an order can be found whatever
the HTTP client saw: ok (201), failed (an error answer), or unknown (a timeout).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.conftest import query


@dataclass
class Attempt:
    key: str
    product_id: str
    quantity: int
    status: str = "pending"  # ok | failed | unknown


@dataclass
class Verdict:
    attempts: Counter[str]
    orders: int
    lost: list[str] = field(default_factory=list)  # ok (or committed) but never applied
    partial: list[str] = field(default_factory=list)  # an order without its event, or back
    phantom: list[str] = field(default_factory=list)  # an effect with no order
    applied_twice: int = 0  # stock moved by more than the applied orders say
    pending_outbox: int = 0

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.partial or self.phantom or self.applied_twice or self.pending_outbox
        )


class History:
    def __init__(self, run: str) -> None:
        self.run = run
        self.attempts: list[Attempt] = []

    async def place(
        self, client: httpx.AsyncClient, ordering_url: str, product_id: str, quantity: int
    ) -> Attempt:
        attempt = Attempt(f"{self.run}-{uuid.uuid4().hex[:12]}", product_id, quantity)
        self.attempts.append(attempt)
        try:
            response = await client.post(
                f"{ordering_url}/api/ordering/order",
                json={"customerName": attempt.key, "productId": product_id, "quantity": quantity},
            )
        except httpx.TimeoutException:
            attempt.status = "unknown"
        except httpx.TransportError:
            attempt.status = "failed"  # never reached the service
        else:
            attempt.status = "ok" if response.status_code == 201 else "failed"
        return attempt

    async def check(
        self, ordering_db: str, catalog_db: str, initial_stock: dict[str, int]
    ) -> Verdict:
        orders = {
            name: str(order_id)
            for name, order_id in await query(
                ordering_db,
                "SELECT customer_name, id FROM orders WHERE customer_name LIKE %s",
                f"{self.run}-%",
            )
        }
        events = {
            order_id: str(message_id)
            for message_id, order_id in await query(
                ordering_db, "SELECT id, payload->>'orderId' FROM outbox"
            )
        }
        inbox = {
            str(message_id): outcome
            for message_id, outcome in await query(
                catalog_db, "SELECT message_id, outcome FROM inbox WHERE consumer = 'catalog'"
            )
        }
        verdict = Verdict(Counter(a.status for a in self.attempts), orders=len(orders))
        applied: Counter[str] = Counter()
        for attempt in self.attempts:
            order_id = orders.get(attempt.key)
            if order_id is None:
                if attempt.status == "ok":
                    verdict.lost.append(attempt.key)
                continue
            message_id = events.get(order_id)
            if message_id is None:
                verdict.partial.append(attempt.key)
                continue
            outcome = inbox.get(message_id)
            if outcome is None:
                verdict.lost.append(attempt.key)
            elif outcome == "applied":
                applied[attempt.product_id] += attempt.quantity
        known_messages = set(events.values())
        verdict.phantom = [mid for mid in inbox if mid not in known_messages]
        stocks = dict(await query(catalog_db, "SELECT id::text, stock_count FROM products"))
        for product, initial in initial_stock.items():
            expected = initial - applied[product]
            verdict.applied_twice += max(0, expected - stocks[product])
            if stocks[product] > expected:  # an applied order whose effect is missing
                verdict.lost.append(f"stock of {product}: {stocks[product]} > {expected}")
        [(pending,)] = await query(
            ordering_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        verdict.pending_outbox = int(pending)
        return verdict


async def settle(
    history: History,
    client: httpx.AsyncClient,
    ordering_url: str,
    ordering_db: str,
    catalog_db: str,
    sentinel_product: str,
    *,
    timeout: float = 120.0,
) -> None:
    """Wait until the system is quiet: a sentinel order placed last has been applied, no
    outbox row is pending and every recorded order has its inbox row (no sleep-and-hope)."""
    sentinel = await history.place(client, ordering_url, sentinel_product, 1)
    assert sentinel.status == "ok", "the sentinel order must go through"
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        [(pending,)] = await query(
            ordering_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        [(outbox,)] = await query(ordering_db, "SELECT count(*) FROM outbox")
        [(inbox,)] = await query(catalog_db, "SELECT count(*) FROM inbox")
        if pending == 0 and inbox >= outbox:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"not settled in {timeout}s: pending={pending} outbox={outbox} inbox={inbox}"
    )
