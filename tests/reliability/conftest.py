from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.reliability.history import History, Verdict, settle
from tests.support.auth import HEADERS
from tests.support.config import SERVERS
from tests.support.deployment import Deployment

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

STOCK = 10_000_000


REPORT: list[dict[str, object]] = []
REPORT_FILE = Path(__file__).resolve().parents[2] / "bench" / "results" / "reliability.json"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write what each scenario saw, for the README's Reliability table."""
    if REPORT:
        import json

        REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
        REPORT_FILE.write_text(json.dumps(REPORT, indent=2) + "\n")


async def run_load(
    deployment: Deployment,
    *,
    scenario: str,
    faults: str,
    orders: int = SERVERS.reliability_orders,
    clients: int = 16,
    rate: float | None = None,
    during: Callable[[], Awaitable[None]] | None = None,
    latencies: list[float] | None = None,
) -> Verdict:
    """Place ``orders`` from ``clients`` concurrent clients while ``during`` injects faults,
    settle on a sentinel, and return the checker's verdict."""
    import asyncio

    history = History(f"run{random.randrange(10**9)}")
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        products = [await deployment.new_product(client, STOCK) for _ in range(4)]
        sentinel = await deployment.new_product(client, STOCK)
        remaining = orders
        rng = random.Random(11)

        async def one_order() -> None:
            started = time.monotonic()
            await history.place(
                client, deployment.ordering_url, rng.choice(products), rng.randint(1, 5)
            )
            if latencies is not None:
                latencies.append(time.monotonic() - started)

        async def customer() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one_order()

        async def open_loop(per_second: float) -> None:
            # A steady offered load: an order every 1/rate s, whatever the answers take.
            pending = []
            for _ in range(orders):
                pending.append(asyncio.create_task(one_order()))
                await asyncio.sleep(1 / per_second)
            await asyncio.gather(*pending)

        injecting = [asyncio.create_task(during())] if during else []
        if rate is None:
            await asyncio.gather(*(customer() for _ in range(clients)))
        else:
            await open_loop(rate)
        for task in injecting:
            await task
        await settle(
            history,
            client,
            deployment.ordering_url,
            deployment.ordering_db,
            deployment.catalog_db,
            sentinel,
        )
    initial = dict.fromkeys([*products, sentinel], STOCK)
    verdict = await history.check(deployment.ordering_db, deployment.catalog_db, initial)
    REPORT.append(
        {
            "scenario": scenario,
            "orders": sum(verdict.attempts.values()),
            "ok": verdict.attempts["ok"],
            "failed": verdict.attempts["failed"],
            "unknown": verdict.attempts["unknown"],
            "faults": faults,
            "lost": len(verdict.lost),
            "applied_twice": verdict.applied_twice,
            "pending_outbox": verdict.pending_outbox,
        }
    )
    return verdict
