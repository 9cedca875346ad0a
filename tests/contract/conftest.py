"""The outbox and inbox contract, run against each backend pair: SQLite + the embedded
broker, and PostgreSQL + RabbitMQ. The tests here use the library's public API and an
event of their own; nothing of the ordering or catalog services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, String, Table, Uuid, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloudcrm_outbox import (
    APPLIED,
    DEFAULT_NAMES,
    Broker,
    ConsumerPolicy,
    InProcessConfig,
    IntegrationEvent,
    MessagingNames,
    MessagingService,
    RelayProcessConfig,
    Subscription,
    broker_for,
    in_process,
    make_engine,
)
from cloudcrm_outbox.relay.wakeup import libpq_dsn
from cloudcrm_outbox.storage.schema import create_latest
from tests.support import postgres
from tests.support.rabbit import throwaway_vhost

SERVICE = "store"
PAIRS = ["sqlite+embedded", "postgresql+rabbitmq"]


class ItemStored(IntegrationEvent):
    """The contract suite's own event."""

    event_name: ClassVar[str] = "ItemStored"
    item_id: uuid.UUID
    note: str = ""


class NobodyListens(IntegrationEvent):
    """An event no service subscribes to (unroutable)."""

    event_name: ClassVar[str] = "NobodyListens"
    item_id: uuid.UUID


# The handler's effect: one row per application, so "applied once" is a count of one.
received_metadata = MetaData()
RECEIVED = Table(
    "received",
    received_metadata,
    Column("item_id", Uuid, nullable=False),
    Column("note", String(100), nullable=False),
)
IGNORED = "ignored"


class Handler:
    """Records each ItemStored; ``failing`` notes raise (the handler's own failure);
    a note "ignore" is recorded with another outcome."""

    def __init__(self) -> None:
        self.failing: set[str] = set()

    async def __call__(self, session: AsyncSession, events: Sequence[ItemStored]) -> list[str]:
        if any(event.note in self.failing for event in events):
            raise RuntimeError("the handler failed")
        rows = [{"item_id": event.item_id, "note": event.note} for event in events]
        await session.execute(insert(RECEIVED), rows)
        return [IGNORED if event.note == "ignore" else APPLIED for event in events]


@dataclass
class Backend:
    """One backend pair, its database created with the library's schema steps."""

    pair: str
    engine: AsyncEngine
    broker: Broker
    names: MessagingNames
    listen_dsn: str | None
    handler: Handler

    @asynccontextmanager
    async def running(self, **consumer: Any) -> AsyncIterator[None]:
        """The relay and the consumer of SERVICE, in this process, until the block ends."""
        policy = {"delivery_limit": 3, "redelivery_max_seconds": 0.2, "reconnect_max_seconds": 0.5}
        config = InProcessConfig(
            relay=RelayProcessConfig(poll_interval_seconds=0.1, shutdown_grace_seconds=2),
            consumer=ConsumerPolicy(**{**policy, **consumer}),
        )
        service = MessagingService(
            SERVICE,
            self.engine,
            (Subscription(event=ItemStored, handle=self.handler),),
            listen_dsn=self.listen_dsn,
        )
        async with in_process(self.broker, [service], config=config):
            yield

    async def received(self) -> dict[uuid.UUID, int]:
        """How many times each item was applied."""
        query = select(RECEIVED.c.item_id, func.count()).group_by(RECEIVED.c.item_id)
        async with self.engine.connect() as connection:
            return {row[0]: row[1] for row in (await connection.execute(query)).all()}

    async def scalar(self, query: Any) -> Any:
        async with self.engine.connect() as connection:
            return (await connection.execute(query)).scalar_one()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = "condition"
) -> None:
    """Wait until ``check()`` is true; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what} not reached within {within}s")
        await asyncio.sleep(0.05)


def _schema(names: MessagingNames) -> Callable[[Connection], None]:
    def create(connection: Connection) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            create_latest(names)
        received_metadata.create_all(connection)

    return create


@asynccontextmanager
async def backend_pair(
    pair: str, tmp_path: Path, names: MessagingNames = DEFAULT_NAMES
) -> AsyncIterator[Backend]:
    """A fresh database and broker of ``pair``, removed afterwards."""
    if pair == "sqlite+embedded":
        url = f"sqlite+aiosqlite:///{tmp_path / f'contract-{uuid.uuid4().hex[:8]}.db'}"
        async with _backend(pair, url, "memory://", names) as backend:
            yield backend
        return
    database = postgres.unique_name("cc_contract")
    url = await asyncio.to_thread(postgres.create_database, database)
    try:
        async with throwaway_vhost() as amqp_url, _backend(pair, url, amqp_url, names) as backend:
            yield backend
    finally:
        await asyncio.to_thread(postgres.drop_database, database)


@asynccontextmanager
async def _backend(
    pair: str, database_url: str, broker_url: str, names: MessagingNames
) -> AsyncIterator[Backend]:
    engine = make_engine(database_url)
    broker = broker_for(broker_url, names=names, connect_timeout=5, publish_timeout=5)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_schema(names))
        yield Backend(pair, engine, broker, names, libpq_dsn(database_url), Handler())
    finally:
        await broker.close()
        await engine.dispose()


@pytest.fixture(params=PAIRS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend pair in turn, with today's names."""
    pair = request.param
    if pair == "postgresql+rabbitmq":
        request.applymarker(pytest.mark.postgres)
        request.applymarker(pytest.mark.rabbitmq)
    async with backend_pair(pair, tmp_path) as made:
        yield made
