"""Idle wake-up latency: one order at a time, from its commit to catalog's inbox row.

This is what LISTEN/NOTIFY buys over polling: with the system idle, an order's event should
reach the catalog within milliseconds, not within a poll interval.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid

import psycopg

from app.db import make_engine, make_sessionmaker
from app.ordering import service
from bench.infra import libpq, processes


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _measure(ordering_db: str, catalog_db: str, samples: int) -> list[float]:
    product = uuid.uuid4()
    with psycopg.connect(libpq(catalog_db), autocommit=True) as catalog:
        catalog.execute(
            "INSERT INTO products (id, name, price, stock_count) VALUES (%s, 'p', 1, 1000000)",
            (product,),
        )
    engine = make_engine(ordering_db)
    sessions = make_sessionmaker(engine)
    latencies: list[float] = []
    try:
        with psycopg.connect(libpq(catalog_db), autocommit=True) as catalog:
            start_rows = catalog.execute("SELECT count(*) FROM inbox").fetchone()
            seen = int(start_rows[0]) if start_rows else 0
            for _ in range(samples):
                await asyncio.sleep(0.2)  # idle: nothing in flight when the order commits
                async with sessions() as session, session.begin():
                    await service.place_order(
                        session, customer_name="latency", product_id=product, quantity=1
                    )
                committed = time.perf_counter()
                while True:
                    row = catalog.execute("SELECT count(*) FROM inbox").fetchone()
                    if row and int(row[0]) > seen:
                        break
                    await asyncio.sleep(0.0002)
                latencies.append((time.perf_counter() - committed) * 1000)
                seen += 1
    finally:
        await engine.dispose()
    return latencies


def idle_wakeup_ms(
    ordering_db: str, catalog_db: str, broker_url: str, *, samples: int = 50
) -> dict[str, float]:
    """p50 and p99 (ms) from an order's commit to its inbox row, relay and consumer idle."""
    env = dict(
        os.environ,
        ORDERING_DATABASE_URL=ordering_db,
        CATALOG_DATABASE_URL=catalog_db,
        BROKER_URL=broker_url,
    )
    with (
        processes(1, "consume", "catalog", env=env, ready="consuming"),
        processes(1, "relay", "ordering", env=env, ready="listening for outbox inserts"),
    ):
        latencies = asyncio.run(_measure(ordering_db, catalog_db, samples))
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "samples": samples,
    }
