"""Ordering's use cases. They never commit: the caller's boundary does (the request's
transaction in ``app.http.service_app``, or the consumer's batch), so one transaction
holds a use case and its outbox rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, Uuid, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.ordering.contracts import OrderCancelled, OrderPlaced, order_key
from app.ordering.models import CANCELLABLE, Order, OrderState
from cloudcrm_outbox import add_event


async def place_order(
    session: AsyncSession,
    *,
    customer_name: str,
    product_id: uuid.UUID,
    quantity: int,
    correlation_id: str | None = None,
) -> Order:
    """Record an order and its OrderPlaced event in the caller's transaction (the order
    keeps the event's id: the reply-timeout sweep republishes it under that id)."""
    order_id = uuid.uuid4()
    placed = OrderPlaced(
        order_id=order_id, product_id=product_id, customer_name=customer_name, quantity=quantity
    )
    order = Order(
        id=order_id,
        customer_name=customer_name,
        product_id=product_id,
        quantity=quantity,
        state=OrderState.PLACED,
        placed_message_id=placed.event_id,
    )
    session.add(order)
    # Keyed by the order: catalog applies an order's events in the order they committed
    # (its cancel never before its placement), whatever the relays and consumers do.
    add_event(session, placed, key=order_key(order_id), correlation_id=correlation_id)
    # Flush inside the transaction so that database defaults (created_at) are loaded
    # for the response; the commit stays with the boundary.
    await session.flush()
    await session.refresh(order, ["created_at"])
    return order


def orders_page(
    *,
    skip: int = 0,
    limit: int,
    after: uuid.UUID | None = None,
    before: uuid.UUID | None = None,
) -> Select[Any]:
    """The query of one page of ``list_orders`` (``before``: in ascending order, which
    the caller reverses)."""
    key = tuple_(Order.created_at, Order.id)
    query = select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    cursor = after if after is not None else before
    if cursor is not None:
        # The database compares its own stored values (no timestamp ever round-trips
        # through Python, whose precision SQLite's text timestamps do not share).
        placed = select(Order.created_at).where(Order.id == cursor).scalar_subquery()
        at = tuple_(placed, literal(cursor, Uuid))
        query = query.where(key < at)
        if before is not None:  # the newer ones, nearest first: the same index, forwards
            query = select(Order).where(key > at).order_by(Order.created_at, Order.id)
    return query.offset(skip).limit(limit)


class UnknownCursorError(Exception):
    """``after`` names no order (deleted, or never one of ours)."""


async def list_orders(
    session: AsyncSession,
    *,
    skip: int = 0,
    limit: int,
    after: uuid.UUID | None = None,
    before: uuid.UUID | None = None,
) -> Sequence[Order]:
    """Orders, newest first (ties by id, descending): ``limit`` of them, after skipping
    ``skip`` (costs what it skips), from the start, from the order ``after`` (a keyset
    page: costs ``limit`` rows however deep), or the ``limit`` orders just newer than the
    order ``before`` (still newest first). All read ``ix_orders_created_at_id`` in order;
    never a sort of the table. Raises UnknownCursorError when ``after`` or ``before``
    names no order."""
    query = orders_page(skip=skip, limit=limit, after=after, before=before)
    orders = (await session.scalars(query)).all()
    if before is not None:
        orders = orders[::-1]
    cursor = after if after is not None else before
    if cursor is not None and not orders and await session.get(Order, cursor) is None:
        raise UnknownCursorError(
            f"no order {cursor}: '{'after' if after is not None else 'before'}' takes the id "
            "of a listed order"
        )
    return orders


async def get_order(session: AsyncSession, *, order_id: uuid.UUID) -> Order | None:
    """One order, or None."""
    return await session.get(Order, order_id)


class CannotCancelError(Exception):
    """The order is past the point where cancelling means anything (it was rejected)."""


async def cancel_order(
    session: AsyncSession, *, order_id: uuid.UUID, correlation_id: str | None = None
) -> Order | None:
    """Cancel an order and stage OrderCancelled in the caller's transaction; None when
    there is no such order. Cancelling a cancelled order changes nothing (no new event);
    a rejected one raises CannotCancelError."""
    # One conditional UPDATE, not read-then-write: if catalog's reply commits meanwhile
    # (Placed -> Confirmed), PostgreSQL re-checks the condition against the new row, so a
    # cancel never overwrites a Rejected order and never emits a second OrderCancelled.
    cancelled = (
        update(Order)
        .where(Order.id == order_id, Order.state.in_(CANCELLABLE))
        .values(state=OrderState.CANCELLED)
        .returning(Order)
        .execution_options(synchronize_session=False)
    )
    order = (await session.scalars(cancelled)).one_or_none()
    if order is None:
        existing = await session.get(Order, order_id)
        if existing is not None and existing.state == OrderState.REJECTED:
            raise CannotCancelError(f"order {order_id} was rejected: there is nothing to cancel")
        return existing  # None, or already Cancelled: cancelling twice is a no-op
    add_event(
        session,
        OrderCancelled(order_id=order.id, product_id=order.product_id, quantity=order.quantity),
        key=order_key(order.id),
        correlation_id=correlation_id,
    )
    return order
