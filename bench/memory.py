"""Peak RSS of the relay and of the consumer while a 200,000-row backlog drains through both."""

from __future__ import annotations

import time

import psycopg

from bench.infra import inbox_rows, libpq, peak_rss_mb, processes, service_env
from bench.orders import stock_products
from bench.relay_drain import STAGE


def drain_backlog(
    ordering_db: str, catalog_db: str, broker_url: str, *, rows: int
) -> dict[str, float]:
    """Relay and consumer start idle; ``rows`` orders commit at once; both drain them."""
    stock_products(catalog_db)
    env = service_env(ordering_db, catalog_db, broker_url)
    with (
        psycopg.connect(libpq(ordering_db), autocommit=True) as ordering,
        psycopg.connect(libpq(catalog_db), autocommit=True) as catalog,
        processes(1, "consume", "catalog", env=env, ready="consuming") as [consumer],
        processes(1, "relay", "ordering", env=env, ready="listening for outbox inserts") as [relay],
    ):
        ordering.execute(STAGE, (rows,))
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while inbox_rows(catalog) < rows:
            if time.monotonic() > deadline:
                raise RuntimeError("the backlog did not drain within 10 minutes")
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        return {
            "rows": rows,
            "relay_peak_rss_mb": round(peak_rss_mb(relay), 1),
            "consumer_peak_rss_mb": round(peak_rss_mb(consumer), 1),
            "drain_seconds": round(seconds, 1),
            "orders_per_s_through_both": round(rows / seconds),
        }
