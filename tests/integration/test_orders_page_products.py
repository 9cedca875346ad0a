"""The Orders page with a catalog of more products than its select lists (501 and the
demo's three): it says so, chooses the product an Order link names even beyond them, and
says in words on the page when the link names no product — as the real catalog API answers,
on PostgreSQL (the services apart, ``python -m app web`` in front) and on the embedded
default (``dev``, SQLite)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli.dev import create_dev_app
from app.core.settings import Settings
from tests.conftest import query
from tests.support.pages import BASE_URL, loopback_client, pages_over_services

NAMES = [f"Item {n:04d}" for n in range(501)]  # by name, before the demo's "Product A"
LATE = NAMES[500]  # the first one beyond the select's 500
HINT = "Showing the first 500 products by name"


async def _signed_in(web: httpx.AsyncClient) -> httpx.AsyncClient:
    signed = await web.post("/sign-in", content=b"next=/orders")
    assert signed.status_code == 303, signed.text
    return web


@pytest.fixture
async def on_postgres(ordering_db: str, catalog_db: str) -> AsyncIterator[tuple[Any, str]]:
    ids = {name: uuid.uuid4() for name in NAMES}
    await query(catalog_db, "INSERT INTO products (id, name, price, stock_count) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[]) AS p, "
                "LATERAL (VALUES (1, 5)) AS v", list(ids.values()), list(ids))  # fmt: skip
    settings = Settings(ordering_database_url=ordering_db, catalog_database_url=catalog_db,
                        broker_url="memory://", catalog_api_url="http://127.0.0.1:9")  # fmt: skip
    async with pages_over_services(settings, next_page="/orders") as pages:
        yield pages.web, str(ids[LATE])


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    app = create_dev_app(Settings(
        ordering_database_url=f"sqlite+aiosqlite:///{tmp_path}/ordering.db",
        catalog_database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
        embedded_broker_path=str(tmp_path / "broker.db"), broker_url="memory://",
    ))  # fmt: skip
    ids = {name: uuid.uuid4() for name in NAMES}
    async with app.router.lifespan_context(app), loopback_client(app, BASE_URL) as web:
        with sqlite3.connect(tmp_path / "catalog.db") as catalog:  # migrated, seeded by now
            catalog.executemany(
                "INSERT INTO products (id, name, price, stock_count) VALUES (?, ?, 1, 5)",
                [(product_id.hex, name) for name, product_id in ids.items()],
            )
        yield await _signed_in(web), str(ids[LATE])


@pytest.fixture(params=["postgres", "embedded"])
def shop(request: pytest.FixtureRequest) -> tuple[httpx.AsyncClient, str]:
    """The signed-in pages and the id of LATE."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        found: tuple[httpx.AsyncClient, str] = request.getfixturevalue("on_postgres")
    else:
        found = request.getfixturevalue("embedded")
    return found


def _notice(html: str) -> str | None:
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', html)
    return found[1] if found else None


def _chosen(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]+)" selected>([^<]*)</option>', html)


async def test_the_select_says_it_holds_the_first_500(shop: tuple[httpx.AsyncClient, str]) -> None:
    web, _ = shop
    shown = await web.get("/orders")
    assert shown.status_code == 200
    assert HINT in shown.text and shown.text.count("<option ") == 500
    assert LATE not in shown.text and _chosen(shown.text) == [] and _notice(shown.text) is None


async def test_a_product_beyond_them_is_chosen_by_its_id(
    shop: tuple[httpx.AsyncClient, str],
) -> None:
    web, late_id = shop
    shown = await web.get("/orders", params={"product": late_id})
    assert shown.status_code == 200
    assert _chosen(shown.text) == [(late_id, f"{LATE} (5 in stock)")]
    assert HINT in shown.text and _notice(shown.text) is None


@pytest.mark.parametrize(
    ("asked", "words"),
    [
        (str(uuid.UUID(int=7)), "not in the catalog"),
        ("7", "not a product id"),
        ("x" * 300, "not a product id"),
    ],
    ids=["unknown", "malformed", "long"],
)
async def test_an_address_naming_no_product_is_said_on_the_page(
    shop: tuple[httpx.AsyncClient, str], asked: str, words: str
) -> None:
    web, _ = shop
    shown = await web.get("/orders", params={"product": asked})
    assert shown.status_code == 200 and "<h1>Orders</h1>" in shown.text
    notice = _notice(shown.text)
    assert notice is not None and words in notice, shown.text
    assert _chosen(shown.text) == [] and shown.text.count("<option ") == 500


def _listed(html: str) -> list[str]:
    return re.findall(r'<tr data-product="([^"]*)">', html)


def _link(html: str, rel: str) -> str:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    assert found is not None, html
    return found[1].replace("&amp;", "&")


async def _walk_renaming_the_edge(web: httpx.AsyncClient, rename: Any) -> None:
    # Page 1 ends at "Item 0049"; renamed to sort last before page 2 is read, it must not
    # move the next page's start: page 2 begins at "Item 0050" (by the old name's place)
    # and a page back from it ends where page 1 did.
    first = await web.get("/products")
    assert first.status_code == 200, first.text
    listed = _listed(first.text)
    assert listed[-1] == "Item 0049", listed
    await rename("Item 0049", "Zz renamed")
    second = await web.get(_link(first.text, "next"))
    assert second.status_code == 200
    assert _listed(second.text)[0] == "Item 0050", _listed(second.text)
    back = await web.get(_link(second.text, "prev"))
    assert _listed(back.text)[-1] == "Item 0048" and "Item 0049" not in _listed(back.text)


async def test_a_product_renamed_at_a_pages_edge_moves_no_page_on_postgres(
    on_postgres: tuple[httpx.AsyncClient, str], catalog_db: str
) -> None:
    async def rename(old: str, new: str) -> None:
        await query(catalog_db, "UPDATE products SET name = %s WHERE name = %s", new, old)

    await _walk_renaming_the_edge(on_postgres[0], rename)


async def test_a_product_renamed_at_a_pages_edge_moves_no_page_embedded(
    embedded: tuple[httpx.AsyncClient, str], tmp_path: Path
) -> None:
    def renamed(old: str, new: str) -> None:
        with sqlite3.connect(tmp_path / "catalog.db", timeout=30) as catalog:
            catalog.execute("UPDATE products SET name = ? WHERE name = ?", (new, old))

    async def rename(old: str, new: str) -> None:
        # In a thread: the service's workers, on this event loop, may hold the write lock
        # until the loop runs them again.
        await asyncio.to_thread(renamed, old, new)

    await _walk_renaming_the_edge(embedded[0], rename)


async def test_an_orders_address_holding_a_products_position_gives_the_first_page(
    shop: tuple[httpx.AsyncClient, str],
) -> None:
    # A products list position (an opaque token) in an Orders address, edited by hand: the
    # orders list refuses it (422), and the page says so over its first page.
    web, _ = shop
    shown = await web.get("/orders", params={"after": "p" + "A" * 30})
    assert shown.status_code == 200 and "<h1>Orders</h1>" in shown.text
    assert "names no place in this list: here is the first page" in shown.text
