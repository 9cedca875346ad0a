"""Turning a delivery into an event, or into the reason it is poison.

A consumer validates with the same event model (same limits) the publisher used. Every
rejection names its reason; the consumer dead-letters the message with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from app.outbox.events import IntegrationEvent
from app.outbox.subscriptions import Subscription

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Decoded:
    message_id: uuid.UUID
    event: IntegrationEvent


@dataclass(frozen=True)
class Poison:
    reason: str


def decode(
    *,
    message_id: str | None,
    event_type: str | None,
    content_type: str | None,
    body: bytes,
    subscriptions: Mapping[str, Subscription],
) -> Decoded | Poison:
    """Validate one delivery's properties and body against its event contract."""
    if len(body) > MAX_BODY_BYTES:
        return Poison(f"body of {len(body)} bytes is over the {MAX_BODY_BYTES}-byte limit")
    if not message_id:
        return Poison("missing message_id (the inbox key)")
    try:
        parsed_id = uuid.UUID(message_id)
    except ValueError:
        return Poison(f"message_id {message_id[:100]!r} is not a UUID")
    if content_type != "application/json":
        return Poison(f"content type {str(content_type)[:100]!r} is not application/json")
    subscription = subscriptions.get(event_type or "")
    if subscription is None:
        return Poison(f"unknown event type {str(event_type)[:100]!r}")
    try:
        event = subscription.event.model_validate_json(body)
    except ValidationError as exc:
        return Poison(f"invalid {subscription.name}: {_summary(exc)}")
    return Decoded(parsed_id, event.model_copy(update={"event_id": parsed_id}))


def _summary(error: ValidationError) -> str:
    # Location and reason only: the offending input may be huge or binary.
    parts = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors()[:5]
    ]
    return "; ".join(parts)[:500]
