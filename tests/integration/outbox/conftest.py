from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ordering.contracts import OrderPlaced
from app.outbox import add_event
from app.outbox.amqp import AmqpPublisher
from app.outbox.database import make_engine, make_sessionmaker
from app.outbox.relay import AfterConfirmHook, OutboxRelay, RelayPolicy

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

QUEUE = "test.events"


@pytest.fixture
async def engine(ordering_db: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(ordering_db)
    yield engine
    await engine.dispose()


def placed(quantity: int = 1) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(), product_id=uuid.uuid4(), customer_name="Ann", quantity=quantity
    )


async def stage_events(engine: AsyncEngine, count: int, *, chunk: int = 1000) -> list[uuid.UUID]:
    """Commit ``count`` OrderPlaced outbox rows; returns their message ids."""
    sessions = make_sessionmaker(engine)
    ids: list[uuid.UUID] = []
    for start in range(0, count, chunk):
        async with sessions() as session, session.begin():
            for _ in range(min(chunk, count - start)):
                ids.append(add_event(session, placed()).id)
    return ids


@asynccontextmanager
async def relay_for(
    database_url: str,
    broker_url: str,
    *,
    after_confirm: AfterConfirmHook | None = None,
    publish_timeout: float = 5.0,
    **policy: float,
) -> AsyncIterator[OutboxRelay]:
    """A relay with its own engine and broker connection (as a separate process has)."""
    engine = make_engine(database_url)
    publisher = AmqpPublisher(broker_url, publish_timeout=publish_timeout)
    try:
        yield OutboxRelay(
            engine,
            publisher,
            RelayPolicy(**policy),
            after_confirm=after_confirm,  # type: ignore[arg-type]
        )
    finally:
        await publisher.close()
        await engine.dispose()
