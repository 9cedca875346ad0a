"""The relay's and the consumer's batch lines: counts and durations, the first few message
ids with their correlation and trace ids; one line per message at DEBUG."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.brokers.publisher import OutgoingMessage, PublishResult
from cloudcrm_outbox.inbox.decoding import Decoded

relay_logger = logging.getLogger("cloudcrm_outbox.relay.relay")
consumer_logger = logging.getLogger("cloudcrm_outbox.inbox.consumer")
SHOWN = 5  # message ids a batch line names; the rest is a count


class _Report(Protocol):
    @property
    def claimed(self) -> int: ...
    @property
    def published(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def unroutable(self) -> int: ...
    @property
    def nacked(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def seconds(self) -> float: ...


def trace_id(traceparent: object) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    if isinstance(traceparent, str) and traceparent.count("-") == 3:
        return traceparent.split("-")[1]
    return None


def _ids(headers_by_id: Mapping[uuid.UUID, Mapping[str, Any]]) -> dict[str, Any]:
    shown = list(headers_by_id.items())[:SHOWN]
    fields: dict[str, Any] = {"message_ids": [str(message_id) for message_id, _ in shown]}
    correlation = [h.get("correlation_id") for _, h in shown if h.get("correlation_id")]
    traces = [t for _, h in shown if (t := trace_id(h.get("traceparent")))]
    if correlation:
        fields["correlation_ids"] = correlation
    if traces:
        fields["trace_ids"] = traces
    if len(headers_by_id) > SHOWN:
        fields["more"] = len(headers_by_id) - SHOWN
    return fields


def log_relay_batch(
    report: _Report,
    messages: Sequence[OutgoingMessage],
    result: PublishResult,
    *,
    newly_unroutable: bool = True,
) -> None:
    """One line per batch (WARNING when rows were refused, or returned unroutable for
    the first time: a probe returned again every half second is not news)."""
    refused = report.rejected or (report.unroutable and newly_unroutable) or report.nacked
    level = logging.WARNING if refused else logging.INFO
    confirmed = set(result.confirmed)
    relay_logger.log(
        level,
        "relayed batch",
        extra={
            "claimed": report.claimed,
            "published": report.published,
            "rejected": report.rejected,
            "unroutable": report.unroutable,
            "nacked": report.nacked,
            "failed": report.failed,
            "duration_ms": round(report.seconds * 1000, 1),
            **_ids({m.message_id: m.headers for m in messages if m.message_id in confirmed}),
        },
    )
    if relay_logger.isEnabledFor(logging.DEBUG):
        for message in messages:
            fate = "published" if message.message_id in confirmed else "not published"
            relay_logger.debug(
                fate,
                extra={
                    "message_id": str(message.message_id),
                    "event_type": message.event_type,
                    "correlation_id": message.headers.get("correlation_id"),
                    "trace_id": trace_id(message.headers.get("traceparent")),
                },
            )


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
            "duplicates": len(applied) - len(outcomes),
            "outcomes": counts,
            "duration_ms": round(seconds * 1000, 1),
            **_ids({d.message_id: _headers(m, d) for m, d in applied}),
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


def _headers(message: Delivery, decoded: Decoded) -> dict[str, Any]:
    return {"correlation_id": message.correlation_id, "traceparent": decoded.traceparent}
