"""End-to-end latency: an order's commit to catalog's inbox commit, under open-loop load.

Open loop: order i is due at ``start + i / rate`` whether or not earlier orders are done,
as real clients arrive; a closed loop (next order after the previous one's effect) would
slow down with the system and hide its queueing. The relay and the consumer run as their
own processes, exactly as deployed (``python -m app relay ordering`` and ``consume
catalog``), on their default settings.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from bench.floors import IDLE_PAUSE_S
from bench.infra import cpu_by_group, libpq, processes, service_env, wait_for_inbox
from bench.orders import (
    clock,
    install_clock,
    place_order,
    product_id,
    run_orders,
    stock_products,
)
from bench.stats import latency_summary

# A rate is "flat" when the generator offered it and the backlog grew by less than this
# share of the rate per second over the second half of the run.
FLAT_GROWTH_SHARE = 0.02
OFFERED_SHARE = 0.97


@dataclass
class Run:
    rate: float
    seconds: float
    achieved_per_s: float
    latencies_s: list[float] = field(repr=False)
    missing: int
    backlog_growth_per_s: float
    cores_used: dict[str, float] = field(default_factory=dict)  # CPU by process group
    each_p50_ms: list[float] = field(default_factory=list)  # when several runs are pooled

    @property
    def flat(self) -> bool:
        # pgbench's arrivals are Poisson: allow three standard deviations of the count.
        noise = 3 * math.sqrt(self.rate * self.seconds) / self.seconds
        return (
            self.missing == 0
            and self.achieved_per_s >= OFFERED_SHARE * self.rate - noise
            and self.backlog_growth_per_s <= max(1.0, FLAT_GROWTH_SHARE * self.rate)
        )

    def summary(self) -> dict[str, object]:
        return {
            "offered_per_s": self.rate,
            "achieved_per_s": round(self.achieved_per_s, 1),
            "seconds": self.seconds,
            **latency_summary(self.latencies_s),
            "missing": self.missing,
            "backlog_growth_per_s": round(self.backlog_growth_per_s, 1),
            "backlog_flat": self.flat,
            "cores_used": {k: round(v, 2) for k, v in self.cores_used.items() if v >= 0.01},
        } | ({"each_run_p50_ms": self.each_p50_ms} if self.each_p50_ms else {})


def pooled(runs: Sequence[Run]) -> Run:
    """Several runs at one rate as one: every latency together (their p50 is steadier
    against the VM's drift between runs than any one run's), orders over the total time,
    the largest backlog growth, every missing order, the CPU averaged; each run's own p50
    kept beside it."""
    if len(runs) == 1:
        return runs[0]
    seconds = sum(run.seconds for run in runs)
    groups = {group for run in runs for group in run.cores_used}
    return Run(
        rate=runs[0].rate,
        seconds=seconds,
        achieved_per_s=sum(run.achieved_per_s * run.seconds for run in runs) / seconds,
        latencies_s=[latency for run in runs for latency in run.latencies_s],
        missing=sum(run.missing for run in runs),
        backlog_growth_per_s=max(run.backlog_growth_per_s for run in runs),
        cores_used={g: sum(r.cores_used.get(g, 0.0) for r in runs) / len(runs) for g in groups},
        each_p50_ms=[latency_summary(run.latencies_s)["p50_ms"] for run in runs],
    )


def backlog_growth_per_s(commits: Sequence[float], arrivals: Sequence[float]) -> float:
    """Least-squares slope of (committed - arrived) over the second half of the load."""
    committed, arrived = sorted(commits), sorted(arrivals)
    start, end = committed[0], committed[-1]
    times = [start + (end - start) * (0.5 + 0.5 * step / 20) for step in range(21)]
    backlog = [bisect.bisect_right(committed, t) - bisect.bisect_right(arrived, t) for t in times]
    mean_t, mean_b = sum(times) / len(times), sum(backlog) / len(backlog)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (b - mean_b) for t, b in zip(times, backlog, strict=True)) / spread


@dataclass
class Pipeline:
    """Relay and consumer processes between one ordering and one catalog database."""

    ordering_db: str
    catalog_db: str
    products: int

    async def offer(self, rate: float, seconds: float) -> Run:
        """Place ``rate`` orders per second (pgbench, open loop) for ``seconds``; wait until
        every one has reached the inbox."""
        with clock(self.ordering_db) as committed, clock(self.catalog_db) as arrived:
            # Enough clients that a slow commit does not hold back the next due order.
            clients = max(1, min(16, round(rate / 250)))
            with cpu_by_group() as cores:
                await asyncio.to_thread(
                    run_orders,
                    self.ordering_db,
                    products=self.products,
                    seconds=seconds,
                    clients=clients,
                    rate=rate,
                )
            commits = committed.collect()
            await asyncio.to_thread(
                self._wait_for_inbox, set(commits), timeout=60 + len(commits) / 500
            )
            arrivals = arrived.collect()
        run = _run(rate, seconds, commits, arrivals)
        run.cores_used = dict(sorted(cores.items(), key=lambda item: -item[1]))
        return run

    async def one_at_a_time(self, orders: int, *, pause: float = IDLE_PAUSE_S) -> Run:
        """``orders`` orders, each placed after the previous one arrived and a pause."""
        product = product_id(1)
        with clock(self.ordering_db) as committed, clock(self.catalog_db) as arrived:
            async with await psycopg.AsyncConnection.connect(
                libpq(self.ordering_db), autocommit=True
            ) as connection:
                for _ in range(orders):
                    await asyncio.sleep(pause)  # idle: nothing in flight when it commits
                    await place_order(connection, product)
            commits = committed.collect()
            await asyncio.to_thread(self._wait_for_inbox, set(commits), timeout=60)
            arrivals = arrived.collect()
        return _run(orders / (orders * pause), orders * pause, commits, arrivals)

    def _wait_for_inbox(self, message_ids: set[str], *, timeout: float) -> None:
        """Until every one of ``message_ids`` has its inbox row (the clock keeps stamping)."""
        wait_for_inbox(self.catalog_db, list(message_ids), timeout=timeout, what="orders")


def _run(rate: float, seconds: float, commits: dict[str, float], arrivals: dict[str, float]) -> Run:
    latencies = [arrivals[m] - t for m, t in commits.items() if m in arrivals]
    times = sorted(commits.values())
    achieved = len(times) / seconds
    return Run(
        rate=rate,
        seconds=seconds,
        achieved_per_s=achieved,
        latencies_s=latencies,
        missing=len(commits) - len(latencies),
        backlog_growth_per_s=backlog_growth_per_s(
            times, [arrivals[m] for m in commits if m in arrivals]
        ),
    )


@contextmanager
def pipeline(ordering_db: str, catalog_db: str, broker_url: str) -> Iterator[Pipeline]:
    """The whole deployment's messaging, idle and ready: ``relay ordering`` and ``consume
    catalog`` (the path measured), and ``relay catalog`` and ``consume ordering``, which
    carry catalog's replies back and compete for the same cores, as they do in production."""
    install_clock(ordering_db, table="outbox", column="id")
    install_clock(catalog_db, table="inbox", column="message_id")
    products = stock_products(catalog_db)
    env = service_env(ordering_db, catalog_db, broker_url)
    with (
        processes(1, "consume", "catalog", env=env, ready="consuming"),
        processes(1, "consume", "ordering", env=env, ready="consuming"),
        processes(1, "relay", "ordering", env=env, ready="listening for outbox inserts"),
        processes(1, "relay", "catalog", env=env, ready="listening for outbox inserts"),
    ):
        yield Pipeline(ordering_db, catalog_db, len(products))


async def highest_flat_rate(
    line: Pipeline, known: dict[float, Run], *, seconds: float = 8, ceiling: float = 10_000
) -> tuple[float, dict[float, Run]]:
    """The highest offered rate with a flat backlog, to within 250 orders/s."""
    runs = dict(known)

    async def flat(rate: float) -> bool:
        if rate not in runs:
            runs[rate] = await line.offer(rate, seconds)
        return runs[rate].flat

    low = max((rate for rate, run in runs.items() if run.flat), default=0.0)
    high = min((rate for rate, run in runs.items() if not run.flat), default=None)
    while high is None:  # every rate so far kept up: go higher until one does not
        candidate = min(ceiling, max(1000.0, low * 1.5))
        if candidate <= low:
            return low, runs
        if await flat(candidate):
            low = candidate
        else:
            high = candidate
    while high - low > 250:
        middle = round((low + high) / 2 / 125) * 125
        if await flat(middle):
            low = middle
        else:
            high = middle
    return low, runs
