"""Finished reservations are deleted once old; live ones never; and the rule for a very
late cancel holds: after its order's reservation is gone, it gives nothing back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.handlers import SUBSCRIPTIONS
from app.catalog.retention import delete_finished_reservations
from app.ordering.contracts import OrderCancelled, OrderPlaced
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.subscriptions import by_event_name
from tests.conftest import query
from tests.support.catalog import new_product, stock_of

pytestmark = pytest.mark.postgres
DAY = 24 * 3600


@pytest.fixture
async def engine(catalog_db: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(catalog_db)
    yield engine
    await engine.dispose()


async def states(catalog_db: str) -> dict[str, str]:
    rows = await query(catalog_db, "SELECT order_id::text, state FROM stock_reservations")
    return {order_id: state for order_id, state in rows}


async def test_only_old_finished_reservations_are_deleted(
    catalog_db: str, engine: AsyncEngine
) -> None:
    rows = {state: {age: uuid.uuid4() for age in ("old", "new")}
            for state in ("reserved", "rejected", "released", "cancelled_first")}  # fmt: skip
    for state, by_age in rows.items():
        for age, order_id in by_age.items():
            await query(
                catalog_db,
                "INSERT INTO stock_reservations (order_id, product_id, quantity, state, "
                "created_at, updated_at) VALUES (%s, %s, 1, %s, now() - %s * interval '1 day', "
                "now() - %s * interval '1 day')",
                order_id, uuid.uuid4(), state, 40 if age == "old" else 1, 40 if age == "old" else 1,
            )  # fmt: skip
    deleted = await delete_finished_reservations(engine, older_than_seconds=30 * DAY, batch_size=2)
    assert deleted == 3
    left = await states(catalog_db)
    assert str(rows["reserved"]["old"]) in left  # live: the order may still be cancelled
    assert {state for order_id, state in left.items()} == {
        "reserved",
        "rejected",
        "released",
        "cancelled_first",
    }
    assert len(left) == 5


async def test_a_very_late_cancel_after_retention_gives_nothing_back(
    catalog_db: str, engine: AsyncEngine
) -> None:
    product = await new_product(catalog_db, stock=5)
    order = uuid.uuid4()
    processor = InboxProcessor(engine, consumer="catalog",
                               subscriptions=by_event_name(SUBSCRIPTIONS))  # fmt: skip
    placed = OrderPlaced(order_id=order, product_id=product, customer_name="Ann", quantity=2)
    cancel = OrderCancelled(order_id=order, product_id=product, quantity=2)
    await processor.process([Decoded(placed.event_id, placed)])
    [(before,)] = await query(catalog_db, "SELECT updated_at FROM stock_reservations")
    await processor.process([Decoded(cancel.event_id, cancel)])
    assert await stock_of(catalog_db, product) == 5
    [(state, after)] = await query(catalog_db, "SELECT state, updated_at FROM stock_reservations")
    assert state == "released" and after > before  # the change is dated
    await query(catalog_db, "UPDATE stock_reservations SET updated_at = now() - interval '40 days'")
    assert (
        await delete_finished_reservations(engine, older_than_seconds=30 * DAY, batch_size=10) == 1
    )

    late = OrderCancelled(order_id=order, product_id=product, quantity=2)  # a new message id
    await processor.process([Decoded(late.event_id, late)])
    assert await stock_of(catalog_db, product) == 5  # not 7: nothing given back twice
    assert await states(catalog_db) == {str(order): "cancelled_first"}  # a tombstone
