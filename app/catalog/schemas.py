"""Catalog's HTTP bodies."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.catalog.models import MAX_STOCK_COUNT, PRICE_SCALE
from app.core.schemas import CamelModel, CamelRequest, JsonInteger, Name

MAX_STOCK = MAX_STOCK_COUNT
MAX_IDS_PER_LOOKUP = 1_000

MAX_PRICE = Decimal("999999999999.99")  # what NUMERIC(14, 2) holds


CENT = Decimal(1).scaleb(-PRICE_SCALE)


def _in_cents(value: Decimal) -> Decimal:
    # Judged on the value as written (the routes read JSON numbers exactly, see
    # app.http.exact_json): 1.005 is refused, never rounded to 1.01; 1.50 and 1.500 are 1.5.
    cents = value.quantize(CENT)  # exact: Field(le=MAX_PRICE) ran first
    if cents != value:
        raise PydanticCustomError(
            "price_cents",
            "must have at most two decimals (a price is kept in cents, never rounded): got {value}",
            {"value": str(value)},
        )
    # -0 is a price of 0: NUMERIC keeps no sign on zero, and neither does the answer.
    return cents.copy_abs() if cents.is_zero() else cents


def _json_number(value: object) -> object:
    # A price is a JSON number: not a string, not a boolean.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    return value


PRICE_RULES = (
    "a JSON number from 0 to 999999999999.99 with at most two decimals as written: 1.005 "
    "is refused (never rounded), 1.5, 1.50 and 1.500 are the same price; -0 is stored as 0"
)
Price = Annotated[
    Decimal,
    Field(ge=0, le=MAX_PRICE, allow_inf_nan=False, description=PRICE_RULES),
    BeforeValidator(_json_number),
    AfterValidator(_in_cents),
    # multipleOf 0.01: JSON Schema's "two decimals", judged (as here) on the number written.
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": float(MAX_PRICE),
            "multipleOf": 0.01,
            "description": PRICE_RULES,
        }
    ),
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


def _kept(value: object) -> object:
    if value is None:
        raise PydanticCustomError(
            "field_required",
            "cannot be removed (null removes a field in a merge patch): a product always has "
            "a name, a price and a stock; leave the field out to keep it as it is",
        )
    return value


def _without_null(schema: dict[str, Any]) -> None:
    # The fields are optional (left out = kept) but never null: say so in the schema.
    for field in schema["properties"].values():
        options = field.pop("anyOf", [])
        field.update(next((o for o in options if o.get("type") != "null"), {}))
        field.pop("default", None)


class ProductPatch(CamelRequest):
    """The body of PATCH: a JSON merge patch of a product (RFC 7396). Only the fields it
    holds change; ``null`` (which would remove a field) and unknown fields are refused."""

    model_config = ConfigDict(json_schema_extra=_without_null)

    name: Name | None = None
    price: Price | None = None
    stock_count: StockCount | None = None

    _present = field_validator("name", "price", "stock_count", mode="before")(_kept)

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: object) -> object:
        # RFC 7396 §2: a patch that is not an object replaces the whole target with itself,
        # and a product is always an object: refused in words, not as a parser's message.
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "merge_patch_object",
                "a merge patch of a product must be a JSON object of the fields to change, "
                'such as {"price": 12.5}: RFC 7396 reads any other JSON value ({kind} here) '
                "as the whole new product, and a product is an object",
                {"kind": _json_kind(value)},
            )
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the patch holds, by attribute name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"


class ProductRead(CamelModel):
    id: uuid.UUID
    name: str
    price: PriceOut
    stock_count: int
    # Bumped by every change, stock taken or given back by orders included; the ETag
    # header is this number in double quotes.
    version: int


ProductIds = Annotated[list[uuid.UUID], Field(max_length=MAX_IDS_PER_LOOKUP)]
