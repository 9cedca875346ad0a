"""The checker itself must catch what it is there to catch."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import query
from tests.reliability.history import Attempt, History

pytestmark = pytest.mark.postgres


async def record(ordering_db: str, key: str, product: uuid.UUID) -> uuid.UUID:
    order_id, message_id = uuid.uuid4(), uuid.uuid4()
    await query(
        ordering_db,
        "INSERT INTO orders (id, customer_name, product_id, quantity, state) "
        "VALUES (%s, %s, %s, 1, 'Placed')",
        order_id,
        key,
        product,
    )
    await query(
        ordering_db,
        "INSERT INTO outbox (id, event_type, payload, headers, published_at) "
        "VALUES (%s, 'OrderPlaced', %s::json, '{}'::json, now())",
        message_id,
        f'{{"orderId": "{order_id}"}}',
    )
    return message_id


async def test_lost_phantom_and_double_effects_are_reported(
    ordering_db: str, catalog_db: str
) -> None:
    product = uuid.uuid4()
    await query(
        catalog_db,
        "INSERT INTO products (id, name, price, stock_count) VALUES (%s, 'p', 1, 96)",
        product,
    )
    history = History("t")
    applied = await record(ordering_db, "t-applied", product)
    await record(ordering_db, "t-never-applied", product)
    await query(
        catalog_db,
        "INSERT INTO inbox (consumer, message_id, outcome) VALUES "
        "('catalog', %s, 'applied'), ('catalog', %s, 'applied')",
        applied,
        uuid.uuid4(),  # an effect with no order behind it
    )
    history.attempts = [
        Attempt("t-applied", str(product), 1, "ok"),
        Attempt("t-never-applied", str(product), 1, "ok"),
        Attempt("t-vanished", str(product), 1, "ok"),  # acknowledged, not in the database
    ]

    verdict = await history.check(ordering_db, catalog_db, {str(product): 100})

    assert not verdict.clean
    assert set(verdict.lost) == {"t-never-applied", "t-vanished"}
    assert len(verdict.phantom) == 1
    assert verdict.applied_twice == 3  # stock 96, but only one unit was applied
