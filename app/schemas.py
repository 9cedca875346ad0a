"""Shared request/response building blocks: camelCase JSON, bounded text and pagination."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


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
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise ValueError("must be a whole number")
        if value.copy_abs() >= _FAR_OUT_OF_RANGE:  # int(Decimal("1e999999999")) never ends
            raise ValueError(f"must be less than {_FAR_OUT_OF_RANGE:.0e} in magnitude")
    return int(value)


JsonInteger = BeforeValidator(_json_integer)


def _assume_utc(value: datetime) -> datetime:
    # SQLite hands back naive timestamps; the database clock is UTC in every deployment.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_assume_utc)]

# Characters that show nothing by themselves (Unicode general categories: format, space,
# line and paragraph separators, controls): a name of only these is a blank row.
_INVISIBLE = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc"})
# Bidirectional embeddings, overrides and isolates: "\u202eevil" displays as "live".
# (LRM, RLM and ALM stay allowed: right-to-left names need them, and they reorder nothing
# around them.) Unicode Standard Annex #9, "Unicode Bidirectional Algorithm", §2.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
NAME_RULES = (
    "1\u2013200 characters with at least one visible character (spaces, invisible and formatting "
    "characters do not count); no control characters (U+0000\u2013U+001F, U+007F\u2013U+009F) and "
    "no bidirectional control characters (U+202A\u2013U+202E, U+2066\u2013U+2069); leading and "
    "trailing spaces are removed"
)


def _readable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no name means a control character.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise PydanticCustomError(
            "name_control",
            "must not contain control characters (U+0000\u2013U+001F, U+007F\u2013U+009F)",
        )
    if _BIDI_CONTROLS.search(value):
        raise PydanticCustomError(
            "name_bidi",
            "must not contain bidirectional control characters "
            "(U+202A\u2013U+202E, U+2066\u2013U+2069): they reorder how the name is shown",
        )
    if all(unicodedata.category(char) in _INVISIBLE for char in value):
        raise PydanticCustomError(
            "name_invisible",
            "needs at least one visible character (spaces, invisible and formatting "
            "characters do not count)",
        )
    return value.strip()


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_readable),
    Field(description=NAME_RULES),
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
