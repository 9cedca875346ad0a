"""The HTTP metrics' ``route`` label is a route template, never a request's path: paths
that no route matches, and every file under /assets/, are one label each, so requests
without a token cannot grow the series without bound (nor write 8,000-character lines)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.cli.dev import create_dev_app
from app.core.settings import Settings
from app.pages.serving import create_web_app

HTTP_METRICS = ("http_requests", "http_request_duration_seconds")


def _series() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Each HTTP metric's label sets (a histogram's buckets counted once)."""
    found = set()
    for metric in REGISTRY.collect():
        if metric.name in HTTP_METRICS:
            for sample in metric.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                found.add((metric.name, labels))
    return found


def _random_paths(count: int) -> list[str]:
    paths = []
    for n in range(count):
        word = secrets.token_hex(8)
        paths.append(f"/assets/{word}.css" if n % 2 else f"/{word}/{secrets.token_hex(4)}")
    return [*paths, "/assets/" + "x" * 8000, "/" + "y" * 8000]


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
    ) as client:
        yield client


@pytest.fixture
async def dev(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Static files and unmatched paths need none of dev's resources: no lifespan.
    settings = Settings(
        ordering_database_url=f"sqlite+aiosqlite:///{tmp_path}/ordering.db",
        catalog_database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
        broker_url="memory://",
    )
    async for client in _client(create_dev_app(settings)):
        yield client


async def test_a_thousand_random_paths_add_at_most_two_series_in_dev(
    dev: httpx.AsyncClient,
) -> None:
    assert (await dev.get("/assets/pages.css")).status_code == 200
    before = _series()
    paths = _random_paths(1000)
    for path in paths:
        assert (await dev.get(path)).status_code == 404, path
    added = _series() - before
    routes = {dict(labels)["route"] for _, labels in added}
    assert routes <= {"/assets/{path}", "unmatched"}, sorted(routes)[:5]
    for name in HTTP_METRICS:  # a series each for /assets/{path} and unmatched, at most
        assert len([labels for metric, labels in added if metric == name]) <= 2, added
    # The file that exists counts under the mount's template too, not its own name.
    shown = {dict(labels)["route"] for _, labels in _series()}
    assert "/assets/pages.css" not in shown


async def test_the_apis_documentation_assets_count_as_one_route() -> None:
    """Each API serves Swagger UI's files from a mount of its own (fastapi-offline)."""
    from app.ordering.app import create_app

    before = _series()
    async for api in _client(create_app(Settings())):
        for path in _random_paths(100):
            await api.get(f"/static-offline-docs{path}")
    routes = {dict(labels)["route"] for _, labels in _series() - before}
    assert routes <= {"/static-offline-docs/{path}"}, sorted(routes)[:5]


async def test_web_serves_no_metrics_and_records_no_series() -> None:
    """``python -m app web`` (the pages on their own) has no /metrics: it adds nothing."""
    app = create_web_app(Settings(ordering_api_url="http://127.0.0.1:9",
                                  catalog_api_url="http://127.0.0.1:9"))  # fmt: skip
    before = _series()
    async for web in _client(app):
        assert (await web.get("/metrics")).status_code == 404
        for path in _random_paths(200):
            await web.get(path)
    assert _series() == before


async def test_methods_outside_the_standard_ones_are_one_label(dev: httpx.AsyncClient) -> None:
    """HTTP lets a client send any token as its method: 35 made-up methods across the
    routes once grew /metrics from 1,060 to 8,669 lines, without a token. The methods of
    RFC 9110 §9 and PATCH (RFC 5789) are labels of their own; any other is ``other``."""
    before = _series()
    made_up = [f"X{secrets.token_hex(4).upper()}" for _ in range(35)] + ["get", "BREW"]
    for method in [*made_up, "GET", "PATCH", "OPTIONS"]:
        for path in ("/api/catalog/products", "/health/live", "/nowhere"):
            await dev.request(method, path)
    methods = {dict(labels)["method"] for _, labels in _series() - before}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                       "PATCH", "other"}, sorted(methods)[:5]  # fmt: skip
    assert "other" in methods
