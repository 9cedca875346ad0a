"""Costs that must not grow with the tables: the relay's claim beside rows waiting to
retry, a retention run over a large retained history, and the order POST while three
relays clean every second.

Each figure is a ratio to the same thing without the rows (or without the cleaning),
measured alternately in the same run: this machine's speed drifts more than the ratios
being checked.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from contextlib import ExitStack

import psycopg

from bench.http_overhead import post_request
from bench.infra import BENCH_SECRET, ROOT, libpq, processes, started_process
from bench.scale import claim_sql, explain_analyze
from bench.stats import latency_summary
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.storage.retention import delete_published_outbox_rows

WEEK = 7 * 24 * 3600.0
HEADERS = '{"event_version": "1"}'
WAITING = f"""
INSERT INTO outbox (id, event_type, payload, headers, attempts, next_attempt_at)
SELECT gen_random_uuid(), 'OrderPlaced', '{{}}', '{HEADERS}', 3, now() + interval '1 hour'
FROM generate_series(1, %s)
"""
DUE = f"""
INSERT INTO outbox (id, event_type, payload, headers)
VALUES (gen_random_uuid(), 'OrderPlaced', '{{}}', '{HEADERS}')
"""
# Published a day ago: retained (the week's retention deletes none of them).
RETAINED = f"""
INSERT INTO outbox (id, event_type, payload, headers, published_at, created_at)
SELECT gen_random_uuid(), 'OrderPlaced',
       json_build_object('orderId', gen_random_uuid(), 'quantity', 1),
       '{HEADERS}', now() - interval '1 day', now() - interval '1 day'
FROM generate_series(1, %s)
"""


def claim_beside_waiting(empty_db: str, waiting_db: str, *, waiting: int) -> dict[str, object]:
    """The claim (EXPLAIN ANALYZE, median of 30, alternating) with one due row, on an
    outbox holding nothing else and on one holding ``waiting`` rows due in an hour."""
    for url, rows in ((empty_db, 0), (waiting_db, waiting)):
        with psycopg.connect(libpq(url), autocommit=True) as connection:
            connection.execute("TRUNCATE outbox")
            if rows:
                connection.execute(WAITING, (rows,))
            connection.execute(DUE)
            connection.execute("VACUUM ANALYZE outbox")
    times: dict[str, list[float]] = {"empty": [], "waiting": []}
    indexes: set[str] = set()
    claim = claim_sql()
    with psycopg.connect(libpq(empty_db)) as empty, psycopg.connect(libpq(waiting_db)) as full:
        for _ in range(30):
            for name, connection in (("empty", empty), ("waiting", full)):
                ms, used = explain_analyze(connection, claim)
                times[name].append(ms)
                indexes |= used
    empty_ms, waiting_ms = (statistics.median(times[name]) for name in ("empty", "waiting"))
    return {
        "waiting_rows": waiting,
        "empty_claim_ms": round(empty_ms, 3),
        "waiting_claim_ms": round(waiting_ms, 3),
        "claim_ratio": round(waiting_ms / empty_ms, 2),
        "indexes": sorted(indexes),
    }


def cleanup_over_retained(database_url: str, *, retained: int) -> dict[str, object]:
    """A retention run (a week's retention, nothing old enough) over ``retained`` published
    rows: the median and worst of 20 runs, in ms."""
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        connection.execute("TRUNCATE outbox")
        for start in range(0, retained, 500_000):
            connection.execute(RETAINED, (min(500_000, retained - start),))
        connection.execute("VACUUM ANALYZE outbox")

    async def runs() -> list[float]:
        engine = make_engine(database_url, pool_size=1)
        took: list[float] = []
        try:
            for _ in range(21):
                started = time.perf_counter()
                deleted = await delete_published_outbox_rows(
                    engine, older_than_seconds=WEEK, batch_size=1000
                )
                took.append((time.perf_counter() - started) * 1000)
                assert deleted == 0
        finally:
            await engine.dispose()
        return took[1:]  # the first one connects

    took = asyncio.run(runs())
    return {
        "retained_rows": retained,
        "cleanup_run_ms": round(statistics.median(took), 3),
        "cleanup_run_max_ms": round(max(took), 3),
    }


async def _timed_client(port: int, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = post_request(port)
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if head[9:12] != b"201":
                raise RuntimeError(f"POST /api/ordering/order answered {head[:200]!r}")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _post_latencies(port: int, seconds: float, clients: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_timed_client(port, deadline, latencies) for _ in range(clients)))
    return latencies


def post_while_cleaning(
    database_url: str, broker_url: str, *, seconds: float = 8, clients: int = 4
) -> dict[str, object]:
    """POST /api/ordering/order latency (``clients`` closed-loop clients) beside three relays
    of ordering, with retention every second and without (RETENTION_ENABLED=false), in the
    order none, cleaning, cleaning, none; over the rows ``database_url`` retains."""
    port = 8413
    env = dict(
        os.environ,
        ORDERING_DATABASE_URL=database_url,
        BROKER_URL=broker_url,
        AUTH_JWT_SECRET=BENCH_SECRET,
        RETENTION_INTERVAL_SECONDS="1",
        OUTBOX_RETENTION_SECONDS=str(WEEK),
    )
    latencies: dict[str, list[float]] = {"none": [], "cleaning": []}
    with started_process(
        [sys.executable, "-m", "app", "api", "ordering", "--port", str(port)],
        env=env,
        log=ROOT / "bench" / "results" / "api-growth.log",
        ready=f"Uvicorn running on http://127.0.0.1:{port}",
    ):
        asyncio.run(_post_latencies(port, 2, clients))  # warm-up
        for variant in ("none", "cleaning", "cleaning", "none"):
            relays_env = {**env, "RETENTION_ENABLED": str(variant == "cleaning").lower()}
            with ExitStack() as stack:
                stack.enter_context(
                    processes(3, "relay", "ordering", env=relays_env, ready="relay started")
                )
                time.sleep(1)  # every relay has run its first retention
                latencies[variant] += asyncio.run(_post_latencies(port, seconds, clients))
    none, cleaning = (latency_summary(latencies[name]) for name in ("none", "cleaning"))
    return {
        "clients": clients,
        "none_cleaning": none,
        "three_cleaning": cleaning,
        "p99_ratio": round(cleaning["p99_ms"] / none["p99_ms"], 2),
    }
