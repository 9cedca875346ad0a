"""Ordering's HTTP bodies."""

from __future__ import annotations

import uuid

from pydantic import ConfigDict

from app.core.schemas import CamelModel, CamelRequest, Name, StrictQuantity, UtcDateTime
from app.ordering.models import OrderState


class OrderCreate(CamelRequest):
    # An example that works as it stands in `dev`: the seeded Product A's fixed id.
    # (pydantic merges this with CamelRequest's configuration)
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customerName": "Ann",
                    "productId": "b553dd0f-8b88-52ca-89ed-19c320c3af08",
                    "quantity": 1,
                }
            ]
        }
    )

    customer_name: Name
    product_id: uuid.UUID
    quantity: StrictQuantity = 1


class OrderRead(CamelModel):
    id: uuid.UUID
    customer_name: str
    product_id: uuid.UUID
    quantity: int
    state: OrderState
    # Why catalog rejected the order (unknown_product, insufficient_stock); else null.
    rejection_reason: str | None = None
    created_at: UtcDateTime


class OrderView(OrderRead):
    """An order as listed: with its product's name."""

    # Filled from catalog's integration API; null when catalog did not answer in time.
    product_name: str | None = None
