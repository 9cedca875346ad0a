"""What the consumer reports of each batch: its metrics and its log line."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.observability.batch_logs import ids_fields, trace_id
from cloudcrm_outbox.observability.metrics import (
    INBOX_BATCH_DURATION,
    INBOX_DUPLICATES,
    INBOX_LAG,
    INBOX_PROCESSED,
)

consumer_logger = library_logger("cloudcrm_outbox.inbox")


# The consumer's reasons, by their first words (decoding.py, consumer.py, data_errors.py).
_REASON_KINDS = (
    ("delivery limit", "delivery_limit"),
    ("unsupported version", "unsupported_version"),
    ("unknown event type", "unknown_event_type"),
    ("no type", "unknown_event_type"),
    ("invalid", "invalid"),
    ("body of", "too_large"),
    ("missing message_id", "no_message_id"),
    ("message_id", "bad_message_id"),
    ("content type", "bad_content_type"),
    ("data error", "data_error"),  # data_errors.py
)


def reason_kind(reason: str) -> str:
    """A dead-letter reason's kind, for a label: ``invalid``, ``delivery_limit``, …"""
    for prefix, kind in _REASON_KINDS:
        if reason.startswith(prefix):
            return kind
    return re.sub(r"[^a-z]+", "_", reason.lower().split(":")[0])[:40].strip("_") or "other"


def observe_lag(consumer: str, timestamps: Iterable[datetime | None]) -> None:
    """Record outbox-commit-to-inbox-commit lags, now, for messages stamped at
    ``timestamps`` (AMQP timestamps have a one-second resolution; None is skipped)."""
    now = datetime.now(UTC)
    histogram = INBOX_LAG.labels(consumer)
    for stamp in timestamps:
        if stamp is not None:
            stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            histogram.observe(max((now - stamp).total_seconds(), 0.0))


def count_applied(
    consumer: str,
    applied: Sequence[tuple[Delivery, Decoded]],
    outcomes: dict[uuid.UUID, str],
    seconds: float,
) -> None:
    """Count what a batch did: outcomes, duplicates (applied, no outcome), the lag of
    each message applied now, the batch's duration."""
    for outcome in outcomes.values():
        INBOX_PROCESSED.labels(consumer, outcome).inc()
    # Those of the batch without an outcome (outcomes may also name parked messages of
    # earlier batches, applied with it).
    duplicates = _duplicates(applied, outcomes)
    if duplicates:
        INBOX_DUPLICATES.labels(consumer).inc(duplicates)
    observe_lag(consumer, (m.timestamp for m, d in applied if d.message_id in outcomes))
    INBOX_BATCH_DURATION.labels(consumer).observe(seconds)


def log_consumer_batch(
    applied: Sequence[tuple[Delivery, Decoded]], outcomes: dict[uuid.UUID, str], seconds: float
) -> None:
    """One line per batch: outcomes counted, duplicates, the first message ids."""
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    consumer_logger.info(
        "consumed batch",
        extra={
            "messages": len(applied),
            "duplicates": _duplicates(applied, outcomes),
            "outcomes": counts,
            "duration_ms": round(seconds * 1000, 1),
            **ids_fields({d.message_id: _headers(m, d) for m, d in applied}),
        },
    )
    if consumer_logger.isEnabledFor(logging.DEBUG):
        for message, decoded in applied:
            consumer_logger.debug(
                "consumed",
                extra={
                    "message_id": str(decoded.message_id),
                    "event_type": decoded.event.event_name,
                    "outcome": outcomes.get(decoded.message_id, "duplicate"),
                    "correlation_id": message.correlation_id,
                    "trace_id": trace_id(decoded.traceparent),
                },
            )


def _duplicates(applied: Sequence[tuple[Delivery, Decoded]], outcomes: dict[uuid.UUID, str]) -> int:
    return sum(1 for _, decoded in applied if decoded.message_id not in outcomes)


def _headers(message: Delivery, decoded: Decoded) -> dict[str, Any]:
    return {"correlation_id": message.correlation_id, "traceparent": decoded.traceparent}
