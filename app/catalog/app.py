"""The catalog service's FastAPI app factory and its resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.admin.resources import admin_broker
from app.admin.router import router as admin_router
from app.auth.config import SigningKeys
from app.catalog.router import integration_router, router
from app.core.settings import Settings
from app.http.service_app import build_app, database

ROUTERS = (router, integration_router)


@asynccontextmanager
async def catalog_resources(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Catalog's database."""
    async with database(app, settings, "catalog"):
        yield


def create_app(settings: Settings, keys: SigningKeys | None = None) -> FastAPI:
    """The catalog API alone (``python -m app api catalog``), verifying tokens with
    ``keys`` (None: AUTH_JWT_SECRET alone, never the development secret).

    Raises AuthNotConfiguredError when tokens cannot be verified.
    """
    return build_app(
        title="CloudCrm catalog",
        settings=settings,
        routers=[*ROUTERS, admin_router],
        resources=[catalog_resources, admin_broker],
        keys=SigningKeys.configured(settings) if keys is None else keys,
    )
