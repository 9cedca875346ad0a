"""The APIs' ``/metrics``: HTTP request counts and durations by route template, and the
outbox gauges of each database the process holds, read at scrape time (through the
partial indexes: never a scan of published rows)."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudcrm_outbox.ops.gauges import refresh_outbox_gauges

logger = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered.", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


UNMATCHED = "unmatched"
# The request methods HTTP defines (RFC 9110 §9; PATCH: RFC 5789), each its own label.
# Any other token is a valid method a client may send without a token, one label for all:
# as labels of their own they would grow the series without bound.
STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "other"


class HttpMetricsMiddleware:
    """Counts every answer by method (STANDARD_METHODS; any other as ``other``), route
    template (``/api/ordering/order/{order_id}``, not the id: few label values) and status.
    A mount counts under its template (every file of ``/assets`` as ``/assets/{path}``);
    paths no route matched as ``unmatched``. The labels are never a request's own path or
    method: anyone, without a token, could otherwise add a series per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Each top-level route's endpoint (a Mount's: the mounted app) → its template.
        self._templates: dict[int, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or self._template(scope)
            method = scope["method"] if scope["method"] in STANDARD_METHODS else OTHER_METHOD
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        # FastAPI names the matched route in the scope only for its own API routes; for
        # the others (its /docs and /openapi.json, a StaticFiles mount) the scope holds
        # the endpoint, whose route is found among the app's routes by identity.
        endpoint = scope.get("endpoint")
        if endpoint is None or "app" not in scope:
            return UNMATCHED
        if self._templates is None:
            self._templates = {
                id(getattr(route, "endpoint", None) or getattr(route, "app", None)): template
                for route in scope["app"].routes
                if isinstance(template := getattr(route, "path_format", None), str)
            }
        return self._templates.get(id(endpoint), UNMATCHED)


async def _refresh(engines: dict[str, AsyncEngine]) -> None:
    for service, engine in engines.items():
        await refresh_outbox_gauges(engine, service)


def install_metrics(app: FastAPI) -> None:
    """Add the request metrics and ``GET /metrics`` to ``app``."""
    app.add_middleware(HttpMetricsMiddleware)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await _refresh(request.app.state.engines)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
