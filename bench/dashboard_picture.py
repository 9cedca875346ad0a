"""A picture of the CloudCrm dashboard's main panels, drawn from a real run (``python -m
bench.dashboard_picture``): the whole loop in one process (dev: SQLite + the embedded
broker), 40 orders a second for a minute (one in ten for a product nobody sells),
``/metrics`` scraped every second and the dashboard's queries computed from the samples as
Prometheus would. Writes docs/dashboard.png."""

from __future__ import annotations

import asyncio
import itertools
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from prometheus_client.parser import text_string_to_metric_families

from app.cli.dev import create_dev_app
from app.core.settings import Settings

OUT = Path(__file__).resolve().parents[1] / "docs" / "dashboard.png"
SECONDS, RATE = 60, 40  # orders per second

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def quantile(q: float, buckets: dict[float, float]) -> float:
    """histogram_quantile over cumulative bucket counts (linear within a bucket)."""
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0:
        return 0.0
    rank, previous_bound, previous_count = q * count, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(buckets[bound] - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, buckets[bound]
    return previous_bound


def lag_buckets(samples: Samples) -> dict[float, float]:
    found: dict[float, float] = defaultdict(float)
    for (name, labels), value in samples.items():
        if name == "inbox_lag_seconds_bucket":
            found[float(dict(labels)["le"])] += value
    return found


async def run() -> list[tuple[float, Samples]]:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            ordering_database_url=f"sqlite+aiosqlite:///{directory}/ordering.db",
            catalog_database_url=f"sqlite+aiosqlite:///{directory}/catalog.db",
            embedded_broker_path=f"{directory}/broker.db",
            broker_url="memory://",
            log_level="WARNING",
        )
        app = create_dev_app(settings)
        transport = httpx.ASGITransport(app=app)
        scraped: list[tuple[float, Samples]] = []
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            products = (await client.get("/api/catalog/products")).json()
            ids = [p["id"] for p in products]
            started = time.monotonic()

            async def place() -> None:
                while (now := time.monotonic() - started) < SECONDS:
                    # Every tenth order is for a product nobody sells (Rejected).
                    product = (
                        str(random.choice(ids))
                        if random.random() > 0.1
                        else ("00000000-0000-4000-8000-000000000000")
                    )
                    await client.post(
                        "/api/ordering/order", json={"customerName": "Ann", "productId": product}
                    )
                    await asyncio.sleep(max(0.0, 1 / RATE - (time.monotonic() - started - now)))

            async def scrape() -> None:
                while time.monotonic() - started < SECONDS + 5:
                    text = (await client.get("/metrics")).text
                    scraped.append((time.monotonic() - started, parse(text)))
                    await asyncio.sleep(1)

            await asyncio.gather(place(), scrape())
        return scraped


def draw(scraped: list[tuple[float, Samples]]) -> None:
    times = [t for t, _ in scraped]
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.5))
    fig.suptitle("CloudCrm outbox — the dashboard's main panels, from a 60 s run of `dev`")

    def rate(name: str, **labels: str) -> list[float]:
        values = [total(s, name, **labels) for _, s in scraped]
        steps = zip(itertools.pairwise(values), itertools.pairwise(times), strict=True)
        return [0.0] + [(b - a) / max(t2 - t1, 1e-9) for (a, b), (t1, t2) in steps]

    ax = axes[0][0]
    for service in ("ordering", "catalog"):
        ax.plot(times, [total(s, "outbox_pending_messages", service=service) for _, s in scraped],
                label=service)  # fmt: skip
    ax.set_title("Outbox backlog (rows waiting)")
    ax.legend()
    ax = axes[0][1]
    ax.plot(times, rate("outbox_published_total", service="ordering"), label="ordering published")
    ax.plot(times, rate("inbox_processed_total", consumer="catalog"), label="catalog applied")
    ax.set_title("Messages / s")
    ax.legend()
    ax = axes[1][0]
    p50, p99 = [], []
    previous: dict[float, float] = {}
    for _, samples in scraped:
        now = lag_buckets(samples)
        window = {b: now[b] - previous.get(b, 0.0) for b in now}
        p50.append(quantile(0.5, window) * 1000 if window else 0.0)
        p99.append(quantile(0.99, window) * 1000 if window else 0.0)
        previous = now
    ax.plot(times, p50, label="p50")
    ax.plot(times, p99, label="p99")
    ax.set_title("Commit → inbox commit lag (ms; 1 s timestamp resolution)")
    ax.legend()
    ax = axes[1][1]
    for outcome in ("applied", "unknown_product"):
        ax.plot(times, rate("inbox_processed_total", consumer="catalog", outcome=outcome),
                label=outcome)  # fmt: skip
    ax.set_title("Catalog outcomes / s")
    ax.legend()
    for row in axes:
        for panel in row:
            panel.set_xlabel("s")
            panel.grid(alpha=0.3)
    fig.tight_layout()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    draw(asyncio.run(run()))
