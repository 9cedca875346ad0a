"""What the relay's and the consumer's batch lines share: the first few message ids of a batch
with their correlation and trace ids (the rest counted)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

SHOWN = 5  # message ids a batch line names; the rest is a count


def trace_id(traceparent: object) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    if isinstance(traceparent, str) and traceparent.count("-") == 3:
        return traceparent.split("-")[1]
    return None


def ids_fields(headers_by_id: Mapping[uuid.UUID, Mapping[str, Any]]) -> dict[str, Any]:
    """``message_ids`` (the first SHOWN), their ``correlation_ids`` and ``trace_ids`` when
    any, and ``more``: how many were left out."""
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
