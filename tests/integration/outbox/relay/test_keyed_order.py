"""Keyed events leave the outbox in their key's order: numbered by the database in commit
order, claimed one at a time per key, each after the one before it was confirmed.

On PostgreSQL (several relays, row locks) and on SQLite (the embedded default's database),
with a broker fake that records what it was given: the order is the relay's doing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox import add_event, write_events
from cloudcrm_outbox.brokers.publisher import OutgoingMessage, PublishResult
from cloudcrm_outbox.events import KEY_HEADER, PREVIOUS_HEADER, SEQUENCE_HEADER
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.relay import OutboxRelay
from cloudcrm_outbox.storage.engine import make_sessionmaker
from tests.integration.outbox.conftest import placed
from tests.support.events import OrderCancelled

pytestmark = pytest.mark.postgres


def cancelled() -> OrderCancelled:
    return OrderCancelled(order_id=uuid.uuid4())


class RecordingBroker:
    """Confirms every message and remembers them in order; ``crash_after`` raises (as a
    kill would end the batch) once that many were confirmed, before the relay marks them."""

    def __init__(self) -> None:
        self.received: list[OutgoingMessage] = []
        self.crash_after: int | None = None
        self.hold: asyncio.Event | None = None
        self.unroutable: set[str] = set()  # event types no queue is bound to
        self.holding = asyncio.Event()

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        self.received.extend(messages)
        if self.crash_after is not None and len(self.received) >= self.crash_after:
            self.crash_after = None
            raise SimulatedKillError
        returned = {m.message_id: "returned by the broker: 312 NO_ROUTE"
                    for m in messages if m.event_type in self.unroutable}  # fmt: skip
        confirmed = [m.message_id for m in messages if m.message_id not in returned]
        return PublishResult(confirmed=confirmed, unroutable=returned)

    def order_of(self, key: str) -> list[int]:
        return [
            message.headers[SEQUENCE_HEADER]
            for message in self.received
            if message.headers.get(KEY_HEADER) == key
        ]

    async def close(self) -> None:
        return None


class SimulatedKillError(BaseException):
    """Ends the batch as a kill -9 would: nothing after it runs, the transaction is gone."""


@pytest.fixture
def engine(either_engine: AsyncEngine) -> AsyncEngine:
    """On PostgreSQL and on SQLite (``either_engine``)."""
    return either_engine


async def write(engine: AsyncEngine, key: str | None, count: int = 1) -> list[uuid.UUID]:
    """``count`` events of ``key``, one transaction each (so each is its own commit)."""
    sessions = make_sessionmaker(engine)
    ids = []
    for _ in range(count):
        async with sessions() as session, session.begin():
            ids.append(add_event(session, placed(), key=key).id)
    return ids


async def sequences(engine: AsyncEngine) -> dict[uuid.UUID, tuple[str | None, int | None]]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT id, message_key, key_sequence FROM outbox"))
        return {uuid.UUID(str(row[0])): (row[1], row[2]) for row in rows}


def relay(engine: AsyncEngine, broker: RecordingBroker) -> OutboxRelay:
    return OutboxRelay(engine, broker, RelayPolicy(batch_size=100))  # type: ignore[arg-type]


async def test_each_key_is_numbered_from_one_and_unkeyed_rows_are_not(engine: AsyncEngine) -> None:
    first = await write(engine, "order-1", 3)
    other = await write(engine, "order-2", 2)
    loose = await write(engine, None)
    sessions = make_sessionmaker(engine)
    events = [placed() for _ in range(3)]
    async with sessions() as session, session.begin():
        await write_events(session, events, keys=["order-2", "order-1", None])

    numbered = await sequences(engine)
    assert [numbered[i] for i in first] == [("order-1", 1), ("order-1", 2), ("order-1", 3)]
    assert [numbered[i] for i in other] == [("order-2", 1), ("order-2", 2)]
    assert numbered[loose[0]] == (None, None)
    assert [numbered[e.event_id] for e in events] == [("order-2", 3), ("order-1", 4), (None, None)]


async def test_each_message_names_each_types_last_sequence_before_it(engine: AsyncEngine) -> None:
    """x-key-previous: a consumer of some of the key's types learns which earlier message
    of its own types comes just before, and waits for that one only."""
    sessions = make_sessionmaker(engine)
    kinds = [placed(), cancelled(), placed(), placed(), cancelled()]
    for event in kinds:
        async with sessions() as session, session.begin():
            add_event(session, event, key="order-9")
    broker = RecordingBroker()
    relaying = relay(engine, broker)
    while (await relaying.relay_batch()).claimed:
        pass
    sent = [(m.headers[SEQUENCE_HEADER], m.event_type, m.headers[PREVIOUS_HEADER])
            for m in broker.received]  # fmt: skip
    assert sent == [
        (1, "OrderPlaced", {}),
        (2, "OrderCancelled", {"OrderPlaced": 1}),
        (3, "OrderPlaced", {"OrderPlaced": 1, "OrderCancelled": 2}),
        (4, "OrderPlaced", {"OrderPlaced": 3, "OrderCancelled": 2}),
        (5, "OrderCancelled", {"OrderPlaced": 4, "OrderCancelled": 2}),
    ]


async def test_a_key_goes_out_one_row_per_batch_in_its_order(engine: AsyncEngine) -> None:
    await write(engine, "order-1", 3)
    await write(engine, "order-2", 2)
    loose = await write(engine, None, 2)
    broker = RecordingBroker()
    relaying = relay(engine, broker)

    first = await relaying.relay_batch()
    # One row of each key, and every unkeyed row: the rest of a key waits for the mark.
    assert first.claimed == 4
    assert sorted(m.headers.get(KEY_HEADER, "") for m in broker.received) == [
        "", "", "order-1", "order-2"
    ]  # fmt: skip
    assert {m.message_id for m in broker.received if KEY_HEADER not in m.headers} == set(loose)
    assert (await relaying.relay_batch()).claimed == 2
    assert (await relaying.relay_batch()).claimed == 1
    assert (await relaying.relay_batch()).claimed == 0
    assert broker.order_of("order-1") == [1, 2, 3]
    assert broker.order_of("order-2") == [1, 2]


async def test_a_relay_killed_between_two_rows_of_a_key_lets_none_overtake(
    engine: AsyncEngine,
) -> None:
    await write(engine, "order-1", 2)
    killed = RecordingBroker()
    killed.crash_after = 1  # order-1 #1 confirmed by the broker, then the relay dies
    with pytest.raises(SimulatedKillError):
        await relay(engine, killed).relay_batch()
    assert killed.order_of("order-1") == [1]

    # The next relay sends #1 again (the inbox drops the copy) and only then #2.
    survivor = RecordingBroker()
    while (await relay(engine, survivor).relay_batch()).claimed:
        pass
    assert survivor.order_of("order-1") == [1, 2]


async def test_an_unroutable_row_does_not_hold_its_key(engine: AsyncEngine) -> None:
    """No queue is bound to OrderCancelled: no consumer can wait for it, so the key's
    next row goes out; the returned one stays pending, for a queue bound later."""
    sessions = make_sessionmaker(engine)
    for event in (placed(), cancelled(), placed()):
        async with sessions() as session, session.begin():
            add_event(session, event, key="order-5")
    broker = RecordingBroker()
    broker.unroutable = {"OrderCancelled"}
    relaying = relay(engine, broker)
    for _ in range(3):
        await relaying.relay_batch()
    assert broker.order_of("order-5") == [1, 2, 3]
    async with engine.connect() as connection:
        rows = await connection.execute(text(
            "SELECT key_sequence FROM outbox WHERE published_at IS NULL "
            "AND unroutable_since IS NOT NULL"
        ))  # fmt: skip
        assert [row[0] for row in rows] == [2]


async def test_a_failed_row_holds_the_rest_of_its_key_until_it_is_replayed(
    engine: AsyncEngine,
) -> None:
    [failed, later] = await write(engine, "order-1", 2)
    other = await write(engine, "order-2")
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET failed_at = CURRENT_TIMESTAMP WHERE id = :id"),
            {"id": failed.hex if engine.dialect.name == "sqlite" else failed},
        )
    broker = RecordingBroker()
    while (await relay(engine, broker).relay_batch()).claimed:
        pass
    assert [m.message_id for m in broker.received] == other  # order-1 #2 waits

    async with engine.begin() as connection:
        await connection.execute(text("UPDATE outbox SET failed_at = NULL"))  # the replay
    while (await relay(engine, broker).relay_batch()).claimed:
        pass
    assert broker.order_of("order-1") == [1, 2]
    assert broker.received[-1].message_id == later


@pytest.mark.parametrize("either_database", ["postgresql"], indirect=True)
async def test_a_second_writer_of_a_key_waits_and_takes_the_next_number(
    engine: AsyncEngine,
) -> None:
    """The number is the commit order: the first writer's counter row stays locked until
    it commits, and a writer it rolled back for gives its number back."""
    sessions = make_sessionmaker(engine)
    async with sessions() as early, sessions() as late, sessions() as undone:
        await early.begin()
        first = add_event(early, placed(), key="order-1")
        await early.flush()  # numbered, the key's counter row locked

        await late.begin()
        second = add_event(late, placed(), key="order-1")
        waiting = asyncio.create_task(late.flush())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # waits for the first writer's commit

        await undone.begin()
        add_event(undone, placed(), key="order-2")
        await undone.flush()
        await undone.rollback()  # order-2's number 1 is given back

        await early.commit()
        await waiting
        await late.commit()
    third = await write(engine, "order-2")

    numbered = await sequences(engine)
    assert numbered[first.id] == ("order-1", 1)
    assert numbered[second.id] == ("order-1", 2)
    assert numbered[third[0]] == ("order-2", 1)


@pytest.mark.parametrize("either_database", ["postgresql"], indirect=True)
async def test_two_relays_never_have_one_key_in_flight_at_once(engine: AsyncEngine) -> None:
    await write(engine, "order-1", 2)
    await write(engine, "order-2")
    slow = RecordingBroker()
    slow.hold = asyncio.Event()
    holding = asyncio.create_task(relay(engine, slow).relay_batch())
    await slow.holding.wait()  # the first relay has claimed order-1 #1 and order-2 #1

    other = RecordingBroker()
    assert (await relay(engine, other).relay_batch()).claimed == 0  # #2 waits for #1's mark
    slow.hold.set()
    assert (await holding).claimed == 2
    assert (await relay(engine, other).relay_batch()).claimed == 1
    assert other.order_of("order-1") == [2]
