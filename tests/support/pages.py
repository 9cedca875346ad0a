"""The web pages in-process, signed in through their own development sign-in, with the
two APIs replaced by a stand-in that records what the pages asked and answers as told."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from app.pages.api_client import Apis
from app.pages.serving import create_web_app
from app.settings import Settings

# The development sign-in answers only this machine's own browser: client and Host loopback.
LOOPBACK_CLIENT = ("127.0.0.1", 5000)
BASE_URL = "http://127.0.0.1:8000"

Answer = Callable[[str, str, Any], Any]  # (method, path, body) → JSON, or raises ApiError


@dataclass
class StandInApis(Apis):
    """Both APIs: each call is recorded in ``asked`` and answered by ``answer``."""

    answer: Answer = field(default=lambda method, path, body: [])
    asked: list[tuple[str, str, Any]] = field(default_factory=list)

    async def call(
        self, client: httpx.AsyncClient, method: str, path: str, token: str, body: Any = None
    ) -> Any:
        self.asked.append((method, path, body))
        return self.answer(method, path, body)


@dataclass
class SignedInPages:
    """A client of the pages holding a signed-in session, and the stand-in APIs."""

    client: httpx.AsyncClient
    apis: StandInApis
    app: FastAPI


@asynccontextmanager
async def signed_in_pages(*, base_url: str = BASE_URL) -> AsyncIterator[SignedInPages]:
    """``python -m app web`` in-process (development sign-in: the suite's AUTH_JWT_SECRET),
    signed in as the developer; its APIs are a StandInApis."""
    app = create_web_app(Settings(ordering_api_url="http://127.0.0.1:9",
                                  catalog_api_url="http://127.0.0.1:9"))  # fmt: skip
    transport = httpx.ASGITransport(app=app, client=LOOPBACK_CLIENT)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=base_url) as client,
    ):
        apis = StandInApis(ordering=client, catalog=client)
        app.state.page_apis = apis
        signed = await client.post("/sign-in", content=b"next=/products")
        assert signed.status_code == 303 and signed.cookies, signed.headers
        yield SignedInPages(client, apis, app)
