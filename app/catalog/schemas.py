"""Catalog's HTTP bodies."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

from app.catalog.models import PRICE_PRECISION, PRICE_SCALE
from app.schemas import CamelModel, CamelRequest, Name

MAX_STOCK = 2_147_483_647  # PostgreSQL integer
MAX_IDS_PER_LOOKUP = 1_000

Price = Annotated[
    Decimal,
    Field(
        ge=0,
        max_digits=PRICE_PRECISION,
        decimal_places=PRICE_SCALE,
        allow_inf_nan=False,
        description="finite, >= 0, at most 2 decimal places",
    ),
]
# Prices are JSON numbers on the way out too (pydantic would render a Decimal as a string).
PriceOut = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
StockCount = Annotated[int, Field(strict=True, ge=0, le=MAX_STOCK)]


class ProductWrite(CamelRequest):
    """The body of POST and PUT: a whole product."""

    name: Name
    price: Price
    stock_count: StockCount


class ProductRead(CamelModel):
    id: uuid.UUID
    name: str
    price: PriceOut
    stock_count: int


ProductIds = Annotated[list[uuid.UUID], Field(max_length=MAX_IDS_PER_LOOKUP)]
