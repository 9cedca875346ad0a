"""What the outbox and inbox promise, the same on each backend pair (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import func, select

from cloudcrm_outbox import (
    DeadLetterSelection,
    MessagingNames,
    QueueBindings,
    add_event,
    make_sessionmaker,
    outbox_tables,
    write_events,
)
from cloudcrm_outbox.brokers.publisher import OutgoingMessage
from cloudcrm_outbox.ops.status import read_status
from cloudcrm_outbox.storage.retention import delete_old_inbox_rows, delete_published_outbox_rows
from cloudcrm_outbox.testing import staged_events
from tests.contract.conftest import (
    IGNORED,
    SERVICE,
    Backend,
    ItemStored,
    NobodyListens,
    backend_pair,
    eventually,
)


async def _stage(backend: Backend, events: list[ItemStored], *, commit: bool = True) -> None:
    sessions = make_sessionmaker(backend.engine)
    async with sessions() as session, session.begin():
        for event in events:
            add_event(session, event, names=backend.names)
        if not commit:
            await session.flush()
            await session.rollback()


def _items(count: int, note: str = "") -> list[ItemStored]:
    return [ItemStored(item_id=uuid.uuid4(), note=note) for _ in range(count)]


def _raw(event_type: str, body: bytes, **headers: str) -> OutgoingMessage:
    return OutgoingMessage(uuid.uuid4(), event_type, body, headers, datetime.now(UTC))


async def _all_applied(backend: Backend, items: list[ItemStored]) -> None:
    wanted = {item.item_id for item in items}

    async def done() -> bool:
        return wanted <= set(await backend.received())

    await eventually(done, what=f"{len(wanted)} items applied")


async def test_committed_events_are_applied_once_and_rolled_back_ones_never(
    backend: Backend,
) -> None:
    committed = _items(40) + _items(10)
    rolled_back = _items(5)
    await _stage(backend, committed[:40])
    await _stage(backend, rolled_back, commit=False)
    async with backend.running():
        await _stage(backend, committed[40:])  # while the relay runs
        await _all_applied(backend, committed)
    received = await backend.received()
    assert received == {item.item_id: 1 for item in committed}
    inbox = outbox_tables(backend.names).inbox
    assert await backend.scalar(select(func.count()).select_from(inbox)) == 50
    staged = await staged_events(backend.engine, names=backend.names)
    assert len(staged) == 50 and all(event.published for event in staged)
    assert {event.message_id for event in staged} == {item.event_id for item in committed}


async def test_write_events_and_outcomes_other_than_applied(backend: Backend) -> None:
    items = [*_items(3), ItemStored(item_id=uuid.uuid4(), note="ignore")]
    async with make_sessionmaker(backend.engine)() as session, session.begin():
        await write_events(session, items, names=backend.names)
    async with backend.running():
        await _all_applied(backend, items)
    inbox = outbox_tables(backend.names).inbox
    query = select(inbox.c.outcome, func.count()).group_by(inbox.c.outcome)
    async with backend.engine.connect() as connection:
        outcomes = dict((await connection.execute(query)).all())
    assert outcomes == {"applied": 3, IGNORED: 1}


async def test_a_message_delivered_twice_is_applied_once(backend: Backend) -> None:
    item = _items(1)[0]
    message = _raw(item.event_name, json.dumps(item.body()).encode())
    async with backend.running():
        publisher = backend.broker.publisher()
        try:
            for _ in range(2):
                result = await publisher.publish_batch([message])
                assert result.confirmed == [message.message_id]
        finally:
            await publisher.close()
        await _all_applied(backend, [item])
        inbox = outbox_tables(backend.names).inbox
        rows = select(func.count()).select_from(inbox)

        async def both_seen() -> bool:  # the second copy is acked as a duplicate
            return await backend.scalar(rows) == 1 and not await backend.broker.dead_letters(
                SERVICE
            )

        await eventually(both_seen, what="the duplicate settled")
    assert await backend.received() == {item.item_id: 1}


async def test_poison_is_dead_lettered_with_its_reason_and_stays_so_when_replayed(
    backend: Backend,
) -> None:
    garbage = _raw("ItemStored", b"not json")
    future = _raw("ItemStored", b"{}", event_version="9")
    async with backend.running():
        publisher = backend.broker.publisher()
        try:
            await publisher.publish_batch([garbage, future])
        finally:
            await publisher.close()

        async def two_dead() -> bool:
            return len(await backend.broker.dead_letters(SERVICE)) == 2

        await eventually(two_dead, what="two dead letters")
        letters = {
            letter.message_id: letter for letter in await backend.broker.dead_letters(SERVICE)
        }
        assert "unsupported version 9" in letters[str(future.message_id)].reason
        assert letters[str(garbage.message_id)].reason != "unknown"
        assert letters[str(garbage.message_id)].routing_key == "ItemStored"
        assert letters[str(garbage.message_id)].first_death_at is not None

        only_future = DeadLetterSelection(message_ids={str(future.message_id)})
        result = await backend.broker.replay_dead_letters(SERVICE, only_future)
        assert [letter.message_id for letter in result.replayed] == [str(future.message_id)]

        async def died_again() -> bool:
            found = {
                letter.message_id: letter for letter in await backend.broker.dead_letters(SERVICE)
            }
            again = found.get(str(future.message_id))
            return len(found) == 2 and again is not None and again.replays == 1

        await eventually(died_again, what="the replayed poison back in the DLQ")
        letters = {
            letter.message_id: letter for letter in await backend.broker.dead_letters(SERVICE)
        }
        assert letters[str(future.message_id)].deaths == 2
        assert "unsupported version 9" in letters[str(future.message_id)].reason

        purged = await backend.broker.purge_dead_letters(
            SERVICE, DeadLetterSelection(reason="version")
        )
        assert [letter.message_id for letter in purged] == [str(future.message_id)]
        assert [letter.message_id for letter in await backend.broker.dead_letters(SERVICE)] == [
            str(garbage.message_id)
        ]
    assert await backend.received() == {}


async def test_a_dead_letter_replayed_after_the_fix_is_applied_once(backend: Backend) -> None:
    item = ItemStored(item_id=uuid.uuid4(), note="bug")
    backend.handler.failing.add("bug")
    await _stage(backend, [item])
    async with backend.running():

        async def dead() -> bool:
            return len(await backend.broker.dead_letters(SERVICE)) == 1

        await eventually(dead, what="the failing message dead-lettered at its delivery limit")
        [letter] = await backend.broker.dead_letters(SERVICE)
        assert letter.message_id == str(item.event_id)
        backend.handler.failing.clear()  # the fix is deployed
        first = await backend.broker.replay_dead_letters(SERVICE, DeadLetterSelection())
        again = await backend.broker.replay_dead_letters(SERVICE, DeadLetterSelection())
        assert len(first.replayed) == 1 and again.replayed == [] and not first.left
        await _all_applied(backend, [item])
    assert await backend.received() == {item.item_id: 1}
    assert await backend.broker.dead_letters(SERVICE) == []


async def test_an_event_nobody_consumes_waits_unroutable_and_never_fails(
    backend: Backend,
) -> None:
    lonely = NobodyListens(item_id=uuid.uuid4())
    sessions = make_sessionmaker(backend.engine)
    async with sessions() as session, session.begin():
        add_event(session, lonely, names=backend.names)
    async with backend.running():

        async def waiting() -> bool:
            return (await read_status(backend.engine, names=backend.names)).unroutable == 1

        await eventually(waiting, what="the row marked unroutable")
    status = await read_status(backend.engine, names=backend.names)
    assert (status.pending, status.failed, status.unroutable) == (1, 0, 1)


async def test_status_and_retention(backend: Backend) -> None:
    items = _items(5)
    await _stage(backend, items)
    before = await read_status(backend.engine, names=backend.names)
    assert before.pending == 5 and before.oldest_pending_age_seconds is not None
    async with backend.running():
        await _all_applied(backend, items)

        async def all_published() -> bool:
            return (await read_status(backend.engine, names=backend.names)).pending == 0

        await eventually(all_published, what="every row published")
    after = await read_status(backend.engine, names=backend.names)
    assert (after.pending, after.failed, after.published_last_hour) == (0, 0, 5)
    assert after.oldest_pending_age_seconds is None
    kept = await delete_published_outbox_rows(
        backend.engine, older_than_seconds=3600, batch_size=2, names=backend.names
    )
    gone = await delete_published_outbox_rows(
        backend.engine, older_than_seconds=-1, batch_size=2, names=backend.names
    )
    assert (kept, gone) == (0, 5)
    assert (
        await delete_old_inbox_rows(
            backend.engine, older_than_seconds=-1, batch_size=2, names=backend.names
        )
        == 5
    )


@pytest.mark.parametrize("pair", ["sqlite+embedded", "postgresql+rabbitmq"])
async def test_a_service_with_names_of_its_own(pair: str, tmp_path: Path) -> None:
    names = MessagingNames(
        exchange="contract.events",
        queue_pattern="contract.{service}.inbound",
        outbox_table="store_outbox",
        inbox_table="store_inbox",
        notify_channel="store_pending",
    )
    async with backend_pair(pair, tmp_path, names) as backend:
        items = _items(20)
        await _stage(backend, items)
        async with backend.running():
            await _all_applied(backend, items)
            assert await backend.broker.dead_letters(SERVICE) == []
        assert await backend.received() == {item.item_id: 1 for item in items}
        if pair == "postgresql+rabbitmq":  # the queue is the one the pattern names
            url = backend.broker.url  # type: ignore[attr-defined]
            async with await aio_pika.connect(url) as connection:
                channel = await connection.channel()
                queue = await channel.declare_queue("contract.store.inbound", passive=True)
                assert queue.declaration_result.message_count == 0
        assert (
            await backend.scalar(select(func.count()).select_from(outbox_tables(names).inbox)) == 20
        )
        staged = await staged_events(backend.engine, names=names, published=True)
        assert len(staged) == 20


async def test_a_replay_reaches_only_the_service_whose_dead_letter_it_was(
    backend: Backend,
) -> None:
    """Another service also consuming the event already had its copy: a replay must not
    hand it a second one, and must reach its owner even if nothing else is bound."""
    other = QueueBindings.of("bystander", ["ItemStored"], backend.names)
    await backend.broker.declare([other])
    item = ItemStored(item_id=uuid.uuid4(), note="bug")
    backend.handler.failing.add("bug")
    await _stage(backend, [item])
    async with backend.running():

        async def dead() -> bool:
            return len(await backend.broker.dead_letters(SERVICE)) == 1

        await eventually(dead, what="the failing message dead-lettered")
        backend.handler.failing.clear()
        result = await backend.broker.replay_dead_letters(SERVICE, DeadLetterSelection())
        assert len(result.replayed) == 1 and result.left == []
        await _all_applied(backend, [item])
    bystander = backend.broker.consumer_connections(other, prefetch=10)
    async with bystander() as connection:
        await asyncio.sleep(0.5)
        got = [connection.inbound.get_nowait() for _ in range(connection.inbound.qsize())]
    assert [message.message_id for message in got] == [str(item.event_id)]  # the original only
    with pytest.raises(ValueError, match="limit"):
        await backend.broker.dead_letters(SERVICE, limit=-1)
