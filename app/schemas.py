"""Shared request/response building blocks: camelCase JSON, bounded text and pagination."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A response model rendered in camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class CamelRequest(BaseModel):
    """A request body: camelCase only, and unknown fields are an error rather than ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid")


def _printable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and control characters in a name are never intended.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


def _assume_utc(value: datetime) -> datetime:
    # SQLite hands back naive timestamps; the database clock is UTC in every deployment.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_assume_utc)]

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
]

# Bounded so that OFFSET and LIMIT never overflow PostgreSQL's bigint or load a whole table.
Skip = Annotated[int, Query(ge=0, le=1_000_000_000, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=500, description="rows to return (at most 500)")]
DEFAULT_LIMIT = 50

StrictQuantity = Annotated[int, Field(strict=True, ge=1, le=10_000)]
