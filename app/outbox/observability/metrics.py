"""The outbox's and inbox's Prometheus metrics (prometheus-client, default registry): the
instruments alone; the relay, the consumer and ``ops.status`` record into them.

Names follow Prometheus' conventions (https://prometheus.io/docs/practices/naming/):
counters end in ``_total`` (the client adds it), durations are in seconds. Labels stay
few-valued: ``service`` (the outbox's), ``consumer`` (the inbox's), ``event_type``,
``outcome``, and a ``reason`` *kind* — never a message id or free text.
"""

from __future__ import annotations

try:
    from prometheus_client import Counter, Gauge, Histogram
except ImportError:  # without the prometheus extra: the same calls, recording nothing
    from cloudcrm_outbox.observability.no_metrics import (  # type: ignore[assignment]
        Counter,
        Gauge,
        Histogram,
    )

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
INBOX_PARKED = Gauge(
    "inbox_parked_messages",
    "Keyed messages parked until their key reaches them (a gap, or a dead letter before them).",
    ["consumer"],
)
INBOX_KEY_GAPS = Gauge(
    "inbox_key_gaps",
    "Keys waiting longer than the gap alert for a message that has not come (no dead letter).",
    ["consumer"],
)
INBOX_BATCH_DURATION = Histogram(
    "inbox_batch_duration_seconds",
    "One consumer batch: the inbox transaction and the acks.",
    ["consumer"],
    buckets=_SECONDS,
)
