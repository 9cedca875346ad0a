"""Events the catalog service publishes. Other services may import this module only."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from cloudcrm_outbox.events import IntegrationEvent

# Why a reservation was refused; ordering shows it on the rejected order.
RejectionReason = Literal["unknown_product", "insufficient_stock"]


class StockReserved(IntegrationEvent):
    """Catalog took an order's quantity from its product's stock."""

    event_name: ClassVar[str] = "StockReserved"
    event_version: ClassVar[int] = 1

    order_id: uuid.UUID
    product_id: uuid.UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000)]


class StockReservationRejected(IntegrationEvent):
    """Catalog could not reserve an order's stock; nothing was taken."""

    event_name: ClassVar[str] = "StockReservationRejected"
    event_version: ClassVar[int] = 1

    order_id: uuid.UUID
    product_id: uuid.UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000)]
    reason: RejectionReason


# Every event catalog publishes: its relay declares the queues bound to these.
PUBLISHED: tuple[type[IntegrationEvent], ...] = (StockReserved, StockReservationRejected)
