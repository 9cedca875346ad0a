"""Catalog's stock handler and the inbox on SQLite (the embedded default).

Concurrency (two consumers, a hot product) is proven on PostgreSQL in
tests/integration/catalog; these check the arithmetic and the deduplication.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.handlers import SUBSCRIPTIONS
from app.catalog.models import Product
from app.core import migrations as migrate
from app.core.settings import Settings
from app.ordering.contracts import OrderCancelled, OrderPlaced
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.storage.engine import make_engine, make_sessionmaker
from cloudcrm_outbox.storage.tables import OutboxMessage
from cloudcrm_outbox.subscriptions import by_event_name


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    await asyncio.to_thread(migrate.upgrade, "catalog", settings=Settings(catalog_database_url=url))
    engine = make_engine(url)
    yield engine
    await engine.dispose()


async def product(engine: AsyncEngine, stock: int) -> uuid.UUID:
    async with make_sessionmaker(engine)() as session, session.begin():
        item = Product(id=uuid.uuid4(), name="P", price=1, stock_count=stock)
        session.add(item)
    return item.id


def placed(product_id: uuid.UUID, quantity: int) -> Decoded:
    event = OrderPlaced(
        order_id=uuid.uuid4(), product_id=product_id, customer_name="A", quantity=quantity
    )
    return Decoded(event.event_id, event)


async def stock(engine: AsyncEngine, product_id: uuid.UUID) -> int:
    async with make_sessionmaker(engine)() as session:
        return int(
            await session.scalar(select(Product.stock_count).where(Product.id == product_id)) or 0
        )


async def test_orders_apply_in_order_and_never_oversell(engine: AsyncEngine) -> None:
    hot = await product(engine, 5)
    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name(SUBSCRIPTIONS)
    )
    batch = [placed(hot, 3), placed(hot, 3), placed(hot, 2), placed(uuid.uuid4(), 1)]

    outcomes = await processor.process(batch)

    assert [outcomes[m.message_id] for m in batch] == [
        "applied",
        "insufficient_stock",
        "applied",
        "unknown_product",
    ]
    assert await stock(engine, hot) == 0
    async with make_sessionmaker(engine)() as session:
        replies = (
            await session.execute(select(OutboxMessage.event_type, OutboxMessage.payload))
        ).all()
    assert sorted((kind, payload.get("reason")) for kind, payload in replies) == [
        ("StockReservationRejected", "insufficient_stock"),
        ("StockReservationRejected", "unknown_product"),
        ("StockReserved", None),
        ("StockReserved", None),
    ]


async def test_a_message_seen_again_is_skipped(engine: AsyncEngine) -> None:
    item = await product(engine, 10)
    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name(SUBSCRIPTIONS)
    )
    message = placed(item, 4)

    first = await processor.process([message, message])  # twice in one batch
    second = await processor.process([message])  # and again later

    assert first == {message.message_id: "applied"}
    assert second == {}
    assert await stock(engine, item) == 6


async def test_every_stock_change_bumps_the_product_version(engine: AsyncEngine) -> None:
    """The product's ETag is its version: an order taking stock and its cancel giving it
    back change the product, so a client's If-Match from before them must fail."""
    item = await product(engine, 10)
    processor = InboxProcessor(
        engine, consumer="catalog", subscriptions=by_event_name(SUBSCRIPTIONS)
    )
    order = placed(item, 3)
    assert isinstance(order.event, OrderPlaced)
    cancel = OrderCancelled(order_id=order.event.order_id, product_id=item, quantity=3)

    versions = [await version(engine, item)]
    await processor.process([order])
    versions.append(await version(engine, item))
    await processor.process([Decoded(cancel.event_id, cancel)])
    versions.append(await version(engine, item))

    assert versions == [1, 2, 3]
    assert await stock(engine, item) == 10


async def version(engine: AsyncEngine, product_id: uuid.UUID) -> int:
    async with make_sessionmaker(engine)() as session:
        return int(
            await session.scalar(select(Product.version).where(Product.id == product_id)) or 0
        )
