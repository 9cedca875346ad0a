"""Ordering's event handlers: catalog's reply confirms or rejects a placed order.

They run inside the consumer's transaction, after the inbox decided which events are new.
A reply that no longer applies (the order was cancelled meanwhile, or was already
confirmed or rejected) is recorded in the inbox with the state it found, and changes
nothing: never an error, so never a redelivery loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.contracts import StockReservationRejected, StockReserved
from app.ordering.models import Order, OrderState
from cloudcrm_outbox.subscriptions import APPLIED, Subscription

UNKNOWN_ORDER = "unknown_order"


async def _transition(
    session: AsyncSession,
    order_ids: Sequence[uuid.UUID],
    to: OrderState,
    reason: str | None = None,
) -> set[uuid.UUID]:
    """Placed -> ``to`` for each order still Placed; returns the orders it moved.

    Conditional on the state in the UPDATE itself: a cancel committing at the same moment
    makes PostgreSQL re-check the row, so a reply never overwrites a Cancelled order."""
    if not order_ids:
        return set()
    statement = (
        update(Order)
        .where(Order.id.in_(sorted(set(order_ids), key=str)), Order.state == OrderState.PLACED)
        .values(state=to, rejection_reason=reason)
        .returning(Order.id)
        .execution_options(synchronize_session=False)
    )
    return set((await session.scalars(statement)).all())


async def _outcomes(
    session: AsyncSession, order_ids: Sequence[uuid.UUID], moved: set[uuid.UUID], to: OrderState
) -> list[str]:
    """APPLIED for the first reply that moved its order; for the others, the state they
    found (the same whether a second reply came in the same batch or a later one)."""
    others = {order_id for order_id in order_ids if order_id not in moved}
    found: dict[uuid.UUID, str] = {}
    if others:
        rows = await session.execute(select(Order.id, Order.state).where(Order.id.in_(others)))
        found = {order_id: _ignored(state) for order_id, state in rows.all()}
    outcomes: list[str] = []
    for order_id in order_ids:
        if order_id in moved:
            outcomes.append(APPLIED)
            moved.discard(order_id)
            found[order_id] = _ignored(to)  # what a second reply in this batch finds
        else:
            outcomes.append(found.get(order_id, UNKNOWN_ORDER))
    return outcomes


def _ignored(state: OrderState) -> str:
    return f"ignored_{state.value.lower()}"


async def confirm_orders(session: AsyncSession, events: Sequence[StockReserved]) -> list[str]:
    """StockReserved: Placed -> Confirmed."""
    order_ids = [event.order_id for event in events]
    moved = await _transition(session, order_ids, OrderState.CONFIRMED)
    return await _outcomes(session, order_ids, moved, OrderState.CONFIRMED)


async def reject_orders(
    session: AsyncSession, events: Sequence[StockReservationRejected]
) -> list[str]:
    """StockReservationRejected: Placed -> Rejected, with catalog's reason."""
    moved: set[uuid.UUID] = set()
    for reason in sorted({event.reason for event in events}):
        same = [event.order_id for event in events if event.reason == reason]
        moved |= await _transition(session, same, OrderState.REJECTED, reason)
    order_ids = [event.order_id for event in events]
    return await _outcomes(session, order_ids, moved, OrderState.REJECTED)


SUBSCRIPTIONS = (
    Subscription(event=StockReserved, handle=confirm_orders),
    Subscription(event=StockReservationRejected, handle=reject_orders),
)
