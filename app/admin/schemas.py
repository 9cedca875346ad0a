"""The admin API's bodies (camelCase JSON, like every other API here)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from app.admin.operations import MAX_LIMIT
from app.schemas import CamelModel, CamelRequest, UtcDateTime

Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class _Which(CamelRequest):
    """Exactly one of ``ids`` (at most 1,000) or ``all: true``."""

    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> _Which:
        ids = getattr(self, "ids", None)
        if self.all == (ids is not None):
            raise ValueError("give either ids or all: true, not both or neither")
        return self


class OutboxReplayRequest(_Which):
    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=1_000)] | None = None
    event_type: Text | None = None
    error_contains: Text | None = None
    dry_run: bool = False


class DeadLetterReplayRequest(_Which):
    ids: Annotated[list[MessageId], Field(min_length=1, max_length=1_000)] | None = None
    reason: Text | None = None
    dry_run: bool = False


class DeadLetterPurgeRequest(_Which):
    ids: Annotated[list[MessageId], Field(min_length=1, max_length=1_000)] | None = None
    reason: Text | None = None


class OutboxStatusView(CamelModel):
    pending: int
    failed: int
    oldest_pending_age_seconds: float | None
    published_last_hour: int
    unroutable: int
    dead_letters: int | None = Field(description="null: the broker is not reachable from here")
    oldest_dead_letter_age_seconds: float | None


class FailedRowView(CamelModel):
    id: uuid.UUID
    event_type: str
    attempts: int
    last_error: str | None
    failed_at: UtcDateTime


class FailedRowsView(CamelModel):
    failed: list[FailedRowView]


class ReplayedView(CamelModel):
    replayed: int
    ids: list[str | None]
    dry_run: bool


class LeftView(CamelModel):
    id: str | None
    why: str


class DeadLetterReplayedView(ReplayedView):
    left: list[LeftView]


class DeadLetterView(CamelModel):
    message_id: str | None
    event_type: str | None
    routing_key: str
    reason: str
    deaths: int
    replays: int
    first_death_at: UtcDateTime | None


class DeadLettersView(CamelModel):
    dead_letters: list[DeadLetterView]
    summary: dict[str, int] = Field(description="how many dead letters per reason")


class PurgedView(CamelModel):
    purged: int
    ids: list[str | None]


class InboxEntryView(CamelModel):
    consumer: str
    message_id: uuid.UUID
    processed_at: UtcDateTime
    outcome: str


FailedLimit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
