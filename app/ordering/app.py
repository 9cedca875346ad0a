"""The ordering service's FastAPI app factory and its resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx
from fastapi import FastAPI

from app.admin.resources import admin_broker
from app.admin.router import router as admin_router
from app.auth.config import SigningKeys
from app.auth.service_token import ordering_credentials
from app.core.settings import Settings
from app.http.service_app import build_app, database
from app.ordering.reply_timeouts import STATUS_FIGURES
from app.ordering.router import router


@asynccontextmanager
async def ordering_resources(
    app: FastAPI,
    settings: Settings,
    *,
    keys: SigningKeys,
    catalog_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[None]:
    """Ordering's database and its HTTP client for catalog's integration API, which
    carries ordering's own token (signed with ``keys``' secret, without a provider)."""
    timeout = httpx.Timeout(settings.catalog_api_timeout_seconds)
    credentials = ordering_credentials(settings, keys)
    async with (
        database(app, settings, "ordering"),
        httpx.AsyncClient(
            base_url=settings.catalog_api_url,
            timeout=timeout,
            transport=catalog_transport,
            auth=credentials,
        ) as client,
    ):
        app.state.catalog_client = client
        yield


def create_app(settings: Settings, keys: SigningKeys | None = None) -> FastAPI:
    """The ordering API alone (``python -m app api ordering``), signing and verifying
    tokens with ``keys`` (None: AUTH_JWT_SECRET alone, never the development secret).

    Raises AuthNotConfiguredError when tokens cannot be verified, or ordering cannot get
    its own for catalog's integration API.
    """
    keys = SigningKeys.configured(settings) if keys is None else keys
    app = build_app(
        title="CloudCrm ordering",
        settings=settings,
        routers=[router, admin_router],
        resources=[partial(ordering_resources, keys=keys), admin_broker],
        keys=keys,
    )
    ordering_credentials(settings, keys)  # refuse at start, not at the first listing
    app.state.status_figures = {"ordering": STATUS_FIGURES}
    return app
