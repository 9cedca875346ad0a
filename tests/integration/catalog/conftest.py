from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.catalog.app import create_app
from app.core.settings import Settings
from tests.support.servers import asgi_client


@pytest.fixture
async def catalog(catalog_db: str) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog API on a fresh database."""
    async with asgi_client(create_app(Settings(catalog_database_url=catalog_db))) as client:
        yield client


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def catalog_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated catalog database on each backend: PostgreSQL, then SQLite."""
    return str(request.getfixturevalue("catalog_db" if request.param == "postgresql"
                                       else "catalog_sqlite"))  # fmt: skip


@pytest.fixture
async def catalog_api(catalog_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog API on ``catalog_url`` (each backend in turn)."""
    async with asgi_client(create_app(Settings(catalog_database_url=catalog_url))) as client:
        yield client
