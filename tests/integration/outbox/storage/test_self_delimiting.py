"""Transactions on real PostgreSQL. The relay's batch opens and closes its own
(``BEGIN; …``, ``…; COMMIT``) on a connection in autocommit until the BEGIN: nothing may
leak to the pool's next user. The inbox's is SQLAlchemy's, and everything a handler does —
staged objects, savepoints, listeners and hooks at begin and commit, errors it catches —
commits with its inbox row or not at all."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloudcrm_outbox import IntegrationEvent, Subscription, add_event, write_events
from cloudcrm_outbox.brokers.publisher import OutgoingMessage, PublishResult
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.relay import OutboxRelay
from cloudcrm_outbox.storage.engine import AbortedTransactionError, make_engine
from cloudcrm_outbox.storage.postgres import self_delimiting, simple_query
from cloudcrm_outbox.subscriptions import APPLIED, by_event_name
from tests.conftest import query
from tests.integration.outbox.conftest import placed, stage_events
from tests.support.events import OrderConfirmed, OrderPlaced

pytestmark = [pytest.mark.postgres]


def _processor(engine: AsyncEngine, handle: Any, consumer: str = "catalog") -> InboxProcessor:
    """An inbox whose one subscription, to OrderPlaced, is ``handle``."""
    subscription = Subscription(event=OrderPlaced, handle=handle)
    return InboxProcessor(engine, consumer=consumer, subscriptions=by_event_name([subscription]))


class ConfirmingPublisher:
    """Confirms everything, or raises ``failure`` once."""

    def __init__(self) -> None:
        self.failure: Exception | None = None

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        return PublishResult(confirmed=[message.message_id for message in messages])

    async def close(self) -> None:
        return None


async def _still_transactional(engine: AsyncEngine) -> None:
    """A write in a block that fails is rolled back: the connection the batch used went
    back to the pool out of autocommit."""
    marker = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO outbox (id, event_type, payload, headers) "
                    "VALUES (:id, 'Marker', '{}', '{}')"
                ),
                {"id": marker},
            )
            raise RuntimeError("roll it back")
    async with engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT count(*) FROM outbox WHERE id = :id"), {"id": marker}
        )
    assert found == 0


async def test_a_relay_batch_leaves_the_pool_with_real_transactions(outbox_db: str) -> None:
    # One connection in the pool: the batch's, reused by the checks after it.
    engine = make_engine(outbox_db, pool_size=1)
    publisher = ConfirmingPublisher()
    relay = OutboxRelay(engine, publisher, RelayPolicy())  # type: ignore[arg-type]
    try:
        ids = await stage_events(engine, 3)
        report = await relay.relay_batch()
        assert (report.claimed, report.published) == (3, 3)
        await _still_transactional(engine)

        # A batch that fails after its claim: rolled back, its rows pending again.
        more = await stage_events(engine, 2)
        publisher.failure = RuntimeError("the broker went away")
        with pytest.raises(RuntimeError):
            await relay.relay_batch()
        pending = await query(outbox_db, "SELECT id FROM outbox WHERE published_at IS NULL")
        assert {row[0] for row in pending} == set(more)
        await _still_transactional(engine)

        # An empty claim ends its transaction too (nothing is left open on the connection).
        assert (await relay.relay_batch()).claimed == 2
        assert (await relay.relay_batch()).claimed == 0
        async with engine.connect() as connection:
            status = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND state LIKE 'idle in%'"
                )
            )
        assert status == 0
        published = await query(outbox_db, "SELECT id FROM outbox WHERE published_at IS NOT NULL")
        assert {row[0] for row in published} == set(ids) | set(more)
    finally:
        await engine.dispose()


async def test_simple_query_stops_at_the_failing_statement_and_commits_nothing(
    outbox_db: str,
) -> None:
    engine = make_engine(outbox_db, pool_size=1)
    first, second = uuid.uuid4(), uuid.uuid4()
    insert = "INSERT INTO outbox (id, event_type, payload, headers) VALUES (%s, 'X', '{}', '{}')"
    try:
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with self_delimiting(engine).begin() as connection:
                await simple_query(
                    connection,
                    f"BEGIN; {insert}; SELECT 1 / 0; {insert}; COMMIT",
                    (first, second),
                )
        assert await query(outbox_db, "SELECT id FROM outbox") == []
        await _still_transactional(engine)
        # Rows: those of the last statement that returns any.
        async with self_delimiting(engine).begin() as connection:
            rows = await simple_query(connection, "BEGIN; SELECT 1; SELECT 2, 3; COMMIT")
        assert rows == [(2, 3)]
    finally:
        await engine.dispose()


def _replying(outcome_of: dict[uuid.UUID, str], reply_ids: list[uuid.UUID]) -> Subscription:
    async def handle(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        ids = [*reply_ids, *(uuid.uuid4() for _ in events)]
        replies = [
            OrderConfirmed(order_id=event.order_id, event_id=reply_id)  # type: ignore[attr-defined]
            for event, reply_id in zip(events, ids, strict=False)
        ]
        await write_events(session, replies, caused_by=events)
        return [outcome_of.get(event.order_id, APPLIED) for event in events]  # type: ignore[attr-defined]

    return Subscription(event=OrderPlaced, handle=handle)


async def test_the_inbox_commits_replies_rows_and_corrections_together(
    outbox_db: str, engine: AsyncEngine
) -> None:
    first, second = placed(), placed()
    processor = InboxProcessor(
        engine,
        consumer="catalog",
        subscriptions=by_event_name([_replying({second.order_id: "rejected_here"}, [])]),
    )
    messages = [Decoded(message_id=uuid.uuid4(), event=event) for event in (first, second)]

    outcomes = await processor.process(messages)

    assert list(outcomes.values()) == [APPLIED, "rejected_here"]
    replies = await query(outbox_db, "SELECT payload, xmin::text FROM outbox")
    assert sorted(row[0]["orderId"] for row in replies) == sorted(
        str(event.order_id) for event in (first, second)
    )
    # One transaction: the replies, the inbox rows and the correction share their xmin.
    xmins = {row[1] for row in replies}
    xmins |= {row[0] for row in await query(outbox_db, "SELECT xmin::text FROM inbox")}
    assert len(xmins) == 1
    inbox = await query(outbox_db, "SELECT message_id, outcome FROM inbox ORDER BY outcome")
    assert [(row[0], row[1]) for row in inbox] == [
        (messages[0].message_id, APPLIED),
        (messages[1].message_id, "rejected_here"),
    ]
    await _still_transactional(engine)


async def test_a_reply_that_fails_leaves_nothing_behind(
    outbox_db: str, engine: AsyncEngine
) -> None:
    # A reply whose id is already in the outbox: its INSERT fails after the inbox row and
    # the handler's work were sent.
    taken = (await stage_events(engine, 1))[0]
    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name([_replying({}, [taken])])
    )
    message = Decoded(message_id=uuid.uuid4(), event=placed())

    with pytest.raises(psycopg.errors.UniqueViolation):
        await processor.process([message])

    assert await query(outbox_db, "SELECT message_id FROM inbox") == []
    assert [row[0] for row in await query(outbox_db, "SELECT id FROM outbox")] == [taken]
    await _still_transactional(engine)
    # The same message, once the conflict is gone, is applied (it was never recorded).
    await query(outbox_db, "DELETE FROM outbox")
    assert await processor.process([message]) == {message.message_id: APPLIED}


def _staging(reply_id: uuid.UUID | None = None) -> Subscription:
    """A handler that stages its reply as an ORM object (``add_event``), flushed by
    SQLAlchemy rather than sent at once."""

    async def handle(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        for event in events:
            reply = OrderConfirmed(order_id=event.order_id, event_id=reply_id or uuid.uuid4())  # type: ignore[attr-defined]
            add_event(session, reply)
        return [APPLIED] * len(events)

    return Subscription(event=OrderPlaced, handle=handle)


async def test_objects_a_handler_stages_commit_in_the_inbox_transaction(
    outbox_db: str, engine: AsyncEngine
) -> None:
    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name([_staging()])
    )
    message = Decoded(message_id=uuid.uuid4(), event=placed())

    assert await processor.process([message]) == {message.message_id: APPLIED}

    # One transaction: the staged reply and the inbox row share their xmin.
    [(inbox_xmin,)] = await query(outbox_db, "SELECT xmin::text FROM inbox")
    [(reply_xmin,)] = await query(outbox_db, "SELECT xmin::text FROM outbox")
    assert reply_xmin == inbox_xmin


async def test_a_staged_object_that_fails_leaves_nothing_behind(
    outbox_db: str, engine: AsyncEngine
) -> None:
    taken = (await stage_events(engine, 1))[0]
    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name([_staging(reply_id=taken)])
    )
    message = Decoded(message_id=uuid.uuid4(), event=placed())

    with pytest.raises(IntegrityError):
        await processor.process([message])

    assert await query(outbox_db, "SELECT message_id FROM inbox") == []
    assert [row[0] for row in await query(outbox_db, "SELECT id FROM outbox")] == [taken]
    await _still_transactional(engine)


async def test_a_reply_in_a_savepoint_rolled_back_is_not_written(
    outbox_db: str, engine: AsyncEngine
) -> None:
    async def handle(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        outcomes = []
        for index, event in enumerate(events):
            try:
                async with session.begin_nested():
                    await write_events(session, [OrderConfirmed(order_id=event.order_id)])  # type: ignore[attr-defined]
                    if index == 1:
                        raise LookupError("this one is refused")
                outcomes.append(APPLIED)
            except LookupError:
                outcomes.append("refused")
        return outcomes

    processor = _processor(engine, handle)
    first, second = placed(), placed()
    messages = [Decoded(message_id=uuid.uuid4(), event=event) for event in (first, second)]

    assert list((await processor.process(messages)).values()) == [APPLIED, "refused"]
    replies = await query(outbox_db, "SELECT payload->>'orderId' FROM outbox")
    assert [row[0] for row in replies] == [str(first.order_id)]


async def test_a_handler_using_the_sessions_engine_gets_real_transactions(
    outbox_db: str, engine: AsyncEngine
) -> None:
    marker = uuid.uuid4()

    async def handle(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        with pytest.raises(KeyError):
            async with session.bind.begin() as connection:  # another connection, its own
                await connection.execute(
                    text(
                        "INSERT INTO outbox (id, event_type, payload, headers) "
                        "VALUES (:id, 'Marker', '{}', '{}')"
                    ),
                    {"id": marker},
                )
                raise KeyError("roll it back")
        return [APPLIED] * len(events)

    processor = _processor(engine, handle)
    message = Decoded(message_id=uuid.uuid4(), event=placed())

    assert await processor.process([message]) == {message.message_id: APPLIED}
    assert await query(outbox_db, "SELECT id FROM outbox WHERE id = %s", marker) == []


async def test_commit_time_work_runs_inside_the_transaction(
    outbox_db: str, engine: AsyncEngine
) -> None:
    # What SQLAlchemy does at its commit — before_commit hooks and their flush, releasing
    # a savepoint a handler left open — must happen before the COMMIT, not after it.
    async def hooked(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        reply = OrderConfirmed(order_id=uuid.uuid4())
        sqlalchemy_event.listen(
            session.sync_session, "before_commit", lambda s: add_event(s, reply), once=True
        )
        return [APPLIED] * len(events)

    async def left_open(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        await session.begin_nested()
        await write_events(session, [OrderConfirmed(order_id=uuid.uuid4())])
        return [APPLIED] * len(events)

    for handle in (hooked, left_open):
        processor = InboxProcessor(
            engine,
            consumer=handle.__name__,
            subscriptions=by_event_name([Subscription(event=OrderPlaced, handle=handle)]),
        )
        message = Decoded(message_id=uuid.uuid4(), event=placed())
        assert await processor.process([message]) == {message.message_id: APPLIED}

    # The hook's reply committed with its inbox row (the savepoint's rows carry the
    # savepoint's own transaction id, so only their presence is checked).
    [(hooked_xmin,)] = await query(
        outbox_db, "SELECT xmin::text FROM inbox WHERE consumer = 'hooked'"
    )
    xmins = [row[0] for row in await query(outbox_db, "SELECT xmin::text FROM outbox")]
    assert len(xmins) == 2 and hooked_xmin in xmins
    assert len(await query(outbox_db, "SELECT 1 FROM inbox")) == 2
    await _still_transactional(engine)


async def test_a_handler_that_swallows_a_database_error_fails_the_batch(
    outbox_db: str, engine: AsyncEngine
) -> None:
    # PostgreSQL answers COMMIT on an aborted transaction with a ROLLBACK, silently: the
    # batch must fail (and be retried, then dead-lettered), not be acked as applied.
    async def handle(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        with contextlib.suppress(DBAPIError):  # and goes on
            await session.execute(text("SELECT 1 / 0"))
        return [APPLIED] * len(events)

    processor = _processor(engine, handle)
    message = Decoded(message_id=uuid.uuid4(), event=placed())

    with pytest.raises(AbortedTransactionError):
        await processor.process([message])
    assert await query(outbox_db, "SELECT message_id FROM inbox") == []
    await _still_transactional(engine)


def _handler(body: Any) -> Subscription:
    async def handle(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        return list(await body(session, events))

    return Subscription(event=OrderPlaced, handle=handle)


async def test_an_after_begin_listener_runs_inside_the_inbox_transaction(
    outbox_db: str, engine: AsyncEngine
) -> None:
    def set_tenant(session: Any, transaction: Any, connection: Any) -> None:
        connection.exec_driver_sql("SELECT set_config('app.tenant', 'acme', true)")

    seen: list[str] = []

    async def read_tenant(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        seen.append(await session.scalar(text("SELECT current_setting('app.tenant', true)")))
        return [APPLIED] * len(events)

    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name([_handler(read_tenant)])
    )
    sessions = processor._sessions  # the inbox's own sessions
    sqlalchemy_event.listen(sessions.class_.sync_session_class, "after_begin", set_tenant)
    try:
        message = Decoded(message_id=uuid.uuid4(), event=placed())
        assert await processor.process([message]) == {message.message_id: APPLIED}
    finally:
        sqlalchemy_event.remove(sessions.class_.sync_session_class, "after_begin", set_tenant)
    assert seen == ["acme"]  # a transaction-local setting: it ran inside the transaction


async def test_errors_a_handler_or_hook_swallows_fail_the_batch(
    outbox_db: str, engine: AsyncEngine
) -> None:
    async def refused_after_error(session: AsyncSession, events: Any) -> list[str]:
        with contextlib.suppress(DBAPIError):
            await session.execute(text("SELECT 1 / 0"))
        return ["refused"] * len(events)  # an outcome to correct, after the error

    async def hook_swallows(session: AsyncSession, events: Any) -> list[str]:
        def failing_quietly(sync_session: Any) -> None:
            with contextlib.suppress(DBAPIError):
                sync_session.execute(text("SELECT 1 / 0"))

        sqlalchemy_event.listen(session.sync_session, "before_commit", failing_quietly, once=True)
        await write_events(session, [OrderConfirmed(order_id=uuid.uuid4())])
        return [APPLIED] * len(events)

    for body in (refused_after_error, hook_swallows):
        processor = InboxProcessor(
            engine, consumer=body.__name__, subscriptions=by_event_name([_handler(body)])
        )
        with pytest.raises(AbortedTransactionError):
            await processor.process([Decoded(message_id=uuid.uuid4(), event=placed())])
    assert await query(outbox_db, "SELECT message_id FROM inbox") == []
    assert await query(outbox_db, "SELECT id FROM outbox") == []
    await _still_transactional(engine)
