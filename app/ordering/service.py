"""Ordering's use cases. They never commit: the caller's boundary does (STYLE rule 2)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ordering.contracts import OrderPlaced
from app.ordering.models import Order, OrderState
from app.outbox import add_event


async def place_order(
    session: AsyncSession,
    *,
    customer_name: str,
    product_id: uuid.UUID,
    quantity: int,
    correlation_id: str | None = None,
) -> Order:
    """Record an order and its OrderPlaced event in the caller's transaction."""
    order = Order(
        id=uuid.uuid4(),
        customer_name=customer_name,
        product_id=product_id,
        quantity=quantity,
        state=OrderState.PLACED,
    )
    session.add(order)
    add_event(
        session,
        OrderPlaced(
            order_id=order.id,
            product_id=product_id,
            customer_name=customer_name,
            quantity=quantity,
        ),
        correlation_id=correlation_id,
    )
    # Flush inside the transaction so that database defaults (created_at) are loaded
    # for the response; the commit stays with the boundary.
    await session.flush()
    await session.refresh(order, ["created_at"])
    return order


async def list_orders(session: AsyncSession, *, skip: int, limit: int) -> Sequence[Order]:
    """Orders, newest first."""
    query = select(Order).order_by(Order.created_at.desc(), Order.id).offset(skip).limit(limit)
    return (await session.scalars(query)).all()


async def get_order(session: AsyncSession, *, order_id: uuid.UUID) -> Order | None:
    """One order, or None."""
    return await session.get(Order, order_id)
