"""An API request whose database connection has gone dark answers, on real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from app.catalog.app import create_app
from app.core.settings import Settings
from tests.support.proxy import TcpProxy
from tests.support.servers import asgi_client

pytestmark = pytest.mark.postgres


@pytest.fixture
async def proxied_catalog_db(catalog_db: str) -> AsyncIterator[tuple[str, TcpProxy]]:
    """``catalog_db`` through a proxy the test owns: (its URL, the proxy)."""
    port = urlsplit(catalog_db.replace("postgresql+psycopg", "postgresql")).port
    proxy = await TcpProxy("127.0.0.1", port or 5432).start()
    try:
        yield catalog_db.replace(f":{port}/", f":{proxy.port}/"), proxy
    finally:
        await proxy.close()


async def test_a_request_on_a_connection_gone_dark_answers_503(
    proxied_catalog_db: tuple[str, TcpProxy],
) -> None:
    """sqlx PR #4355: after a failover, a killed container or a dropped NAT mapping the
    client waits for ever on a reply that never comes. A request must not: within its
    configured bound (1 s here, and psycopg's own cancellation) it answers 503."""
    url, proxy = proxied_catalog_db
    settings = Settings(
        catalog_database_url=url,
        database_answer_timeout_seconds=1,
        consumer_statement_timeout_seconds=0.5,  # below it, as it must be
    )
    async with asgi_client(create_app(settings)) as catalog:
        assert (await catalog.get("/api/catalog/products")).status_code == 200  # pooled
        proxy.go_dark()
        response = await asyncio.wait_for(catalog.get("/api/catalog/products"), timeout=30)
        assert response.status_code == 503, response.text
        assert "retry" in response.json()["detail"]
        # The dark connection was dropped, not kept: the next request is served anew.
        assert (await catalog.get("/api/catalog/products")).status_code == 200
