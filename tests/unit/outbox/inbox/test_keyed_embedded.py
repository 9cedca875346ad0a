"""The embedded default (SQLite and the in-process broker) keeps each key's order too:
a key's poison stops only that key, its later events wait parked, and a replay of the
key's dead letters, once the fix is in, applies the rest in order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloudcrm_outbox import APPLIED, IntegrationEvent, Subscription, add_event
from cloudcrm_outbox.brokers.dead_letters import DeadLetterSelection
from cloudcrm_outbox.inbox.parked import purge_key_dead_letters
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.runtime.in_process import InProcessConfig, MessagingService, in_process
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from cloudcrm_outbox.testing import TEST_CONFIG, drain, embedded_broker
from tests.support.events import create_outbox_schema

STEPS = 6


class StepTaken(IntegrationEvent):
    event_name: ClassVar[str] = "StepTaken"
    key_field: ClassVar[str | None] = "key"
    key: str
    step: int


class Steps:
    """Applies steps, recording them in order in the handler's transaction (a table: a
    batch rolled back leaves no trace); fails the steps in ``poison`` until fixed."""

    def __init__(self, engine: AsyncEngine, poison: set[tuple[str, int]]) -> None:
        self.engine = engine
        self.poison = poison

    async def handle(self, session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        for event in events:
            assert isinstance(event, StepTaken)
            if (event.key, event.step) in self.poison:
                raise RuntimeError(f"step {event.step} of {event.key} cannot be applied yet")
            await session.execute(
                text("INSERT INTO steps (key, step) VALUES (:key, :step)"),
                {"key": event.key, "step": event.step},
            )
        return [APPLIED] * len(events)

    async def of(self, key: str) -> list[int]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT step FROM steps WHERE key = :key ORDER BY id"), {"key": key}
            )
            return [step for (step,) in rows]


async def test_a_poison_stops_only_its_key_until_replayed_by_key(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(create_outbox_schema)
        await connection.execute(
            text("CREATE TABLE steps (id INTEGER PRIMARY KEY, key TEXT, step INTEGER)")
        )
    healthy, poisoned = f"h-{uuid.uuid4()}", f"p-{uuid.uuid4()}"
    steps = Steps(engine, {(poisoned, 3)})
    service = MessagingService(
        "steps", engine, [Subscription(event=StepTaken, handle=steps.handle)]
    )
    sessions = make_sessionmaker(engine)
    for step in range(1, STEPS + 1):
        for key in (poisoned, healthy):
            async with sessions() as session, session.begin():
                add_event(session, StepTaken(key=key, step=step))
    config = replace(
        TEST_CONFIG, consumer=ConsumerPolicy(delivery_limit=2, redelivery_max_seconds=0.05)
    )
    broker = embedded_broker()
    try:
        drained = await drain(broker, [service], config=config, timeout=20)
        assert await steps.of(healthy) == list(range(1, STEPS + 1))
        assert await steps.of(poisoned) == [1, 2]  # stopped at its poison, nothing after it
        assert drained.dead_lettered == {"steps": 1}
        assert drained.parked == {"steps": STEPS - 3}
        [letter] = await broker.dead_letters("steps")
        assert (letter.message_key, letter.key_sequence) == (poisoned, 3)

        steps.poison.clear()  # the fix ships
        result = await broker.replay_dead_letters(
            "steps", DeadLetterSelection(message_key=poisoned)
        )
        assert len(result.replayed) == 1
        drained = await drain(broker, [service], config=config, timeout=20)
        assert await steps.of(poisoned) == list(range(1, STEPS + 1))
        assert drained.parked == {"steps": 0} and drained.applied == {"steps": 2 * STEPS}
    finally:
        await broker.close()
        await engine.dispose()


class StepUndone(IntegrationEvent):
    event_name: ClassVar[str] = "StepUndone"
    key_field: ClassVar[str | None] = "key"
    key: str
    step: int


async def test_a_consumer_of_some_of_a_keys_types_is_never_left_waiting(tmp_path: Path) -> None:
    """The producer writes a key's StepTaken and StepUndone events in turn; a consumer that
    reads only StepUndone gets every one of them, in order, and parks none waiting for the
    StepTaken it never receives."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(create_outbox_schema)
    undone: list[int] = []

    async def record(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        undone.extend(event.step for event in events if isinstance(event, StepUndone))
        return [APPLIED] * len(events)

    producer = MessagingService("producer", engine)
    partial = MessagingService("partial", engine, [Subscription(event=StepUndone, handle=record)])
    sessions = make_sessionmaker(engine)
    for step in range(1, 7):
        async with sessions() as session, session.begin():
            add_event(session, StepTaken(key="k", step=step))
            add_event(session, StepUndone(key="k", step=step))
    broker = embedded_broker()
    try:
        drained = await drain(broker, [producer, partial], timeout=20)
    finally:
        await broker.close()
        await engine.dispose()
    assert undone == [1, 2, 3, 4, 5, 6]
    assert drained.applied == {"partial": 6} and drained.parked == {"partial": 0}


async def test_a_consumer_bound_late_waits_unless_told_to_start_keys(tmp_path: Path) -> None:
    """A key's first steps went to an early consumer; a consumer added later meets the key
    at step 4. By default it waits for steps it will never receive (a gap, reported); with
    ``start_keys_after_seconds`` it starts the key there once that wait is over."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(create_outbox_schema)
    seen: dict[str, list[int]] = {"early": [], "late": []}

    def recorder(name: str) -> Subscription:
        async def record(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
            seen[name].extend(event.step for event in events if isinstance(event, StepTaken))
            return [APPLIED] * len(events)

        return Subscription(event=StepTaken, handle=record)

    producer = MessagingService("producer", engine)
    early = MessagingService("early", engine, [recorder("early")])
    late = MessagingService("late", engine, [recorder("late")])
    sessions = make_sessionmaker(engine)

    async def steps(numbers: range) -> None:
        for step in numbers:
            async with sessions() as session, session.begin():
                add_event(session, StepTaken(key="k", step=step))

    broker = embedded_broker()

    async def run_until(config: InProcessConfig, done: Callable[[], bool]) -> None:
        # Not drain(): it would wait for steps 1 to 3 to reach "late", published before
        # its queue was bound and so never routed to it.
        async with in_process(broker, [producer, early, late], config=config):
            for _ in range(200):
                if done():
                    return
                await asyncio.sleep(0.05)

    try:
        await steps(range(1, 4))
        await drain(broker, [producer, early], timeout=20)
        await steps(range(4, 7))
        await run_until(TEST_CONFIG, lambda: len(seen["early"]) == 6)
        await asyncio.sleep(0.3)
        assert seen["late"] == []  # by default: a gap, waiting for steps 1 to 3
        starting = replace(
            TEST_CONFIG, consumer=ConsumerPolicy(start_keys_after_seconds=0.1,
                                                 parked_check_seconds=0.05)
        )  # fmt: skip
        await run_until(starting, lambda: len(seen["late"]) == 3)
    finally:
        await broker.close()
        await engine.dispose()
    assert seen["early"] == [1, 2, 3, 4, 5, 6]
    assert seen["late"] == [4, 5, 6]


async def test_purging_a_keys_dead_letters_from_the_library_releases_the_key(
    tmp_path: Path,
) -> None:
    """``purge_key_dead_letters`` (the library's, not only the demo's command): the poison
    gone, its place given up, the key's parked rest applied in order."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(create_outbox_schema)
        await connection.execute(
            text("CREATE TABLE steps (id INTEGER PRIMARY KEY, key TEXT, step INTEGER)")
        )
    steps = Steps(engine, {("p", 3)})
    service = MessagingService(
        "steps", engine, [Subscription(event=StepTaken, handle=steps.handle)]
    )
    sessions = make_sessionmaker(engine)
    for step in range(1, STEPS + 1):
        async with sessions() as session, session.begin():
            add_event(session, StepTaken(key="p", step=step))
    config = replace(
        TEST_CONFIG, consumer=ConsumerPolicy(delivery_limit=2, redelivery_max_seconds=0.05)
    )
    broker = embedded_broker()
    try:
        await drain(broker, [service], config=config, timeout=20)
        assert await steps.of("p") == [1, 2]
        done = await purge_key_dead_letters(
            broker, engine, service="steps", selection=DeadLetterSelection(message_key="p")
        )
        assert (len(done.purged), done.places_given_up) == (1, 1)
        drained = await drain(broker, [service], config=config, timeout=20)
    finally:
        await broker.close()
        await engine.dispose()
    assert await steps.of("p") == [1, 2, 4, 5, 6]
    assert drained.parked == {"steps": 0} and drained.dead_lettered == {"steps": 0}
