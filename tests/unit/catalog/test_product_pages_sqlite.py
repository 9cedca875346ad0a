"""The products list's keyset pages on SQLite (the embedded default), as on PostgreSQL
(tests/integration/catalog/test_product_pages.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.catalog.app import create_app
from app.core import migrations as migrate
from app.core.settings import Settings
from tests.integration.catalog.test_product_pages import check_paging, check_refusals
from tests.support.servers import asgi_client


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(catalog_database_url=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}")
    await asyncio.to_thread(migrate.upgrade, "catalog", settings=settings)
    async with asgi_client(create_app(settings)) as client:
        yield client


async def test_products_page_by_keyset_both_ways(catalog: httpx.AsyncClient) -> None:
    await check_paging(catalog)
    await check_refusals(catalog)
