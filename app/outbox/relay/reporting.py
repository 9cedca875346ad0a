"""What the relay reports of each batch: its metrics, its log line, its publish spans."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from cloudcrm_outbox.brokers.publisher import OutgoingMessage, PublishResult
from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.observability.batch_logs import ids_fields, trace_id
from cloudcrm_outbox.observability.metrics import (
    OUTBOX_BATCH_DURATION,
    OUTBOX_PUBLISH_ERRORS,
    OUTBOX_PUBLISHED,
)
from cloudcrm_outbox.observability.tracing import TRACEPARENT, parent_context, tracer, tracing_on

relay_logger = library_logger("cloudcrm_outbox.relay")


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
            **ids_fields({m.message_id: m.headers for m in messages if m.message_id in confirmed}),
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


def start_publish_spans(
    messages: Sequence[OutgoingMessage],
) -> tuple[list[OutgoingMessage], list[tuple[uuid.UUID, Span]]]:
    """One PRODUCER span per message, child of its row's ``traceparent``; the messages
    carry their span's context instead (when there is a real one)."""
    traced: list[OutgoingMessage] = []
    spans: list[tuple[uuid.UUID, Span]] = []
    if not tracing_on():
        return list(messages), spans
    for message in messages:
        span = tracer.start_span(
            f"{message.event_type} publish",
            context=parent_context(message.headers.get(TRACEPARENT)),  # type: ignore[arg-type]
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "publish",
                "messaging.message.id": str(message.message_id),
                "messaging.destination.name": message.event_type,
            },
        )
        spans.append((message.message_id, span))
        if span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            message = replace(message, headers={**message.headers, **carrier})
        traced.append(message)
    return traced, spans


def end_publish_spans(spans: Sequence[tuple[uuid.UUID, Span]], result: PublishResult) -> None:
    """End each publish span with its message's fate."""
    for message_id, span in spans:
        reason = (
            result.rejected.get(message_id)
            or result.unroutable.get(message_id)
            or result.nacked.get(message_id)
        )
        if reason is not None:
            span.set_status(Status(StatusCode.ERROR, reason[:200]))
        elif message_id not in result.confirmed:
            span.set_status(Status(StatusCode.ERROR, "no confirm: the connection was lost"))
        span.end()
