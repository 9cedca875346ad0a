"""Shared request/response building blocks: camelCase JSON, bounded text and pagination."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from app.outbox.clock import as_utc, utc_text


class CamelModel(BaseModel):
    """A response model rendered in camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class CamelRequest(BaseModel):
    """A request body: camelCase only, and unknown fields are an error rather than ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid")


# No control characters (PostgreSQL text cannot hold NUL, and no name means them) and at
# least one visible character. A pattern rather than a validator function, so that the
# OpenAPI schema states exactly what is enforced.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"


def _json_integer(value: object) -> object:
    # JSON Schema's "integer" admits 3.0, so the API does too; a string or a boolean
    # is never a count.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


JsonInteger = BeforeValidator(_json_integer)


# Every time in a body: UTC, to the millisecond, with a Z (app.outbox.clock.utc_text, the
# commands' format too), whatever the database session's time zone (PostgreSQL hands times
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

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN),
    AfterValidator(str.strip),
]

# Bounded so that OFFSET and LIMIT never overflow PostgreSQL's bigint or load a whole table.
Skip = Annotated[int, Query(ge=0, le=1_000_000_000, description="rows to skip")]
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
