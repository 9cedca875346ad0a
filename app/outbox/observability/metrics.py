"""The outbox's and inbox's Prometheus metrics (prometheus-client, default registry).

Names follow Prometheus' conventions (https://prometheus.io/docs/practices/naming/):
counters end in ``_total`` (the client adds it), durations are in seconds. Labels stay
few-valued: ``service`` (the outbox's), ``consumer`` (the inbox's), ``event_type``,
``outcome``, and a ``reason`` *kind* — never a message id or free text.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.brokers.publisher import PublishResult
from cloudcrm_outbox.inbox.decoding import Decoded
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames
from cloudcrm_outbox.ops.status import read_status

logger = logging.getLogger(__name__)

# Latency buckets from 1 ms to 5 min: a broker round trip to a long outage.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

OUTBOX_PENDING = Gauge(
    "outbox_pending_messages", "Outbox rows waiting to be published.", ["service"]
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row waiting to be published (0 when none waits).",
    ["service"],
)
OUTBOX_FAILED = Gauge(
    "outbox_failed_messages", "Outbox rows the relay gave up on (kept for replay).", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "outbox_published", "Messages the broker confirmed.", ["service", "event_type"]
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "outbox_publish_errors",
    "Messages not published: rejected (refused, unencodable), nacked (a queue could not "
    "take them now), unroutable, or the broker connection lost.",
    ["service", "reason"],
)
OUTBOX_BATCH_DURATION = Histogram(
    "outbox_batch_duration_seconds",
    "One relay batch: claim, publish, confirms, mark.",
    ["service"],
    buckets=_SECONDS,
)
INBOX_PROCESSED = Counter(
    "inbox_processed", "Messages applied through the inbox, by outcome.", ["consumer", "outcome"]
)
INBOX_DUPLICATES = Counter(
    "inbox_duplicates", "Deliveries skipped: already in the inbox.", ["consumer"]
)
INBOX_DEAD_LETTERED = Counter(
    "inbox_dead_lettered", "Messages the consumer dead-lettered, by reason.", ["consumer", "reason"]
)
INBOX_LAG = Histogram(
    "inbox_lag_seconds",
    "From the outbox row's commit (the message timestamp) to the inbox commit.",
    ["consumer"],
    buckets=_SECONDS,
)
INBOX_BATCH_DURATION = Histogram(
    "inbox_batch_duration_seconds",
    "One consumer batch: the inbox transaction and the acks.",
    ["consumer"],
    buckets=_SECONDS,
)

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


GAUGE_READ_TIMEOUT_SECONDS = 2.0


async def refresh_outbox_gauges(
    engine: AsyncEngine, service: str, names: MessagingNames = DEFAULT_NAMES
) -> None:
    """Read ``service``'s outbox into its gauges (at scrape time, through the partial
    indexes); when it cannot be read within GAUGE_READ_TIMEOUT_SECONDS they are NaN, not
    the last values (a stale backlog of 0 would look healthy)."""
    gauges = (OUTBOX_PENDING, OUTBOX_FAILED, OUTBOX_OLDEST_PENDING_AGE)
    try:
        async with asyncio.timeout(GAUGE_READ_TIMEOUT_SECONDS):
            status = await read_status(engine, names=names)
    except Exception as exc:  # the other figures are still worth reading
        for gauge in gauges:
            gauge.labels(service).set(math.nan)
        logger.warning("metrics: %s's outbox could not be read: %r", service, exc)
        return
    OUTBOX_PENDING.labels(service).set(status.pending)
    OUTBOX_FAILED.labels(service).set(status.failed)
    OUTBOX_OLDEST_PENDING_AGE.labels(service).set(status.oldest_pending_age_seconds or 0)


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


def count_batch(
    service: str, types: Mapping[uuid.UUID, str], result: PublishResult, seconds: float
) -> None:
    """Count a relay batch: ``types`` is each claimed row's event type by id."""
    published: dict[str, int] = {}
    for message_id in result.confirmed:
        published[types[message_id]] = published.get(types[message_id], 0) + 1
    for event_type, count in published.items():
        OUTBOX_PUBLISHED.labels(service, event_type).inc(count)
    errors = OUTBOX_PUBLISH_ERRORS
    for reason, rows in (
        ("rejected", result.rejected),
        ("nacked", result.nacked),
        ("unroutable", result.unroutable),
    ):
        if rows:
            errors.labels(service, reason).inc(len(rows))
    settled = len(result.rejected) + len(result.nacked) + len(result.unroutable)
    unknown = len(types) - len(result.confirmed) - settled
    if result.broken is not None and unknown:
        errors.labels(service, "connection_lost").inc(unknown)
    OUTBOX_BATCH_DURATION.labels(service).observe(seconds)


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
    if len(applied) > len(outcomes):
        INBOX_DUPLICATES.labels(consumer).inc(len(applied) - len(outcomes))
    observe_lag(consumer, (m.timestamp for m, d in applied if d.message_id in outcomes))
    INBOX_BATCH_DURATION.labels(consumer).observe(seconds)
