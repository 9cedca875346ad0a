"""Tracing setup (OpenTelemetry SDK), configured by the standard ``OTEL_*`` variables
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/): with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans are exported over OTLP/HTTP; without it nothing
is set up and every span is a no-op (the API's default)."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

logger = logging.getLogger(__name__)


def tracing_enabled() -> bool:
    """True once an SDK tracer provider is set (by ``configure_tracing`` or a test)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def configure_tracing(service_name: str) -> None:
    """Export spans over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; ``service_name``
    unless ``OTEL_SERVICE_NAME`` names it. Also traces SQLAlchemy's statements."""
    if tracing_enabled() or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    instrument_sqlalchemy()
    logger.info("tracing: spans exported over OTLP", extra={"service_name": service_name})


def instrument_sqlalchemy() -> None:
    """Spans for every SQL statement of engines made from now on."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def instrument_api(app: FastAPI) -> None:
    """Server spans for ``app``'s requests (continuing an incoming ``traceparent``), when
    tracing is on."""
    if tracing_enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
