"""Catalog's reservations on PostgreSQL: stock taken once, given back once, replies staged
in the same transaction, and a cancel that arrives before its order."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.handlers import SUBSCRIPTIONS
from app.ordering.contracts import OrderCancelled, OrderPlaced
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.inbox.processor import InboxProcessor
from cloudcrm_outbox.storage.engine import make_engine
from cloudcrm_outbox.subscriptions import by_event_name
from tests.conftest import count, query
from tests.support.catalog import new_product, stock_of
from tests.support.consuming import publish, running_consumer, wait_until
from tests.support.rabbit import read_queue

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(catalog_db: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(catalog_db)
    yield engine
    await engine.dispose()


def processor(engine: AsyncEngine) -> InboxProcessor:
    return InboxProcessor(engine, consumer="catalog", subscriptions=by_event_name(SUBSCRIPTIONS))


def placed(order_id: uuid.UUID, product_id: uuid.UUID, quantity: int = 1) -> Decoded:
    event = OrderPlaced(
        order_id=order_id, product_id=product_id, customer_name="Ann", quantity=quantity
    )
    return Decoded(event.event_id, event)


def cancelled(order_id: uuid.UUID, product_id: uuid.UUID, quantity: int = 1) -> Decoded:
    event = OrderCancelled(order_id=order_id, product_id=product_id, quantity=quantity)
    return Decoded(event.event_id, event)


async def replies(catalog_db: str) -> list[tuple[Any, ...]]:
    """Catalog's outbox: (event type, order id, reason) per staged reply."""
    return await query(
        catalog_db,
        "SELECT event_type, payload->>'orderId', payload->>'reason' FROM outbox ORDER BY 2",
    )


async def outcomes_of(catalog_db: str, batch: list[Decoded]) -> list[str]:
    rows = dict(await query(catalog_db, "SELECT message_id, outcome FROM inbox"))
    return [rows[message.message_id] for message in batch]


async def test_reserve_replies_in_the_same_transaction(
    catalog_db: str, engine: AsyncEngine
) -> None:
    product = await new_product(catalog_db, 2)
    first, second, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = [placed(first, product, 2), placed(second, product, 1), placed(unknown, uuid.uuid4())]

    await processor(engine).process(batch)

    assert await stock_of(catalog_db, product) == 0
    assert await outcomes_of(catalog_db, batch) == [
        "applied",
        "insufficient_stock",
        "unknown_product",
    ]
    assert sorted(await replies(catalog_db), key=str) == sorted(
        [
            ("StockReserved", str(first), None),
            ("StockReservationRejected", str(second), "insufficient_stock"),
            ("StockReservationRejected", str(unknown), "unknown_product"),
        ],
        key=str,
    )


async def test_a_failed_batch_stages_no_reply(catalog_db: str, engine: AsyncEngine) -> None:
    """The reply is in the consumer's transaction: a batch that rolls back leaves no reply
    (and no stock change) behind."""
    product = await new_product(catalog_db, 5)
    await query(catalog_db, "ALTER TABLE outbox ADD CONSTRAINT no_rows CHECK (false) NOT VALID")

    with pytest.raises(Exception, match="no_rows"):
        await processor(engine).process([placed(uuid.uuid4(), product)])

    assert await stock_of(catalog_db, product) == 5
    assert await query(catalog_db, "SELECT count(*) FROM inbox") == [(0,)]
    assert await query(catalog_db, "SELECT count(*) FROM stock_reservations") == [(0,)]


async def test_cancel_gives_back_once_even_if_sent_twice(
    catalog_db: str, engine: AsyncEngine
) -> None:
    product = await new_product(catalog_db, 5)
    order = uuid.uuid4()
    await processor(engine).process([placed(order, product, 3)])
    # Two OrderCancelled for one order (different message ids: the inbox cannot tell).
    cancels = [cancelled(order, product, 3), cancelled(order, product, 3)]
    await processor(engine).process(cancels[:1])
    await processor(engine).process(cancels[1:])

    assert await stock_of(catalog_db, product) == 5
    assert await outcomes_of(catalog_db, cancels) == ["applied", "nothing_reserved"]


async def test_cancelling_a_rejected_order_gives_nothing_back(
    catalog_db: str, engine: AsyncEngine
) -> None:
    product = await new_product(catalog_db, 1)
    order = uuid.uuid4()
    await processor(engine).process([placed(order, product, 2)])  # too many: rejected
    cancel = [cancelled(order, product, 2)]
    await processor(engine).process(cancel)

    assert await stock_of(catalog_db, product) == 1
    assert await outcomes_of(catalog_db, cancel) == ["nothing_reserved"]


async def test_a_cancel_arriving_first_makes_the_late_order_take_nothing(
    catalog_db: str, engine: AsyncEngine
) -> None:
    product = await new_product(catalog_db, 5)
    order = uuid.uuid4()
    cancel, place = [cancelled(order, product, 2)], [placed(order, product, 2)]
    await processor(engine).process(cancel)
    await processor(engine).process(place)

    assert await stock_of(catalog_db, product) == 5
    assert await outcomes_of(catalog_db, cancel + place) == [
        "cancelled_before_placed",
        "cancelled_before_placed",
    ]
    assert await replies(catalog_db) == []  # no reply: ordering's order is Cancelled already
    assert await query(catalog_db, "SELECT state FROM stock_reservations") == [("cancelled_first",)]


@pytest.mark.parametrize("cancel_first", [False, True])
async def test_place_and_cancel_in_one_batch(
    catalog_db: str, engine: AsyncEngine, cancel_first: bool
) -> None:
    """Handled in delivery order within the batch: place then cancel gives back what was
    taken; cancel then place leaves a tombstone and takes nothing."""
    product = await new_product(catalog_db, 5)
    order = uuid.uuid4()
    pair = [placed(order, product, 2), cancelled(order, product, 2)]
    batch = pair[::-1] if cancel_first else pair
    await processor(engine).process(batch)

    assert await stock_of(catalog_db, product) == 5
    [(state,)] = await query(catalog_db, "SELECT state FROM stock_reservations")
    if cancel_first:
        assert await outcomes_of(catalog_db, batch) == ["cancelled_before_placed"] * 2
        assert state == "cancelled_first"
        assert await replies(catalog_db) == []
    else:
        assert await outcomes_of(catalog_db, batch) == ["applied", "applied"]
        assert state == "released"
        assert await replies(catalog_db) == [("StockReserved", str(order), None)]


@pytest.mark.rabbitmq
async def test_places_and_cancels_through_two_consumers_at_once(
    catalog_db: str, broker: str
) -> None:
    """200 orders' OrderPlaced and OrderCancelled, shuffled, through RabbitMQ to two
    consumers taking batches of 10: whichever of a pair comes first, the reservation row
    arbitrates, no stock is lost or given back twice, and nothing is dead-lettered (a
    deadlock between the two consumers' batches is retried, not poison)."""
    products = [await new_product(catalog_db, 1_000) for _ in range(3)]
    rng = random.Random(7)
    messages = []
    for _ in range(200):
        order, product = uuid.uuid4(), rng.choice(products)
        for event in (placed(order, product, 2), cancelled(order, product, 2)):
            properties = {
                "message_id": str(event.message_id),
                "type": event.event.event_name,
                "content_type": "application/json",
            }
            messages.append((json.dumps(event.event.body()).encode(), properties))
    rng.shuffle(messages)

    async def all_handled() -> bool:
        return await count(catalog_db, "inbox") >= 400

    async with (
        running_consumer(catalog_db, broker, prefetch=20, batch_size=10),
        running_consumer(catalog_db, broker, prefetch=20, batch_size=10),
    ):
        await publish(broker, messages)
        await wait_until(all_handled, timeout=60)

    assert [await stock_of(catalog_db, p) for p in products] == [1_000] * 3
    states = dict(
        await query(catalog_db, "SELECT state, count(*) FROM stock_reservations GROUP BY state")
    )
    assert set(states) <= {"released", "cancelled_first"}
    assert sum(states.values()) == 200
    assert await read_queue(broker, "catalog.events.dlq", expected=0, timeout=1) == []
