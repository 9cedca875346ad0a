"""On SQLite too, a handler that ends its batch's transaction (a failed flush it caught, a
rollback) fails the batch: committing would record nothing, and the messages be acked."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloudcrm_outbox import IntegrationEvent, Subscription, add_event
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.storage.engine import AbortedTransactionError, make_engine
from cloudcrm_outbox.subscriptions import APPLIED, by_event_name
from tests.support.events import OrderConfirmed, OrderPlaced, create_outbox_schema


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}"
    sync = create_engine(url.replace("+aiosqlite", ""))
    with sync.begin() as connection:
        create_outbox_schema(connection)
    sync.dispose()
    engine = make_engine(url)
    yield engine
    await engine.dispose()


async def test_a_flush_error_the_handler_caught_fails_the_batch(engine: AsyncEngine) -> None:
    taken = uuid.uuid4()

    async def handle(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
        add_event(session, OrderConfirmed(order_id=uuid.uuid4(), event_id=taken))
        add_event(session, OrderConfirmed(order_id=uuid.uuid4(), event_id=taken))
        with contextlib.suppress(DBAPIError):
            await session.flush()  # the second row's primary key: the flush fails
        return [APPLIED] * len(events)

    processor = InboxProcessor(
        engine,
        consumer="catalog",
        subscriptions=by_event_name([Subscription(event=OrderPlaced, handle=handle)]),
    )
    event = OrderPlaced(
        order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="Ann", quantity=1
    )

    with pytest.raises(AbortedTransactionError):
        await processor.process([Decoded(message_id=uuid.uuid4(), event=event)])
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM inbox")) == 0
        assert await connection.scalar(text("SELECT count(*) FROM outbox")) == 0
