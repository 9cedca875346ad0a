"""The reply timeout through a long consumer outage, on SQLite with a fake clock (Spring
Modulith #1148 and #321, outboxkit #41: republishing a backlog that is still queued only
multiplies it).

Time passes by moving the orders' timestamps back: the sweep reads the database clock, so
40 minutes take a second. The destination queue is a stand-in holding one copy per
OrderPlaced sent, the relay's part.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import migrations as migrate
from app.core.settings import Settings
from app.ordering import service
from app.ordering.reply_timeouts import ReplyTimeoutPolicy, sweep_overdue_orders
from cloudcrm_outbox.brokers.queue_state import QueueState
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker

ORDERS = 10
DEFAULT = ReplyTimeoutPolicy()  # ORDER_REPLY_TIMEOUT_SECONDS=300 and the other defaults


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ordering.db'}"
    settings = Settings(ordering_database_url=url)
    await asyncio.to_thread(migrate.upgrade, "ordering", settings=settings)
    engine = make_engine(url)
    yield engine
    await engine.dispose()


class Queue:
    """catalog.events as the sweep sees it: copies sent, and whether a consumer is there."""

    def __init__(self, copies: int, consumers: int) -> None:
        self.copies, self.consumers = copies, consumers

    async def states(self) -> list[QueueState | None]:
        return [QueueState(messages=self.copies, consumers=self.consumers)]


async def _placed_and_published(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as session, session.begin():
        for _ in range(ORDERS):
            await service.place_order(
                session, customer_name="Ann", product_id=uuid.uuid4(), quantity=1
            )
    await _published(engine)


async def _published(engine: AsyncEngine) -> None:
    """The relay's part: every pending row published (one copy each in the queue)."""
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET published_at = CURRENT_TIMESTAMP WHERE published_at IS NULL")
        )


async def _time_passes(engine: AsyncEngine, seconds: int) -> None:
    shift = f"-{seconds} seconds"
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE orders SET created_at = strftime(:format, created_at, :shift), "
                "reply_due_at = strftime(:format, reply_due_at, :shift)"
            ),
            {"shift": shift, "format": "%Y-%m-%d %H:%M:%f"},  # as the database clock writes
        )


async def _outage(engine: AsyncEngine, queue: Queue, minutes: int) -> None:
    """Sweep every ``sweep_interval_seconds`` for ``minutes``; what is resent is queued."""
    step = int(DEFAULT.sweep_interval_seconds)
    for _ in range(minutes * 60 // step):
        await _time_passes(engine, step)
        report = await sweep_overdue_orders(engine, DEFAULT, destinations=queue.states)
        queue.copies += len(report.republished) + len(report.rebuilt)
        await _published(engine)


async def test_a_40_minute_outage_with_the_default_timeout_resends_nothing(
    engine: AsyncEngine,
) -> None:
    await _placed_and_published(engine)
    queue = Queue(copies=ORDERS, consumers=0)  # catalog's consumer is down
    await _outage(engine, queue, minutes=40)
    assert queue.copies <= ORDERS * 1.5, f"{queue.copies} copies of {ORDERS} orders"
    async with engine.connect() as connection:
        spent = (await connection.execute(text("SELECT max(reply_retries) FROM orders"))).scalar()
    assert spent == 0  # deferred, not retried: every retry is left for a real loss


async def test_with_a_consumer_attached_a_lost_copy_is_still_resent(engine: AsyncEngine) -> None:
    # The queue is served: an order unanswered after the timeout may have lost its copy
    # (a queue deleted and declared again), so the sweep resends as it always did.
    await _placed_and_published(engine)
    queue = Queue(copies=ORDERS, consumers=1)
    await _outage(engine, queue, minutes=6)  # the first resend at 5 minutes
    assert queue.copies == 2 * ORDERS
