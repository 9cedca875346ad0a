"""``python -m app web``: the pages on their own, calling the two APIs over HTTP; and the
pages inside ``dev``, calling the APIs in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.auth.config import SigningKeys
from app.core.settings import Settings
from app.http.service_app import BodySizeLimitMiddleware
from app.pages import router as pages
from app.pages.api_client import Apis
from app.pages.provider_sign_in import IdentityProvider
from app.pages.session import development_sign_in

TIMEOUT = httpx.Timeout(10.0)


def create_web_app(settings: Settings, keys: SigningKeys | None = None) -> FastAPI:
    """The pages, calling ORDERING_API_URL and CATALOG_API_URL. A development sign-in is
    offered only when ``keys`` hold a secret (None: AUTH_JWT_SECRET alone, never the
    development secret)."""
    keys = SigningKeys.configured(settings) if keys is None else keys

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            httpx.AsyncClient(base_url=settings.ordering_api_url, timeout=TIMEOUT) as ordering,
            httpx.AsyncClient(base_url=settings.catalog_api_url, timeout=TIMEOUT) as catalog,
        ):
            app.state.page_apis = Apis(ordering=ordering, catalog=catalog)
            yield

    app = FastAPI(title="CloudCrm web", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    sign_in = None
    # The development sign-in only where no provider is (and only to this machine's own
    # browser: the route refuses other hosts).
    if keys.secret is not None and identity_provider(settings) is None:

        def sign_in() -> str:
            token = development_sign_in(settings, keys)
            assert token is not None
            return token

    pages.install(
        app,
        sign_in=sign_in,
        provider=identity_provider(settings),
        docs_url=f"{settings.ordering_api_url.rstrip('/')}/docs",
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    return app


def install_in_dev(app: FastAPI, settings: Settings, keys: SigningKeys) -> None:
    """The pages at ``/`` of ``dev``'s app, calling its APIs in-process; a development
    sign-in when ``keys`` hold a secret and no identity provider is configured."""

    def sign_in() -> str:
        token = development_sign_in(settings, keys)
        assert token is not None
        return token

    provider = identity_provider(settings)
    offered = keys.secret is not None and provider is None
    pages.install(app, sign_in=sign_in if offered else None, provider=provider)


def identity_provider(settings: Settings) -> IdentityProvider | None:
    """The pages' sign-in at the provider, when AUTH_AUTHORIZE_URL is set."""
    if not (
        settings.auth_authorize_url and settings.auth_web_client_id and settings.auth_token_url
    ):
        return None
    return IdentityProvider(
        settings.auth_authorize_url, settings.auth_token_url, settings.auth_web_client_id
    )


@asynccontextmanager
async def pages_in_process(app: FastAPI, _settings: Settings) -> AsyncIterator[None]:
    """``dev``'s resource: the pages' clients of its own APIs, through ASGI."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://dev", timeout=TIMEOUT
    ) as client:
        app.state.page_apis = Apis(ordering=client, catalog=client)
        yield
