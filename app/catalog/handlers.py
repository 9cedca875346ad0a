"""Catalog's event handlers: an order lowers its product's stock, exactly once.

Runs inside the consumer's transaction, after the inbox decided which events are new.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Product
from app.db import driver_connection
from app.ordering.contracts import OrderPlaced
from app.outbox.subscriptions import APPLIED, Subscription

UNKNOWN_PRODUCT = "unknown_product"
INSUFFICIENT_STOCK = "insufficient_stock"

# One atomic conditional decrement per order: it either takes the whole quantity or
# nothing, and stock can never go below zero (the CHECK constraint backs it up).
RESERVE = (
    "UPDATE products SET stock_count = stock_count - %(quantity)s "
    "WHERE id = %(product_id)s AND stock_count >= %(quantity)s RETURNING id"
)

_RESERVE_ONE = (
    update(Product)
    .where(Product.id == bindparam("product_id"))
    .where(Product.stock_count >= bindparam("quantity"))
    .values(stock_count=Product.stock_count - bindparam("quantity"))
    .returning(Product.id)
)


async def reserve_stock(session: AsyncSession, events: Sequence[OrderPlaced]) -> list[str]:
    """Lower stock for each order, in order; an order that does not fit is not applied."""
    # Sorted by product (stable, so one product's orders keep their order): concurrent
    # consumers then lock product rows in the same order and queue instead of deadlocking.
    order = sorted(range(len(events)), key=lambda index: str(events[index].product_id))
    applied = await _decrement_each(session, [events[index] for index in order])
    missed = {events[i].product_id for i, ok in zip(order, applied, strict=True) if not ok}
    existing = await _existing(session, missed)
    outcomes = [APPLIED] * len(events)
    for index, ok in zip(order, applied, strict=True):
        if not ok:
            known = events[index].product_id in existing
            outcomes[index] = INSUFFICIENT_STOCK if known else UNKNOWN_PRODUCT
    return outcomes


async def _decrement_each(session: AsyncSession, events: Sequence[OrderPlaced]) -> list[bool]:
    params = [{"quantity": e.quantity, "product_id": e.product_id} for e in events]
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return [(await connection.execute(_RESERVE_ONE, p)).first() is not None for p in params]
    # psycopg pipelines executemany: every UPDATE runs in order on the server, with one
    # network round trip for the batch, and returning=True keeps each one's result.
    raw = await driver_connection(connection)
    applied: list[bool] = []
    async with raw.cursor() as cursor:
        await cursor.executemany(RESERVE, params, returning=True)
        while True:
            applied.append(cursor.rowcount > 0)
            if not cursor.nextset():
                break
    return applied


async def _existing(session: AsyncSession, product_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    if not product_ids:
        return set()
    rows = await session.scalars(select(Product.id).where(Product.id.in_(product_ids)))
    return set(rows)


SUBSCRIPTIONS = (Subscription(event=OrderPlaced, handle=reserve_stock),)
