"""The keyed history check: keys written concurrently, relayed by three relays and applied
by two consumers while one of them is killed -9 every few seconds, duplicates injected on
the broker, and a few keys carrying a poison step. Every healthy key must be applied as
exactly 1..10 (no gap, no inversion, no double) without waiting on a poisoned one; each
poisoned key stops at its poison and completes in order after ``dlq replay --key``.

CI runs it at 200 keys; ``make soak`` at 2,000 keys x 10 events with 8 writers.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import create_engine

from cloudcrm_outbox import add_event
from cloudcrm_outbox.brokers.dead_letters import DeadLetterSelection
from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker
from cloudcrm_outbox.events import KEY_HEADER, SEQUENCE_HEADER, VERSION_HEADER
from cloudcrm_outbox.names import DEFAULT_NAMES
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from tests.conftest import query
from tests.e2e.processes import Background, command_env
from tests.reliability.keyed_worker import SERVICE, TABLES, StepTaken
from tests.support import postgres
from tests.support.consuming import wait_until
from tests.support.events import create_outbox_schema

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

STEPS = 10
WRITERS = 8
DUPLICATES = 200
KILL_EVERY_SECONDS = 5.0


@pytest.fixture
def steps_db() -> Iterator[str]:
    """A fresh database with the outbox tables and the steps' own."""
    name = postgres.unique_name("cc_steps")
    url = postgres.create_database(name)
    try:
        engine = create_engine(url)
        with engine.begin() as connection:
            create_outbox_schema(connection)
            connection.exec_driver_sql(TABLES)
        engine.dispose()
        yield url
    finally:
        postgres.drop_database(name)


class Workers:
    """The relays and consumers, each a process the test may kill -9 and restart."""

    def __init__(self, database_url: str, broker_url: str, logs: Path) -> None:
        self._args = (database_url, broker_url)
        self._logs = logs
        self._started = 0
        self.processes: list[Background] = []
        self.kills = 0

    async def start(self, role: str) -> Background:
        self._started += 1
        process = Background(
            role,
            *self._args,
            env=command_env(),
            log_path=self._logs / f"{self._started}-{role}.log",
            module="tests.reliability.keyed_worker",
        )
        self.processes.append(process)
        await process.wait_for_log(
            "consuming" if role == "consume" else "relay started", timeout=60
        )
        return process

    async def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.processes)
        victim.process.kill()
        await victim.wait_exit(timeout=15)
        victim.stop()
        self.processes.remove(victim)
        self.kills += 1
        await self.start(victim.args[0])

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
async def workers(steps_db: str, broker: str, tmp_path: Path) -> AsyncIterator[Workers]:
    running = Workers(steps_db, broker, tmp_path)
    try:
        yield running
    finally:
        running.stop()


async def write_history(database_url: str, keys: list[str], poison: dict[str, int]) -> None:
    """Each writer owns some keys and writes their steps in order, one transaction per
    step, all writers at once: a key's sequence is its steps' commit order."""
    engine = make_engine(database_url, pool_size=WRITERS)
    sessions = make_sessionmaker(engine)

    async def writer(mine: list[str]) -> None:
        for step in range(1, STEPS + 1):
            for key in mine:
                async with sessions() as session, session.begin():
                    add_event(
                        session, StepTaken(key=key, step=step, poison=poison.get(key) == step)
                    )

    try:
        await asyncio.gather(*(writer(keys[w::WRITERS]) for w in range(WRITERS)))
    finally:
        await engine.dispose()


async def inject_duplicates(database_url: str, broker_url: str, count: int) -> int:
    """Publish copies of already published messages, as a broker or a relay might."""
    rows = await query(
        database_url,
        "SELECT id, payload::text, message_key, key_sequence FROM outbox "
        "WHERE published_at IS NOT NULL ORDER BY random() LIMIT %s",
        count,
    )
    async with await aio_pika.connect(broker_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(DEFAULT_NAMES.exchange, ensure=False)
        for message_id, payload, key, sequence in rows:
            await exchange.publish(
                aio_pika.Message(
                    payload.encode(),
                    message_id=str(message_id),
                    type="StepTaken",
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers={VERSION_HEADER: "1", KEY_HEADER: key, SEQUENCE_HEADER: sequence},
                ),
                routing_key=DEFAULT_NAMES.routing_key("StepTaken", key),
            )
    return len(rows)


async def applied_steps(database_url: str) -> dict[str, list[int]]:
    rows = await query(database_url, "SELECT key, step FROM steps_applied ORDER BY id")
    found: dict[str, list[int]] = defaultdict(list)
    for key, step in rows:
        found[key].append(step)
    return found


@pytest.mark.parametrize("key_count", [200, pytest.param(2000, marks=pytest.mark.soak)])
async def test_every_key_applied_in_order_through_kills_duplicates_and_poison(
    steps_db: str, broker: str, workers: Workers, key_count: int
) -> None:
    rng = random.Random(31)
    keys = [f"key-{n}-{uuid.uuid4().hex[:6]}" for n in range(key_count)]
    poisoned = rng.sample(keys, max(2, key_count // 100))
    poison = {key: rng.randint(2, STEPS - 1) for key in poisoned}
    healthy = [key for key in keys if key not in poison]
    for _ in range(2):
        await workers.start("consume")
    for _ in range(3):
        await workers.start("relay")

    done_writing = asyncio.Event()

    async def chaos() -> None:
        while True:
            await asyncio.sleep(KILL_EVERY_SECONDS)
            await workers.kill_one(rng)

    async def healthy_done() -> bool:
        applied = await applied_steps(steps_db)
        return done_writing.is_set() and all(len(applied[key]) >= STEPS for key in healthy)

    killing = asyncio.create_task(chaos())
    try:
        writing = asyncio.create_task(write_history(steps_db, keys, poison))
        await wait_until(lambda: _published_at_least(steps_db, len(keys) * STEPS // 2), timeout=120)
        injected = await inject_duplicates(steps_db, broker, DUPLICATES)
        await writing
        done_writing.set()
        await wait_until(healthy_done, timeout=240, interval=0.5)
    finally:
        killing.cancel()
        await asyncio.gather(killing, return_exceptions=True)
    assert workers.kills >= 1 and injected == DUPLICATES

    applied = await applied_steps(steps_db)
    wrong = {key: applied[key] for key in healthy if applied[key] != list(range(1, STEPS + 1))}
    assert not wrong, (
        f"{len(wrong)} healthy keys out of order or doubled: {dict(list(wrong.items())[:5])}"
    )

    # Each poisoned key stopped at its poison: the steps before it, and nothing after.
    async def poisoned_stopped() -> bool:
        now = await applied_steps(steps_db)
        dead = {letter.message_key for letter in await _dead_letters(broker)}
        return all(now[key] == list(range(1, poison[key])) and key in dead for key in poisoned)

    await wait_until(poisoned_stopped, timeout=60, interval=0.5)

    # The fix ships; the operator replays each poisoned key's dead letters.
    await query(steps_db, "INSERT INTO fixed_keys (key) SELECT unnest(%s::text[])", poisoned)
    admin = RabbitMQBroker(broker)
    try:
        for key in poisoned:
            result = await admin.replay_dead_letters(SERVICE, DeadLetterSelection(message_key=key))
            # One poison message; a second copy of it (an injected duplicate, or a kill
            # between its dead letter and its ack) is dead-lettered too, and replayed as
            # harmlessly: the inbox applies it once.
            assert result.replayed and not result.left, (key, result)
            assert len({letter.message_id for letter in result.replayed}) == 1, (key, result)
    finally:
        await admin.close()

    async def poisoned_done() -> bool:
        now = await applied_steps(steps_db)
        return all(len(now[key]) >= STEPS for key in poisoned)

    await wait_until(poisoned_done, timeout=120, interval=0.5)
    applied = await applied_steps(steps_db)
    for key in poisoned:
        assert applied[key] == list(range(1, STEPS + 1)), (key, applied[key])
    assert await query(steps_db, "SELECT count(*) FROM inbox_parked") == [(0,)]


async def _published_at_least(database_url: str, count: int) -> bool:
    rows = await query(database_url, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
    return bool(rows[0][0] >= count)


async def _dead_letters(broker_url: str) -> list[object]:
    admin = RabbitMQBroker(broker_url)
    try:
        return list(await admin.dead_letters(SERVICE))
    finally:
        await admin.close()
