"""The admin API's bodies (camelCase JSON, like every other API here)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StrictBool, StringConstraints

from app.admin.limits import MAX_LIMIT
from app.core.schemas import CamelModel, CamelRequest, UtcDateTime

# No control characters: PostgreSQL text cannot hold NUL, and SQLite's LIKE would treat
# one as the end of the pattern (matching everything).
FILTER_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=FILTER_PATTERN)]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
# A message key as add_event accepts one: 1 to 200 characters, no C0 or C1 control.
MessageKey = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]


def _json_true(value: object) -> object:
    if value is not True:
        raise ValueError("must be JSON true")
    return value


# JSON true, nothing else: not 1, not "true" (a replay of everything is asked for plainly).
All = Annotated[Literal[True], BeforeValidator(_json_true)]
IdList = Annotated[list[uuid.UUID], Field(min_length=1, max_length=1_000)]
MessageIdList = Annotated[list[MessageId], Field(min_length=1, max_length=1_000)]

# Each request names its rows either by ``ids`` or with ``all: true``: two shapes, so that
# the OpenAPI schema says exactly what is accepted (unknown fields are refused).


class _OutboxFilters(CamelRequest):
    event_type: Text | None = None
    error_contains: Text | None = None
    dry_run: StrictBool = False


class OutboxReplayByIds(_OutboxFilters):
    ids: IdList


class OutboxReplayAll(_OutboxFilters):
    all: All


OutboxReplayRequest = OutboxReplayByIds | OutboxReplayAll


class _DeadLetterFilters(CamelRequest):
    reason: Text | None = None


class DeadLetterReplayByIds(_DeadLetterFilters):
    ids: MessageIdList
    dry_run: StrictBool = False


class DeadLetterReplayAll(_DeadLetterFilters):
    all: All
    dry_run: StrictBool = False


class DeadLetterReplayByKey(_DeadLetterFilters):
    key: MessageKey = Field(description="the dead letters of this message key")
    dry_run: StrictBool = False


DeadLetterReplayRequest = DeadLetterReplayByIds | DeadLetterReplayAll | DeadLetterReplayByKey


class DeadLetterPurgeByIds(_DeadLetterFilters):
    ids: MessageIdList


class DeadLetterPurgeAll(_DeadLetterFilters):
    all: All


class DeadLetterPurgeByKey(_DeadLetterFilters):
    key: MessageKey = Field(
        description="the dead letters of this message key; the key's parked messages after "
        "them are then applied, in order"
    )


DeadLetterPurgeRequest = DeadLetterPurgeByIds | DeadLetterPurgeAll | DeadLetterPurgeByKey


def selected_key(body: CamelRequest) -> str | None:
    """The message key a request names, if it names one."""
    key: str | None = getattr(body, "key", None)
    return key


def selected_ids(body: CamelRequest) -> list[Any] | None:
    """The ids a request names, or None for ``all: true``."""
    ids: list[Any] | None = getattr(body, "ids", None)
    return ids


class OutboxStatusView(CamelModel):
    pending: int
    failed: int
    oldest_pending_age_seconds: float | None
    published_last_hour: int
    unroutable: int
    unanswered_orders: int | None = Field(
        default=None,
        description="ordering: Placed orders reported after every reply-timeout retry; "
        "null for other services",
    )
    dead_letters: int | None = Field(description="null: the broker is not reachable from here")
    oldest_dead_letter_age_seconds: float | None
    parked: int = Field(description="keyed messages parked until their key reaches them")
    waiting_keys: int = Field(description="keys with parked messages")
    key_gaps: int = Field(
        description="keys waiting past INBOX_GAP_ALERT_SECONDS for a message not dead-lettered"
    )
    dead_lettered_keys: int = Field(description="keys stopped at a dead letter")


class FailedRowView(CamelModel):
    id: uuid.UUID
    event_type: str
    attempts: int
    last_error: str | None
    failed_at: UtcDateTime


class FailedRowsView(CamelModel):
    failed: list[FailedRowView]


class OutboxEventView(CamelModel):
    id: uuid.UUID
    event_type: str
    created_at: UtcDateTime
    published_at: UtcDateTime | None
    failed_at: UtcDateTime | None
    attempts: int
    last_error: str | None


class OutboxEventsView(CamelModel):
    events: list[OutboxEventView]


class ReplayedView(CamelModel):
    replayed: int
    ids: list[str | None]
    dry_run: bool


class LeftView(CamelModel):
    id: str | None
    why: str


class DeadLetterReplayedView(ReplayedView):
    left: list[LeftView]
    not_found: list[str] = Field(default=[], description="ids asked for and not found")
    remaining: int | None = Field(
        default=None, description="dead letters still queued afterwards (null: unknown)"
    )


class DeadLetterView(CamelModel):
    message_id: str | None
    event_type: str | None
    routing_key: str
    reason: str
    deaths: int
    replays: int
    first_death_at: UtcDateTime | None
    message_key: str | None = None
    key_sequence: int | None = None


class DeadLettersView(CamelModel):
    dead_letters: list[DeadLetterView]
    summary: dict[str, int] = Field(description="how many dead letters per reason")


class PurgedView(CamelModel):
    purged: int
    ids: list[str | None]
    released_places: int = Field(
        default=0, description="places of the key given up (a purge by key)"
    )
    not_found: list[str] = Field(default=[], description="ids asked for and not found")
    remaining: int | None = Field(
        default=None, description="dead letters still queued afterwards (null: unknown)"
    )


class WaitingKeyView(CamelModel):
    consumer: str
    key: str
    applied_sequence: int = Field(description="the last sequence of the key applied")
    next_sequence: int = Field(description="the sequence the key waits for")
    parked: int
    waiting_seconds: float
    dead_letter_id: str | None = Field(description="the dead letter it stops at; null: a gap")
    dead_lettered_at: UtcDateTime | None


class WaitingKeysView(CamelModel):
    keys: list[WaitingKeyView]


class InboxEntryView(CamelModel):
    consumer: str
    message_id: uuid.UUID
    processed_at: UtcDateTime
    outcome: str


class InboxEntriesView(CamelModel):
    entries: list[InboxEntryView]


FailedLimit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
