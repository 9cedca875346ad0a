"""Traces across the outbox (OpenTelemetry API; W3C Trace Context, https://www.w3.org/TR/trace-context/).

The chain of one event: the writer stores the current context's ``traceparent`` in the
outbox row's headers; the relay opens a PRODUCER span per message, child of that context,
and sends *its* ``traceparent`` as an AMQP header; the consumer opens a CONSUMER span per
message, child of the header's context, around the inbox transaction; events a handler
writes in reply (``write_events(..., caused_by=…)``) carry the consumer span's context. With
no SDK configured every span is a no-op and the headers pass through unchanged.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

TRACEPARENT = "traceparent"
tracer = trace.get_tracer("cloudcrm_outbox")

# The consumer spans of the batch being applied, by incoming event id: what a handler's
# replies (``write_events(caused_by=…)``) take as their parent.
_CONSUMING: contextvars.ContextVar[Mapping[uuid.UUID, Span] | None] = contextvars.ContextVar(
    "outbox_consuming", default=None
)


def tracing_on() -> bool:
    """False while no SDK is set up (the API's default, no-op provider): then nothing here
    costs more than this check, per batch."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def current_traceparent() -> str | None:
    """The current context as a ``traceparent`` value; None when nothing is traced."""
    if not tracing_on():
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def traceparent_of_cause(event_id: uuid.UUID) -> str | None:
    """The ``traceparent`` of the consumer span applying ``event_id`` (when one is)."""
    span = (_CONSUMING.get() or {}).get(event_id)
    if span is None or not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def parent_context(traceparent: object) -> object:
    """The OpenTelemetry context a W3C ``traceparent`` header names (None for no header)."""
    if not isinstance(traceparent, str):
        return None
    return propagate.extract({TRACEPARENT: traceparent})


@contextmanager
def consume_spans(
    messages: Sequence[tuple[uuid.UUID, str, str | None]],
) -> Iterator[None]:
    """CONSUMER spans, one per (message id, event type, traceparent), around the block
    (the inbox transaction); replies written in it find their cause's span."""
    spans: dict[uuid.UUID, Span] = {}
    if not tracing_on():
        yield
        return
    for message_id, event_type, traceparent in messages:
        spans[message_id] = tracer.start_span(
            f"{event_type} process",
            context=parent_context(traceparent),  # type: ignore[arg-type]
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.message.id": str(message_id),
            },
        )
    token = _CONSUMING.set(spans)
    # The batch's statements run once for all its messages: they appear under the first
    # message's span.
    first = next(iter(spans.values()), None)
    try:
        if first is None:
            yield
        else:
            with trace.use_span(first, end_on_exit=False):
                yield
    except BaseException as exc:
        for span in spans.values():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, repr(exc)[:200]))
        raise
    finally:
        _CONSUMING.reset(token)
        for span in spans.values():
            span.end()
