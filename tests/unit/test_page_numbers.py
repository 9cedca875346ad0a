"""The pages send a number exactly as it was typed: the API judges a price's decimals as
written (1.0000000000000001 is refused, never saved as 1), and a number in exponent form
is a number. What no API could read as a number is refused on the page, in words. The
pages in front of catalog's API on SQLite, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.catalog.app import create_app
from app.core import migrations as migrate
from app.core.settings import Settings
from app.pages.api_client import Apis
from app.pages.serving import create_web_app
from tests.support.auth import HEADERS
from tests.support.pages import BASE_URL, LOOPBACK_CLIENT


@dataclass
class Shop:
    web: httpx.AsyncClient  # the pages, signed in
    api: httpx.AsyncClient  # catalog's API


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    settings = Settings(catalog_database_url=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
                        ordering_api_url="http://127.0.0.1:9")  # fmt: skip
    await asyncio.to_thread(migrate.upgrade, "catalog", settings=settings)
    catalog, web = create_app(settings), create_web_app(settings)

    def client(app: Any, base_url: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=LOOPBACK_CLIENT)
        return httpx.AsyncClient(transport=transport, base_url=base_url)

    async with (
        catalog.router.lifespan_context(catalog),
        web.router.lifespan_context(web),
        client(catalog, "http://catalog") as api,
        client(web, BASE_URL) as pages,
    ):
        web.state.page_apis = Apis(ordering=api, catalog=api)
        assert (await pages.post("/sign-in", content=b"next=/products")).status_code == 303
        yield Shop(pages, api)


async def _add(shop: Shop, price: str, stock: str = "3") -> str:
    """Add a product named Lamp through the Products page's form; the banner shown then."""
    form = httpx.QueryParams({"name": "Lamp", "price": price, "stockCount": stock})
    done = await shop.web.post("/products", content=str(form).encode())
    assert done.status_code == 303, done.text
    page = await shop.web.get("/products")
    start = page.text.index('role="', page.text.index("<main"))
    return page.text[start : page.text.index("</p>", start)]


async def _prices(shop: Shop) -> list[float]:
    listed = await shop.api.get("/api/catalog/products", headers=HEADERS)
    return [product["price"] for product in listed.json()]


async def test_a_price_goes_to_the_api_as_typed(shop: Shop) -> None:
    banner = await _add(shop, "1.0000000000000001")
    assert "at most two decimals" in banner and "1.0000000000000001" in banner, banner
    assert await _prices(shop) == []  # refused, not saved as 1

    assert "added Lamp" in await _add(shop, "1e2")
    assert "added Lamp" in await _add(shop, ".5")  # as a browser's number field may send
    assert sorted(await _prices(shop)) == [0.5, 100.0]


@pytest.mark.parametrize("typed", ["abc", "1,50", "nan", "Infinity", "1_000", "", "0x10", "1e"])
async def test_what_is_not_a_number_is_refused_in_words(shop: Shop, typed: str) -> None:
    banner = await _add(shop, typed)
    assert 'role="alert"' in banner, banner
    assert "price: write a number" in banner, banner
    assert "Value error" not in banner and "JSON" not in banner, banner
    assert await _prices(shop) == []
