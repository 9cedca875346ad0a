"""``python -m app dev``: both APIs on one port on the embedded defaults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app import migrate
from app.catalog.app import ROUTERS as CATALOG_ROUTERS
from app.catalog.app import catalog_resources
from app.ordering.app import ordering_resources
from app.ordering.router import router as ordering_router
from app.settings import SERVICES, Settings
from app.web import build_app


def create_dev_app(settings: Settings) -> FastAPI:
    """Ordering and catalog in one app; ordering reaches catalog in-process, not over TCP."""

    @asynccontextmanager
    async def migrated(_app: FastAPI, settings: Settings) -> AsyncIterator[None]:
        for service in SERVICES:
            # Alembic's env runs its own event loop, so it runs in a worker thread.
            await asyncio.to_thread(migrate.upgrade, service, settings=settings)
        yield

    @asynccontextmanager
    async def ordering_in_process(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
        transport = httpx.ASGITransport(app=app)
        async with ordering_resources(app, settings, catalog_transport=transport):
            yield

    return build_app(
        title="CloudCrm (ordering + catalog)",
        settings=settings,
        routers=[ordering_router, *CATALOG_ROUTERS],
        resources=[migrated, catalog_resources, ordering_in_process],
    )
