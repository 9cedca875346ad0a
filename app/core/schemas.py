"""Shared request/response building blocks: camelCase JSON, bounded text and pagination."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from app.core.names import Name as Name  # the request models' names, with the other blocks
from cloudcrm_outbox.times import as_utc, utc_text


class CamelModel(BaseModel):
    """A response model rendered in camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class CamelRequest(BaseModel):
    """A request body: camelCase only, and unknown fields are an error rather than ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid")


# Beyond any count a body may hold (PostgreSQL's bigint), short of a number int() of
# which would take long to build.
_FAR_OUT_OF_RANGE = 10**20


def _json_integer(value: object) -> object:
    # JSON Schema's "integer" admits 3.0, so the API does too; a string or a boolean
    # is never a count. A Decimal is a JSON number read exactly (app.decimal_json).
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON integer")
    if isinstance(value, float) and math.isinf(value):  # 1e400: JSON, past any float
        raise ValueError(f"must be less than {_FAR_OUT_OF_RANGE:.0e} in magnitude")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise ValueError("must be a whole number")
        if value.copy_abs() >= _FAR_OUT_OF_RANGE:  # int(Decimal("1e999999999")) never ends
            raise ValueError(f"must be less than {_FAR_OUT_OF_RANGE:.0e} in magnitude")
    return int(value)


JsonInteger = BeforeValidator(_json_integer)


# Every time in a body: UTC, to the millisecond, with a Z (cloudcrm_outbox.times.utc_text,
# the commands' format too), whatever the database session's time zone (PostgreSQL hands times
# back in it) and whichever database (SQLite hands them back naive, and UTC).
UtcDateTime = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(utc_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "examples": ["2026-11-30T05:00:00.123Z"],
            "description": "UTC, to the millisecond, ending in Z",
        }
    ),
]


# Bounded so that LIMIT never loads a whole table (skip: app.http.paging.Skip).
Limit = Annotated[int, Query(ge=1, le=500, description="rows to return (at most 500)")]
DEFAULT_LIMIT = 50


class ErrorBody(BaseModel):
    detail: str | list[dict[str, object]]


# Answers every endpoint may give besides its own: documented so that clients (and
# schemathesis) know them.
COMMON_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "the body could not be read"},
    413: {"model": ErrorBody, "description": "request body over 64 KiB"},
    503: {"model": ErrorBody, "description": "the database is unavailable; retry"},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "no such id"}
}

StrictQuantity = Annotated[int, Field(ge=1, le=10_000), JsonInteger]
