"""The outbox library's own test contracts, shaped like the services' (an order placed
and cancelled, consumed by "catalog" and "ordering" queues), so that the library's tests
import no service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, ClassVar

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from pydantic import Field, StringConstraints
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from cloudcrm_outbox import APPLIED, IntegrationEvent, QueueBindings, Subscription, add_event
from cloudcrm_outbox.storage.schema import create_latest


class OrderPlaced(IntegrationEvent):
    event_name: ClassVar[str] = "OrderPlaced"
    order_id: uuid.UUID
    product_id: uuid.UUID
    customer_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000)]


class OrderCancelled(IntegrationEvent):
    event_name: ClassVar[str] = "OrderCancelled"
    order_id: uuid.UUID


class OrderConfirmed(IntegrationEvent):
    event_name: ClassVar[str] = "OrderConfirmed"
    order_id: uuid.UUID


async def record(session: AsyncSession, events: Sequence[IntegrationEvent]) -> list[str]:
    """A handler that does nothing but accept (the inbox row is the effect)."""
    return [APPLIED] * len(events)


SUBSCRIPTIONS = (
    Subscription(event=OrderPlaced, handle=record),
    Subscription(event=OrderCancelled, handle=record),
)
CATALOG = QueueBindings.of("catalog", ["OrderPlaced", "OrderCancelled"])
ORDERING = QueueBindings.of("ordering", ["OrderConfirmed"])


def all_bindings() -> list[QueueBindings]:
    """Both test services' queues."""
    return [CATALOG, ORDERING]


async def place_order(
    session: AsyncSession,
    *,
    customer_name: str,
    product_id: uuid.UUID,
    quantity: int,
    correlation_id: str | None = None,
) -> OrderPlaced:
    """Stage an OrderPlaced in ``session`` (as a service's command would); returns it,
    ``.id`` being the order's id."""
    event = OrderPlaced(
        order_id=uuid.uuid4(), product_id=product_id, customer_name=customer_name,
        quantity=quantity,
    )  # fmt: skip
    add_event(session, event, correlation_id=correlation_id)
    return event


def create_outbox_schema(connection: Connection) -> None:
    """The outbox and inbox tables (every schema step), on a synchronous connection."""
    with Operations.context(MigrationContext.configure(connection)):
        create_latest()
