from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.catalog.app import create_app
from app.settings import Settings
from tests.support.servers import asgi_client


@pytest.fixture
async def catalog(catalog_db: str) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog API on a fresh database."""
    async with asgi_client(create_app(Settings(catalog_database_url=catalog_db))) as client:
        yield client
