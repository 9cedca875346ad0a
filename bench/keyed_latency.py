"""Healthy keys' latency beside poisoned keys: commit -> inbox commit, open loop.

A stream of keyed events at ``rate`` events/s: a new key every 5 / ``rate`` s, each key
writing 5 events (one transaction each, ``add_event(..., key=K)``) GAP_S apart, due on a
fixed schedule whether or not earlier ones are done (open loop, as e2e_latency's). In the
poisoned run 1% of the keys (k % 100 == POISON_SLOT) have their 2nd event poison: the
handler raises for it, the consumer (POISON_POLICY: delivery limit 2) requeues it once
and dead-letters it, and the key's 3 later events wait parked. The poison-free run is
the same stream without poison. Only the other 99% of keys are measured, in both runs.

Clocks: bench.orders' triggers NOTIFY each outbox commit (producer) and inbox commit
(consumer), stamped on CLOCK_MONOTONIC by a listener process per database: both ends
stamped the same way, just after their commits. Latencies in seconds, reported in ms.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import psycopg

from bench import infra
from bench.keyed_drain import EVENTS_PER_KEY, fresh_stack, workers
from bench.keyed_worker import Tick
from bench.orders import clock, install_clock
from bench.stats import latency_summary, percentile
from cloudcrm_outbox import add_event, make_engine, make_sessionmaker

GAP_S = 0.5  # between a key's events: a key lives 2 s, as an order's events might
POISON_EVERY, POISON_SLOT = 100, 37  # key k is poisoned when k % 100 == 37: 1% of keys
POISON_AT = 1  # the poisoned key's 2nd event (sequence 2): its 1st applies, 3 park
WARMUP_S = 2.0  # events due before this are not measured (connections, caches)


def poisoned_key(key: int) -> bool:
    return key % POISON_EVERY == POISON_SLOT


def schedule(rate: float, seconds: float) -> list[tuple[float, int, int]]:
    """(due second, key, place in its key) of every event, by due time: keys start
    ``rate / 5`` per second for ``seconds``, each key's 5 events GAP_S apart."""
    starts = int(seconds * rate / EVENTS_PER_KEY)
    due = [
        (key * EVENTS_PER_KEY / rate + place * GAP_S, key, place)
        for key in range(starts)
        for place in range(EVENTS_PER_KEY)
    ]
    return sorted(due)


@dataclass
class Offered:
    """What the writer committed: each event id's key, place and due second, and how
    late each commit returned after its due time (seconds: the generator's own lag)."""

    events: dict[str, tuple[int, int, float]]
    late_s: list[float]


async def _write(database_url: str, plan: list[tuple[float, int, int]], poison: bool) -> Offered:
    """Commit ``plan``'s events on time, each in its own transaction (no waiting for an
    earlier commit: a slow one must not hold back the next due event)."""
    engine = make_engine(database_url, pool_size=16, pre_ping=False)
    sessions = make_sessionmaker(engine)
    events: dict[str, tuple[int, int, float]] = {}
    late: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def commit(key: int, place: int, due: float) -> None:
        event = Tick(n=key * EVENTS_PER_KEY + place,
                     poison=poison and poisoned_key(key) and place == POISON_AT)  # fmt: skip
        events[str(event.event_id)] = (key, place, due)
        async with sessions() as session, session.begin():
            add_event(session, event, key=f"key-{key}")
        late.append(loop.time() - start - due)

    pending: list[asyncio.Task[None]] = []
    try:
        for due, key, place in plan:
            await asyncio.sleep(max(0.0, start + due - loop.time()))
            pending.append(asyncio.create_task(commit(key, place, due)))
        await asyncio.gather(*pending)
    finally:
        await engine.dispose()
    return Offered(events, late)


def _expected(offered: Offered, poison: bool) -> list[str]:
    """The ids that reach the inbox: all but a poisoned key's poison and what follows it."""
    return [
        mid for mid, (key, place, _) in offered.events.items()
        if not (poison and poisoned_key(key) and place >= POISON_AT)
    ]  # fmt: skip


def _wait_for_inbox(consumer_db: str, ids: list[str], timeout_s: float) -> None:
    infra.wait_for_inbox(consumer_db, ids, timeout=timeout_s, what="events")


def _key_state(consumer_db: str) -> dict[str, int]:
    """Parked messages and keys stopped behind a dead letter, at the run's end."""
    with psycopg.connect(infra.libpq(consumer_db), autocommit=True) as connection:
        parked = connection.execute("SELECT count(*) FROM inbox_parked").fetchone()
        dead = connection.execute(
            "SELECT count(*) FROM inbox_keys WHERE dead_letter_id IS NOT NULL"
        ).fetchone()
    return {"parked": parked[0] if parked else -1, "dead_lettered_keys": dead[0] if dead else -1}


def run_stream(
    rate: float, seconds: float, *, poison: bool
) -> tuple[list[float], dict[str, object]]:
    """One run on a fresh stack: the healthy keys' latencies after the warm-up (seconds)
    and the run's summary."""
    plan = schedule(rate, seconds)
    with fresh_stack() as stack:
        install_clock(stack.producer, table="outbox", column="id")
        install_clock(stack.consumer, table="inbox", column="message_id")
        with (
            workers(stack, poison_policy=True),
            clock(stack.producer) as committed,
            clock(stack.consumer) as arrived,
        ):
            offered = asyncio.run(_write(stack.producer, plan, poison))
            commits = committed.collect()
            _wait_for_inbox(stack.consumer, _expected(offered, poison), timeout_s=60 + 10 * seconds)
            arrivals = arrived.collect()
            state = _key_state(stack.consumer)
    latencies = [
        arrivals[mid] - commits[mid]
        for mid, (key, _, due) in offered.events.items()
        if not poisoned_key(key) and due >= WARMUP_S and mid in commits and mid in arrivals
    ]
    summary: dict[str, object] = {
        "poisoned_keys": len({k for _, k, _ in plan if poisoned_key(k)}) if poison else 0,
        "offered_per_s": rate,
        "events": len(offered.events),
        "writer_late_p99_ms": round(percentile(offered.late_s, 0.99) * 1000, 1),
        **latency_summary(latencies),
        **state,
    }
    return latencies, summary


def healthy_key_latency(*, rate: float, seconds: float, repeat: int) -> dict[str, object]:
    """``repeat`` rounds of a poison-free run then a poisoned one, each round's healthy
    latencies pooled per kind (one run's p99 rests on few samples; pooled, the VM's drift
    between runs weighs on both kinds alike). ``p99_ratio``: poisoned / poison-free."""
    pooled: dict[str, list[float]] = {"poison_free": [], "poisoned": []}
    runs: dict[str, list[dict[str, object]]] = {"poison_free": [], "poisoned": []}
    for _ in range(repeat):
        for kind, latencies in pooled.items():
            measured, summary = run_stream(rate, seconds, poison=kind == "poisoned")
            print(f"  healthy-key latency, {kind}: {summary}")
            latencies.extend(measured)
            runs[kind].append(summary)
    clean, poisoned = (latency_summary(pooled[kind]) for kind in pooled)
    ratio = percentile(pooled["poisoned"], 0.99) / percentile(pooled["poison_free"], 0.99)
    return {
        "offered_per_s": rate,
        "seconds_per_run": seconds,
        "events_per_key": EVENTS_PER_KEY,
        "poisoned_key_share": 1 / POISON_EVERY,
        "poison_free_p99_ms": clean["p99_ms"],
        "poisoned_p99_ms": poisoned["p99_ms"],
        "poison_free": clean,
        "poisoned": poisoned,
        "p99_ratio": round(ratio, 2),
        "runs": runs,
    }
