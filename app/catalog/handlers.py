"""Catalog's event handlers: an order takes its stock once, a cancel gives it back once.

They run inside the consumer's transaction, after the inbox decided which events are new,
and reply through catalog's own outbox in that same transaction: the stock change, the
inbox row and the reply commit together or not at all.

Relays publish in parallel, so an order's OrderCancelled may arrive before its
OrderPlaced. The reservation row settles it whichever comes first: a cancel that finds no
row leaves a tombstone, and the late OrderPlaced then takes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.contracts import RejectionReason, StockReservationRejected, StockReserved
from app.catalog.models import ReservationState
from app.catalog.stock import (
    OrderLine,
    claim_reservations,
    existing_products,
    give_back,
    mark_rejected,
    release_reserved,
    reservation_states,
    take_stock,
)
from app.ordering.contracts import OrderCancelled, OrderPlaced, order_key
from cloudcrm_outbox import IntegrationEvent, write_events
from cloudcrm_outbox.subscriptions import APPLIED, Subscription

UNKNOWN_PRODUCT: RejectionReason = "unknown_product"
INSUFFICIENT_STOCK: RejectionReason = "insufficient_stock"
# Outcomes recorded in the inbox for events that change nothing.
CANCELLED_BEFORE_PLACED = "cancelled_before_placed"
ALREADY_HANDLED = "order_already_handled"  # a second event for an order (another id)
NOTHING_RESERVED = "nothing_reserved"


def _line(event: OrderPlaced | OrderCancelled) -> OrderLine:
    return OrderLine(event.order_id, event.product_id, event.quantity)


async def reserve_stock(session: AsyncSession, events: Sequence[OrderPlaced]) -> list[str]:
    """Take each order's quantity, in delivery order, and reply StockReserved or
    StockReservationRejected; an order cancelled before it arrived takes nothing."""
    lines = [_line(event) for event in events]
    claimed = await claim_reservations(session, lines, ReservationState.RESERVED)
    fresh: list[int] = []  # the first event of each order whose row this batch inserted
    for index, line in enumerate(lines):
        if line.order_id in claimed:
            claimed.discard(line.order_id)
            fresh.append(index)
    outcomes: list[str] = [""] * len(events)
    await _explain_skipped(session, lines, outcomes, skip=set(fresh))
    # Sorted by product (stable, so one product's orders keep their order): concurrent
    # consumers then lock product rows in the same order and queue instead of deadlocking.
    order = sorted(fresh, key=lambda index: str(lines[index].product_id))
    taken = await take_stock(session, [lines[index] for index in order])
    missed = [lines[index] for index, ok in zip(order, taken, strict=True) if not ok]
    existing = await existing_products(session, {line.product_id for line in missed})
    await mark_rejected(session, [line.order_id for line in missed])
    replies: list[IntegrationEvent] = []
    for index, ok in zip(order, taken, strict=True):
        line = lines[index]
        fields = {
            "order_id": line.order_id,
            "product_id": line.product_id,
            "quantity": line.quantity,
        }
        if ok:
            outcomes[index] = APPLIED
            replies.append(StockReserved(**fields))
        else:
            reason = INSUFFICIENT_STOCK if line.product_id in existing else UNKNOWN_PRODUCT
            outcomes[index] = reason
            replies.append(StockReservationRejected(**fields, reason=reason))
    # Keyed by the order, as ordering keys its own events about it.
    await write_events(
        session,
        replies,
        caused_by=[events[index] for index in order],
        keys=[order_key(lines[index].order_id) for index in order],
    )
    return outcomes


async def _explain_skipped(
    session: AsyncSession, lines: Sequence[OrderLine], outcomes: list[str], *, skip: set[int]
) -> None:
    """The outcome of each OrderPlaced whose order already had a reservation row."""
    others = [index for index in range(len(lines)) if index not in skip]
    states = await reservation_states(session, {lines[index].order_id for index in others})
    for index in others:
        first = states.get(lines[index].order_id) == ReservationState.CANCELLED_FIRST
        outcomes[index] = CANCELLED_BEFORE_PLACED if first else ALREADY_HANDLED


async def release_stock(session: AsyncSession, events: Sequence[OrderCancelled]) -> list[str]:
    """Give back what each cancelled order had taken, once; nothing for an order that
    was rejected, and a tombstone for one whose OrderPlaced has not arrived yet."""
    tombstones = await claim_reservations(
        session, [_line(e) for e in events], ReservationState.CANCELLED_FIRST
    )
    released = await release_reserved(
        session, sorted({e.order_id for e in events} - tombstones, key=str)
    )
    await give_back(session, released)
    given_back = {line.order_id for line in released}
    outcomes: list[str] = []
    for event in events:
        if event.order_id in tombstones:
            outcomes.append(CANCELLED_BEFORE_PLACED)
            tombstones.discard(event.order_id)
        elif event.order_id in given_back:
            outcomes.append(APPLIED)
            given_back.discard(event.order_id)
        else:
            outcomes.append(NOTHING_RESERVED)
    return outcomes


SUBSCRIPTIONS = (
    Subscription(event=OrderPlaced, handle=reserve_stock),
    Subscription(event=OrderCancelled, handle=release_stock),
)
