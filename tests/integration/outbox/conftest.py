from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox import add_event
from cloudcrm_outbox.brokers.publisher import OutgoingMessage, Publisher, PublishResult
from cloudcrm_outbox.brokers.rabbitmq.publishing.path import PublishPath
from cloudcrm_outbox.brokers.rabbitmq.publishing.publisher import AmqpPublisher
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.relay.relay import OutboxRelay
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from tests.support import postgres
from tests.support.events import OrderPlaced, create_outbox_schema

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

QUEUE = "test.events"
# Both ways the relay's publisher writes (app/outbox/brokers/rabbitmq/publishing/path.py):
# the tests that prove
# publish, confirm, return, nack and a broken connection run on each, so CI covers the
# public path an untested aiormq falls back to.
PUBLISH_PATHS = pytest.mark.parametrize("publish_path", ["fast", "public"])


@pytest.fixture(scope="session")
def outbox_template() -> Iterator[str]:
    """A database holding only the outbox and inbox tables (every schema step), cloned
    by each test: the library's tests need no service's schema."""
    name = postgres.unique_name("cc_tpl_outbox")
    url = postgres.create_database(name)
    try:
        engine = create_engine(url)  # psycopg serves SQLAlchemy's sync engine too
        with engine.begin() as connection:
            create_outbox_schema(connection)
        engine.dispose()
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture
async def outbox_db(outbox_template: str) -> AsyncIterator[str]:
    """The URL of a fresh database with the outbox and inbox tables."""
    name = postgres.unique_name("cc_outbox")
    url = await asyncio.to_thread(postgres.create_database, name, template=outbox_template)
    try:
        yield url
    finally:
        await asyncio.to_thread(postgres.drop_database, name)


@pytest.fixture
async def engine(outbox_db: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(outbox_db)
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


# A fault hook: called with the confirmed ids after the broker confirmed them, before the
# relay marks them (it marks what ``publish_batch`` returns).
AfterConfirmHook = Callable[[Sequence[uuid.UUID]], Awaitable[None]]


class HookedPublisher:
    """A publisher that runs ``after_confirm`` between the broker's confirms and the mark."""

    def __init__(self, inner: Publisher, after_confirm: AfterConfirmHook) -> None:
        self._inner, self._after_confirm = inner, after_confirm

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        result = await self._inner.publish_batch(messages)
        if result.confirmed:
            await self._after_confirm(result.confirmed)
        return result

    async def close(self) -> None:
        await self._inner.close()


@asynccontextmanager
async def relay_for(
    database_url: str,
    broker_url: str,
    *,
    after_confirm: AfterConfirmHook | None = None,
    publish_timeout: float = 5.0,
    publish_path: PublishPath = "auto",
    **policy: float,
) -> AsyncIterator[OutboxRelay]:
    """A relay with its own engine and broker connection (as a separate process has)."""
    engine = make_engine(database_url)
    publisher: Publisher = AmqpPublisher(
        broker_url, publish_timeout=publish_timeout, publish_path=publish_path
    )
    if after_confirm is not None:
        publisher = HookedPublisher(publisher, after_confirm)
    try:
        yield OutboxRelay(engine, publisher, RelayPolicy(**policy))  # type: ignore[arg-type]
    finally:
        await publisher.close()
        await engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def either_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with the outbox tables: a fresh PostgreSQL one, or a new SQLite file."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("outbox_db"))
    return f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture
async def either_engine(either_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``either_database`` (the SQLite file's tables made first)."""
    engine = make_engine(either_database)
    if engine.dialect.name == "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(create_outbox_schema)
    yield engine
    await engine.dispose()
