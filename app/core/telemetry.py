"""Tracing setup (OpenTelemetry SDK), configured by the standard ``OTEL_*`` variables
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/): with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans are exported over OTLP/HTTP; without it nothing
is set up and every span is a no-op (the API's default)."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from opentelemetry import trace

# The SDK, the web framework and the database toolkit are imported where used: a command
# with tracing off (no OTLP endpoint) loads none of them for it.
if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)


def tracing_enabled() -> bool:
    """True once an SDK tracer provider is set (by ``configure_tracing`` or a test)."""
    sdk = sys.modules.get("opentelemetry.sdk.trace")  # not loaded: no SDK provider exists
    return sdk is not None and isinstance(trace.get_tracer_provider(), sdk.TracerProvider)


def configure_tracing(service_name: str) -> None:
    """Export spans over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its ``_TRACES_``
    form) is set; ``service_name``
    unless ``OTEL_SERVICE_NAME`` names it. Also traces SQLAlchemy's statements."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if tracing_enabled() or not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    # Bounded: a collector that is down must not hold a stopping process past its grace.
    timeout = float(os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", "2"))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(timeout=timeout), export_timeout_millis=2000)
    )
    trace.set_tracer_provider(provider)
    instrument_sqlalchemy()
    logger.info("tracing: spans exported over OTLP", extra={"service_name": service_name})


def instrument_sqlalchemy() -> None:
    """Spans for every SQL statement of the engines the outbox makes from now on (its
    ``make_engine`` runs the hook: SQLAlchemy's async engines are built from a reference to
    ``create_engine`` taken before any instrumentation could wrap it)."""
    from opentelemetry import metrics
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    from cloudcrm_outbox.storage.engine import ENGINE_HOOKS

    name = "opentelemetry.instrumentation.sqlalchemy"
    tracer = trace.get_tracer(name)
    usage = metrics.get_meter(name).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )

    def trace_statements(engine: AsyncEngine) -> None:
        EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]

    if not any(hook.__name__ == "trace_statements" for hook in ENGINE_HOOKS):
        ENGINE_HOOKS.append(trace_statements)


def instrument_api(app: FastAPI) -> None:
    """Server spans for ``app``'s requests (continuing an incoming ``traceparent``), when
    tracing is on."""
    if tracing_enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
