"""Keyed drain against unordered drain: a backlog of KEYS x 5 events, end to end.

Each run gets a fresh producer database, consumer database and RabbitMQ vhost; 2 consumer
processes (``bench.keyed_worker consume``) and 2 relay processes start idle, then the
backlog is committed and the clock runs from that commit until every message has its
row in the consumer's inbox. Keyed: key k's 5 events have sequences 1..5, so the relays
publish each after the previous one's confirm and the key gate applies them in order.
Unordered: the same number of events without keys. Rates in events/s.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg

from bench import infra
from bench.keyed_worker import CONSUMER_READY, RELAY_READY, Tick, worker_env
from cloudcrm_outbox import make_engine, make_sessionmaker, write_events

EVENTS_PER_KEY = 5
PROCESSES = 2  # relays, and consumers: on 2 cores, as many as the curve part found best


@dataclass(frozen=True)
class Stack:
    """One run's fresh databases (SQLAlchemy URLs) and vhost (AMQP URL)."""

    producer: str
    consumer: str
    broker: str


@contextmanager
def fresh_stack() -> Iterator[Stack]:
    """A migrated producer database, a consumer database and a vhost, dropped after."""
    with (
        infra.vhost() as broker,
        infra.service_database("ordering") as producer,
        infra.service_database("ordering") as consumer,
    ):
        yield Stack(producer, consumer, broker)


@contextmanager
def workers(stack: Stack, *, poison_policy: bool = False) -> Iterator[None]:
    """PROCESSES consumers, then PROCESSES relays, each waited for until it is ready (a
    relay: LISTENing, so a commit wakes it at once). One after the other, as a
    deployment's processes come up: the first consumer subscribes every partition queue
    first, so it is their single active consumer (``active_partitions`` tells)."""
    log_dir = infra.ROOT / "bench" / "results"
    with ExitStack() as started:
        for role, database, ready in (
            ("consume", stack.consumer, CONSUMER_READY),
            ("relay", stack.producer, RELAY_READY),
        ):
            env = worker_env(database, stack.broker, poison_policy=poison_policy)
            for index in range(PROCESSES):
                started.enter_context(
                    infra.started_process(
                        [sys.executable, "-m", "bench.keyed_worker", role],
                        env=env,
                        log=log_dir / f"keyed-{role}-{index}.log",
                        ready=ready,
                    )
                )
        yield


async def _write_backlog(database_url: str, *, keys: int, keyed: bool) -> None:
    """KEYS x 5 events in ONE transaction (the clock starts at its commit, as the relay
    drain's does), by five ``write_events`` in a row: every key's 1st event, then every
    key's 2nd, …, so the rows lie in the outbox as five commits of all keys would leave
    them, and each key's sequences are 1..5 in its events' order."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            for wave in range(EVENTS_PER_KEY):
                events = [Tick(n=wave * keys + k) for k in range(keys)]
                names = [f"key-{k}" for k in range(keys)] if keyed else None
                await write_events(session, events, keys=names)
    finally:
        await engine.dispose()


def active_partitions(broker_url: str) -> list[int]:
    """Partition queues per consumer channel that is their single active consumer,
    largest first (e.g. [4]: one consumer holds all four)."""
    vhost = broker_url.rsplit("/", 1)[1]
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_consumers", "-p", vhost, "queue_name", "channel_pid",
         "active", "--no-table-headers"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    by_channel: dict[str, int] = {}
    for line in listed.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and ".p" in fields[0] and fields[2].strip() == "true":
            by_channel[fields[1]] = by_channel.get(fields[1], 0) + 1
    return sorted(by_channel.values(), reverse=True)


@dataclass(frozen=True)
class Drain:
    """One drain: events/s from the backlog's commit to its last inbox row, the keyed
    messages left parked (0 when every key was applied through), and the partition
    queues each consumer was the active consumer of."""

    events_per_s: float
    seconds: float
    parked_left: int
    active_partitions_per_consumer: list[int]

    def summary(self) -> dict[str, object]:
        return {
            "events_per_s": round(self.events_per_s), "seconds": round(self.seconds, 2),
            "parked_left": self.parked_left,
            "active_partitions_per_consumer": self.active_partitions_per_consumer,
        }  # fmt: skip


def drain_once(*, keys: int, keyed: bool, timeout_s: float = 900) -> Drain:
    """One drain of KEYS x 5 events on a fresh stack."""
    total = keys * EVENTS_PER_KEY
    with fresh_stack() as stack, workers(stack):
        asyncio.run(_write_backlog(stack.producer, keys=keys, keyed=keyed))
        started = time.perf_counter()
        with psycopg.connect(infra.libpq(stack.consumer), autocommit=True) as connection:
            while (done := infra.inbox_rows(connection)) < total:
                if time.perf_counter() - started > timeout_s:
                    raise RuntimeError(f"only {done:,} of {total:,} events reached the inbox")
                time.sleep(0.1)  # count(*) is not free: poll gently
            seconds = time.perf_counter() - started
            parked = connection.execute("SELECT count(*) FROM inbox_parked").fetchone()
        spread = active_partitions(stack.broker)
    return Drain(total / seconds, seconds, parked[0] if parked else -1, spread)


def keyed_vs_unordered(*, keys: int, repeat: int) -> dict[str, object]:
    """Medians of ``repeat`` rounds, each a keyed drain then an unordered one (so a slow
    minute of the shared machine weighs on both alike)."""
    runs: dict[str, list[Drain]] = {"keyed": [], "unordered": []}
    for _ in range(repeat):
        for kind, kind_runs in runs.items():
            run = drain_once(keys=keys, keyed=kind == "keyed")
            print(f"  keyed drain, {kind}: {run.summary()}")
            kind_runs.append(run)
    keyed, unordered = (statistics.median(run.events_per_s for run in runs[kind]) for kind in runs)
    return {
        "keys": keys,
        "events": keys * EVENTS_PER_KEY,
        "relays": PROCESSES,
        "consumers": PROCESSES,
        "keyed_events_per_s": round(keyed),
        "unordered_events_per_s": round(unordered),
        "keyed_vs_unordered": round(keyed / unordered, 2),
        "runs": {kind: [run.summary() for run in kind_runs] for kind, kind_runs in runs.items()},
    }
