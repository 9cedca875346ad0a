"""Catalog's stock statements: reservation rows and stock counts, for batches of orders.

They run inside the consumer's transaction (the handlers call them) and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import PRODUCTS, STOCK_RESERVATIONS, Product, ReservationState
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.store import store_for

reservations = STOCK_RESERVATIONS


@dataclass(frozen=True)
class OrderLine:
    order_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int


# PostgreSQL: one statement text for any batch size (array parameters), prepared once;
# unnest keeps the arrays' order, so rows go in in order-id order.
async def claim_reservations(
    session: AsyncSession, lines: Sequence[OrderLine], state: ReservationState
) -> set[uuid.UUID]:
    """Insert a reservation row in ``state`` for each order that has none; returns the
    orders whose row this call inserted.

    The primary key is the arbiter between an order's OrderPlaced and its OrderCancelled:
    when two consumers handle both at once, the second INSERT waits for the first
    transaction and then inserts nothing, so it sees the first one's row. Rows go in in
    order-id order, so two batches never wait on each other's rows in opposite orders
    (which would deadlock)."""
    if not lines:
        return set()
    ordered = sorted(lines, key=lambda line: str(line.order_id))
    connection = await session.connection()
    # One statement for the batch on either database (SQLAlchemy's "insertmanyvalues").
    statement = (
        store_for(connection.dialect)
        .insert_ignoring_conflicts(reservations)
        .returning(reservations.c.order_id)
    )
    rows = [
        {"order_id": line.order_id, "product_id": line.product_id, "quantity": line.quantity,
         "state": state.value}
        for line in ordered
    ]  # fmt: skip
    return set((await session.scalars(statement, rows)).all())


async def reservation_states(
    session: AsyncSession, order_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    ids = list(order_ids)
    if not ids:
        return {}
    query = select(reservations.c.order_id, reservations.c.state).where(
        reservations.c.order_id.in_(ids)
    )
    return {order_id: state for order_id, state in (await session.execute(query)).all()}


async def mark_rejected(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> None:
    if order_ids:
        await session.execute(
            update(reservations)
            .where(reservations.c.order_id.in_(order_ids))
            .values(state=ReservationState.REJECTED.value, updated_at=db_now_plus(0))
        )


async def release_reserved(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> list[OrderLine]:
    """Flip ``reserved`` rows to ``released``; returns what each had taken. A row already
    released (or rejected, or a tombstone) is left alone, so stock goes back at most once."""
    if not order_ids:
        return []
    statement = (
        update(reservations)
        .where(reservations.c.order_id.in_(order_ids))
        .where(reservations.c.state == ReservationState.RESERVED.value)
        .values(state=ReservationState.RELEASED.value, updated_at=db_now_plus(0))
        .returning(reservations.c.order_id, reservations.c.product_id, reservations.c.quantity)
    )
    return [OrderLine(*row) for row in (await session.execute(statement)).all()]


# One atomic conditional decrement per order: it either takes the whole quantity or
# nothing, and stock can never go below zero (the CHECK constraint backs it up). Each
# change of the stock is a new version of the product (its ETag: a client's If-Match
# from before it must fail).

_TAKE_ONE = (
    update(Product)
    .where(Product.id == bindparam("product_id"))
    .where(Product.stock_count >= bindparam("quantity"))
    .values(stock_count=Product.stock_count - bindparam("quantity"), version=Product.version + 1)
    .returning(Product.id)
)

# On the table, not the ORM class: with a list of parameters SQLAlchemy then runs a plain
# executemany instead of an ORM bulk update by primary key. It cannot overflow while the
# API keeps stock + live reservations within an int4 (app.catalog.service); a stock set
# under the API that would is a data error, dead-lettered at once with its reason.
_GIVE_BACK = (
    update(PRODUCTS)
    .where(PRODUCTS.c.id == bindparam("b_product_id"))
    .values(
        stock_count=PRODUCTS.c.stock_count + bindparam("b_quantity"),
        version=PRODUCTS.c.version + 1,
    )
)


async def take_stock(session: AsyncSession, lines: Sequence[OrderLine]) -> list[bool]:
    """Take each line's quantity, in the given order; False where it did not fit."""
    if not lines:
        return []
    params = [{"quantity": line.quantity, "product_id": line.product_id} for line in lines]
    connection = await session.connection()
    # Each UPDATE keeps its own result, in order; on PostgreSQL all of them go in one
    # round trip (the store's execute_each).
    return await store_for(connection.dialect).execute_each(connection, _TAKE_ONE, params)


async def give_back(session: AsyncSession, lines: Sequence[OrderLine]) -> None:
    """Return each line's quantity to its product, in product order as ``take_stock``'s
    callers lock them (a batch mixing places and cancels can still deadlock with another
    consumer's; the consumer retries that)."""
    if lines:
        ordered = sorted(lines, key=lambda line: str(line.product_id))
        await session.execute(
            _GIVE_BACK,
            [{"b_product_id": line.product_id, "b_quantity": line.quantity} for line in ordered],
        )


async def existing_products(session: AsyncSession, product_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    if not product_ids:
        return set()
    rows = await session.scalars(select(Product.id).where(Product.id.in_(product_ids)))
    return set(rows)
