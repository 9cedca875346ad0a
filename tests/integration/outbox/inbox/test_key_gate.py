"""The inbox's key gate applies a key's messages in sequence order, whatever order they
arrive in: early ones parked in the database (not requeued), stale ones skipped, a purged
place passed over, two consumers of one key never interleaved.

On PostgreSQL (row locks) and on SQLite (the embedded default's database).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import replace

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloudcrm_outbox import APPLIED, IntegrationEvent, Subscription
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.key_gate import GivenUpPlace
from cloudcrm_outbox.inbox.processor import PARKED, InboxProcessor
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from cloudcrm_outbox.storage.tables import outbox_tables
from tests.support.events import OrderCancelled

pytestmark = pytest.mark.postgres

TABLES = outbox_tables()


class Applied:
    """A handler that records the (key, order id) of what it applied, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.slow = 0.0

    async def handle(self, session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        for event in events:
            assert isinstance(event, OrderCancelled)
            if self.slow:
                await asyncio.sleep(self.slow)
            key = uuid.UUID(int=event.order_id.int & ~0xFFFF)
            self.seen.append((str(key), event.order_id.int & 0xFFFF))
        return [APPLIED] * len(events)

    def order_of(self, key: uuid.UUID) -> list[int]:
        return [place for k, place in self.seen if k == str(key)]


def keyed(key: uuid.UUID, place: int) -> Decoded:
    """The message at ``place`` of key ``key`` (its order id encodes both)."""
    order_id = uuid.UUID(int=(key.int & ~0xFFFF) | place)
    return Decoded(uuid.uuid4(), OrderCancelled(order_id=order_id), None, str(key), place)


@pytest.fixture
def engine(either_engine: AsyncEngine) -> AsyncEngine:
    """On PostgreSQL and on SQLite (``either_engine``)."""
    return either_engine


def processor(engine: AsyncEngine, handler: Applied) -> InboxProcessor:
    return InboxProcessor(
        engine,
        consumer="catalog",
        subscriptions={"OrderCancelled": Subscription(event=OrderCancelled, handle=handler.handle)},
    )


def new_key() -> uuid.UUID:
    return uuid.UUID(int=uuid.uuid4().int & ~0xFFFF)


async def parked_rows(engine: AsyncEngine) -> int:
    async with make_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(TABLES.parked)) or 0)


async def test_out_of_order_arrivals_are_applied_in_sequence(engine: AsyncEngine) -> None:
    handler = Applied()
    inbox = processor(engine, handler)
    key = new_key()
    messages = [keyed(key, place) for place in range(1, 11)]
    shuffled = random.Random(7).sample(messages, len(messages))
    parked = 0
    for message in shuffled:  # one at a time, as ten deliveries
        parked += list((await inbox.process([message])).values()).count(PARKED)
    assert parked > 0, "the shuffle put none early"
    assert handler.order_of(key) == list(range(1, 11))  # each once, in order
    assert await parked_rows(engine) == 0


async def test_one_batch_in_any_order_and_duplicates(engine: AsyncEngine) -> None:
    handler = Applied()
    inbox = processor(engine, handler)
    key, other = new_key(), new_key()
    batch = [keyed(key, 3), keyed(other, 2), keyed(key, 1), keyed(key, 2), keyed(other, 1)]
    outcomes = await inbox.process(batch)
    assert set(outcomes.values()) == {APPLIED}
    assert handler.order_of(key) == [1, 2, 3]
    assert handler.order_of(other) == [1, 2]
    # Redeliveries of applied messages: behind their key, and in the inbox: skipped.
    again = await inbox.process([batch[0], batch[3], batch[4]])
    assert again == {}
    assert handler.order_of(key) == [1, 2, 3]
    # Behind the key's place, by its sequence: skipped, even once the inbox forgot its id.
    stranger = keyed(key, 2)
    assert await inbox.process([stranger]) == {}


async def test_a_gap_parks_until_it_fills(engine: AsyncEngine) -> None:
    handler = Applied()
    inbox = processor(engine, handler)
    key = new_key()
    first, second, third = keyed(key, 1), keyed(key, 2), keyed(key, 3)
    assert await inbox.process([first]) == {first.message_id: APPLIED}
    assert await inbox.process([third]) == {third.message_id: PARKED}
    assert await inbox.process([third]) == {third.message_id: PARKED}  # redelivered: once
    assert await parked_rows(engine) == 1
    assert handler.order_of(key) == [1]
    outcomes = await inbox.process([second])
    assert outcomes == {second.message_id: APPLIED, third.message_id: APPLIED}
    assert handler.order_of(key) == [1, 2, 3]
    assert await parked_rows(engine) == 0


async def test_a_skipped_place_releases_the_rest(engine: AsyncEngine) -> None:
    handler = Applied()
    inbox = processor(engine, handler)
    key = new_key()
    await inbox.process([keyed(key, 1)])
    poison = keyed(key, 2)
    await inbox.record_dead_letter(str(key), 2, poison.message_id)
    for place in (3, 4):
        await inbox.process([keyed(key, place)])
    async with make_sessionmaker(engine)() as session:
        row = (await session.execute(select(TABLES.inbox_keys))).one()
    assert (row.applied_sequence, row.dead_letter_id, row.dead_letter_sequence) == (
        1,
        poison.message_id,
        2,
    )
    assert await inbox.release_parked() == {}  # nothing's turn has come
    async with make_sessionmaker(engine)() as session, session.begin():
        given_up = GivenUpPlace(None, poison.message_id)
        assert await inbox.gate.skip(session, str(key), {2: given_up}) == 1
    released = await inbox.release_parked()
    assert sorted(released.values()) == [APPLIED, APPLIED]
    assert handler.order_of(key) == [1, 3, 4]
    # Its message is recorded as given up: a copy replayed after all is a duplicate.
    assert await inbox.process([poison]) == {}
    async with make_sessionmaker(engine)() as session:
        outcome = await session.scalar(
            select(TABLES.inbox.c.outcome).where(TABLES.inbox.c.message_id == poison.message_id)
        )
    assert outcome == "given_up"
    async with make_sessionmaker(engine)() as session:
        row = (await session.execute(select(TABLES.inbox_keys))).one()
    assert (row.applied_sequence, row.dead_letter_id) == (4, None)
    assert await parked_rows(engine) == 0


async def test_a_replayed_poison_releases_the_rest_in_order(engine: AsyncEngine) -> None:
    handler = Applied()
    inbox = processor(engine, handler)
    key = new_key()
    poison = keyed(key, 1)
    await inbox.record_dead_letter(str(key), 1, poison.message_id)
    for place in (4, 2, 3):
        await inbox.process([keyed(key, place)])
    assert handler.order_of(key) == []
    await inbox.process([poison])  # replayed from the dead-letter queue, fixed
    assert handler.order_of(key) == [1, 2, 3, 4]


class RecordedInTheTransaction(Applied):
    """Records what it applies in a table, in the handler's transaction: a batch that
    deadlocks and is retried leaves no trace of its first try."""

    async def handle(self, session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        for event in events:
            assert isinstance(event, OrderCancelled)
            await asyncio.sleep(0.002)
            key = uuid.UUID(int=event.order_id.int & ~0xFFFF)
            await session.execute(
                text("INSERT INTO applied_places (key, place) VALUES (:k, :p)"),
                {"k": str(key), "p": event.order_id.int & 0xFFFF},
            )
        return [APPLIED] * len(events)


async def test_two_consumers_of_one_key_never_interleave(outbox_db: str) -> None:
    """PostgreSQL only: on SQLite one writer at a time makes two consumers take turns."""
    engine = make_engine(outbox_db)
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE applied_places (id bigserial PRIMARY KEY, key text, place int)")
        )
    handler = RecordedInTheTransaction()
    first, second = processor(engine, handler), processor(engine, handler)
    keys = [new_key() for _ in range(5)]
    messages = [keyed(key, place) for key in keys for place in range(1, 21)]
    random.Random(3).shuffle(messages)
    halves = messages[::2], messages[1::2]

    async def consume(inbox: InboxProcessor, mine: list[Decoded]) -> None:
        for start in range(0, len(mine), 5):
            while True:
                try:
                    await inbox.process(mine[start : start + 5])
                    break
                except Exception as exc:  # a deadlock is retried, as the consumer does
                    if "deadlock" not in repr(exc).lower():
                        raise

    try:
        await asyncio.gather(consume(first, halves[0]), consume(second, halves[1]))
        async with engine.connect() as connection:
            rows = (await connection.execute(
                text("SELECT key, place FROM applied_places ORDER BY id")
            )).all()  # fmt: skip
    finally:
        await engine.dispose()
    for key in keys:
        assert [place for k, place in rows if k == str(key)] == list(range(1, 21))


async def test_a_consumer_of_some_types_waits_only_for_its_own(engine: AsyncEngine) -> None:
    """The key's messages 1 and 3 are of a type this consumer does not read: its message 4
    names 2 as its predecessor (x-key-previous), so 2 and 4 are applied, never parked
    waiting for 1 or 3; a message whose own predecessor is missing still waits."""
    handler = Applied()
    inbox = processor(engine, handler)
    key = new_key()
    second = replace(keyed(key, 2), predecessor=0)  # the first of the key this one reads
    fourth = replace(keyed(key, 4), predecessor=2)
    assert await inbox.process([fourth]) == {fourth.message_id: PARKED}  # 2 has not come
    outcomes = await inbox.process([second])
    assert outcomes == {second.message_id: APPLIED, fourth.message_id: APPLIED}
    assert handler.order_of(key) == [2, 4]
    assert await parked_rows(engine) == 0


async def test_a_key_met_mid_way_starts_once_its_wait_passes_the_gap_alert(
    engine: AsyncEngine,
) -> None:
    """A consumer bound after a key's first messages went elsewhere (or upgraded from
    before keys were kept) meets the key at 5: it waits as for any gap, then, having
    applied nothing of the key, starts there. Messages from before are not its to apply."""
    handler = Applied()
    inbox = processor(engine, handler)
    key = new_key()
    fifth, sixth = keyed(key, 5), keyed(key, 6)
    assert await inbox.process([sixth, fifth]) == {
        fifth.message_id: PARKED,
        sixth.message_id: PARKED,
    }
    assert await inbox.start_waiting_keys(3600) == 0  # not waited long enough
    await asyncio.sleep(0.05)
    assert await inbox.start_waiting_keys(0.01) == 1
    released = await inbox.release_parked()
    assert released == {fifth.message_id: APPLIED, sixth.message_id: APPLIED}
    assert handler.order_of(key) == [5, 6]
    third = keyed(key, 3)
    assert await inbox.process([third, fifth]) == {}
    assert handler.order_of(key) == [5, 6]
    assert await inbox.start_waiting_keys(0) == 0  # a key started once is a known key


async def test_a_key_stopped_at_its_own_dead_letter_is_never_started_past_it(
    engine: AsyncEngine,
) -> None:
    handler = Applied()
    inbox = processor(engine, handler)
    key = new_key()
    first = keyed(key, 1)
    await inbox.record_dead_letter(str(key), 1, first.message_id)
    await inbox.process([keyed(key, 2)])
    await asyncio.sleep(0.05)
    assert await inbox.start_waiting_keys(0.01) == 0  # the operator's to release
    assert handler.order_of(key) == []


async def test_a_later_dead_letter_does_not_hide_the_one_its_key_stops_at(
    engine: AsyncEngine,
) -> None:
    inbox = processor(engine, Applied())
    key = new_key()
    first, third = keyed(key, 1), keyed(key, 3)
    await inbox.record_dead_letter(str(key), 1, first.message_id)
    await inbox.record_dead_letter(str(key), 3, third.message_id)
    async with make_sessionmaker(engine)() as session:
        row = (await session.execute(select(TABLES.inbox_keys))).one()
    assert (row.dead_letter_sequence, row.dead_letter_id) == (1, first.message_id)
