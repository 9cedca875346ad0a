"""The web pages in-process, signed in through their own development sign-in, with the
two APIs replaced by a stand-in that records what the pages asked and answers as told."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI

from app.core.settings import Settings
from app.pages.api_client import Apis
from app.pages.serving import create_web_app

# The development sign-in answers only this machine's own browser: client and Host loopback.
LOOPBACK_CLIENT = ("127.0.0.1", 5000)
BASE_URL = "http://127.0.0.1:8000"

Answer = Callable[[str, str, Any], Any]  # (method, path, body) → JSON, or raises ApiError


def _as_stored(method: str, path: str, body: Any) -> Any:
    # A POST or PUT answers what it stored (as the APIs answer a product); a GET, nothing.
    return body if method in {"POST", "PUT"} and isinstance(body, dict) else []


@dataclass
class StandInApis(Apis):
    """Both APIs: each call is recorded in ``asked`` and answered by ``answer``."""

    answer: Answer = field(default=_as_stored)
    asked: list[tuple[str, str, Any]] = field(default_factory=list)

    async def call(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
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


@dataclass
class PageForm:
    """One ``<form>`` of a page: where it posts, its fields (every ``<input>`` with a
    name, in order, repeated names kept) and the attributes of the table row it is in."""

    action: str
    fields: list[tuple[str, str]]
    row: dict[str, str]

    def body(self) -> bytes:
        """The body a browser sends for it (HTML's form submission: each LF or CR alone
        becomes CRLF, then application/x-www-form-urlencoded)."""
        crlf = [(name, _crlf(value)) for name, value in self.fields]
        return urlencode(crlf).encode("ascii")


def _crlf(text: str) -> str:
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[PageForm] = []
        self._row: dict[str, str] = {}
        self._form: PageForm | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "tr":
            self._row = values
        elif tag == "form":
            self._form = PageForm(values.get("action", ""), [], self._row)
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and "name" in values:
            self._form.fields.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "tr":
            self._row = {}


def page_forms(html: str) -> list[PageForm]:
    """The forms of a page, in document order."""
    reader = _FormReader()
    reader.feed(html)
    return reader.forms


@dataclass(frozen=True)
class PagesOverServices:
    """The web pages signed in (``web``), in front of the two real APIs in-process
    (``ordering``, ``catalog``: their clients, which the pages use)."""

    web: httpx.AsyncClient
    ordering: httpx.AsyncClient
    catalog: httpx.AsyncClient


def loopback_client(app: Any, base_url: str) -> httpx.AsyncClient:
    """An in-process client of ``app`` whose requests come from this machine (the pages'
    development sign-in answers only that)."""
    transport = httpx.ASGITransport(app=app, client=LOOPBACK_CLIENT)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@asynccontextmanager
async def pages_over_services(
    settings: Settings, *, next_page: str
) -> AsyncIterator[PagesOverServices]:
    """ordering's and catalog's APIs and the web pages on ``settings`` (each app's lifespan
    run), the pages calling the APIs in-process, signed in as the developer, then sent to
    ``next_page``."""
    from app.catalog.app import create_app as create_catalog
    from app.ordering.app import create_app as create_ordering

    ordering, catalog, web = (create_ordering(settings), create_catalog(settings),
                              create_web_app(settings))  # fmt: skip
    async with (
        ordering.router.lifespan_context(ordering),
        catalog.router.lifespan_context(catalog),
        web.router.lifespan_context(web),
        loopback_client(ordering, "http://ordering") as ordering_client,
        loopback_client(catalog, "http://catalog") as catalog_client,
        loopback_client(web, BASE_URL) as web_client,
    ):
        web.state.page_apis = Apis(ordering=ordering_client, catalog=catalog_client)
        signed = await web_client.post("/sign-in", content=f"next={next_page}".encode())
        assert signed.status_code == 303, signed.text
        yield PagesOverServices(web_client, ordering_client, catalog_client)
