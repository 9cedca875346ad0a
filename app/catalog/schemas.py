"""Catalog's HTTP bodies."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from app.catalog.models import PRICE_SCALE
from app.schemas import CamelModel, CamelRequest, JsonInteger, Name

MAX_STOCK = 2_147_483_647  # PostgreSQL integer
MAX_IDS_PER_LOOKUP = 1_000

MAX_PRICE = Decimal("999999999999.99")  # what NUMERIC(14, 2) holds


def _to_cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-PRICE_SCALE), rounding=ROUND_HALF_UP)


def _json_number(value: object) -> object:
    # A price is a JSON number: not a string, not a boolean.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    return value


Price = Annotated[
    Decimal,
    Field(ge=0, le=MAX_PRICE, allow_inf_nan=False, description="finite, >= 0; kept in cents"),
    BeforeValidator(_json_number),
    AfterValidator(_to_cents),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": float(MAX_PRICE)}),
]
# Prices are JSON numbers on the way out too (pydantic would render a Decimal as a string).
PriceOut = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
StockCount = Annotated[int, Field(ge=0, le=MAX_STOCK), JsonInteger]


class ProductWrite(CamelRequest):
    """The body of POST and PUT: a whole product."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Product D", "price": 12.5, "stockCount": 20}]}
    )

    name: Name
    price: Price
    stock_count: StockCount


class ProductRead(CamelModel):
    id: uuid.UUID
    name: str
    price: PriceOut
    stock_count: int


ProductIds = Annotated[list[uuid.UUID], Field(max_length=MAX_IDS_PER_LOOKUP)]
