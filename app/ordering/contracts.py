"""Events the ordering service publishes. Other services may import this module only."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from cloudcrm_outbox.events import IntegrationEvent


class OrderPlaced(IntegrationEvent):
    """An order was accepted; catalog reserves its stock."""

    event_name: ClassVar[str] = "OrderPlaced"
    event_version: ClassVar[int] = 1

    order_id: uuid.UUID
    product_id: uuid.UUID
    customer_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    # Strict: a consumer must not accept "3" or 3.0 for a quantity.
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000)]


class OrderCancelled(IntegrationEvent):
    """A placed order was cancelled; catalog gives back the stock it had reserved for it."""

    event_name: ClassVar[str] = "OrderCancelled"
    event_version: ClassVar[int] = 1

    order_id: uuid.UUID
    product_id: uuid.UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000)]


# Every event ordering publishes: its relay declares the queues bound to these.
PUBLISHED: tuple[type[IntegrationEvent], ...] = (OrderPlaced, OrderCancelled)


def order_key(order_id: uuid.UUID) -> str:
    """The message key of every event about order ``order_id`` (ordering's, and catalog's
    replies): its id as text. Events of one key are applied in the order they committed."""
    return str(order_id)
