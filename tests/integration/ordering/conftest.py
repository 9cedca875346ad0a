from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.settings import Settings
from app.ordering.app import create_app
from tests.support.servers import asgi_client, free_port

pytestmark = pytest.mark.postgres


@pytest.fixture
async def ordering(ordering_db: str) -> AsyncIterator[httpx.AsyncClient]:
    """The ordering API on a fresh database; catalog is not running."""
    settings = Settings(
        ordering_database_url=ordering_db,
        catalog_api_url=f"http://127.0.0.1:{free_port()}",
        catalog_api_timeout_seconds=1.0,
    )
    async with asgi_client(create_app(settings)) as client:
        yield client
