"""The Orders and Products pages page through every row (newer/older, previous/next), and
a 200-character name without spaces (a legal one) never widens a page beyond the
viewport, at a phone's width (390 px) and a laptop's (1,280 px); nor does a dead letter's
reason quoting 99 characters of a message's header on the Operations page. A product
beyond the 500 the Orders page's select lists is ordered through its Order link."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.flows import sign_in
from tests.e2e.processes import command_env, running
from tests.support.auth import HEADERS
from tests.support.servers import free_port

ORDERS = 106  # more than two pages of orders
PRODUCTS = 502  # with the three demo products, more than the 500 a page once showed
PAGE = 50  # rows per page
# Legal names: 200 characters, no space to break at (the product's sorts first).
LONG_PRODUCT = "A" * 200
LONG_CUSTOMER = "W" * 200
# A header a consumer quotes in its dead letter's reason (its first 99 characters).
LONG_VERSION = "M" * 255  # a wide letter


@dataclass(frozen=True)
class Shop:
    url: str
    order_ids: list[str]  # oldest first
    product_names: list[str]
    product_ids: dict[str, str]  # by name


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """``dev`` on the embedded defaults with 106 orders (the newest one by a customer with a
    200-character name, of a product with one) and 505 products."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cwd = tmp_path_factory.mktemp("shop")
    with running("dev", "--port", str(port), env=command_env(BROKER_URL="memory://"),
                 ready_url=f"{url}/docs", cwd=cwd):  # fmt: skip
        # The products straight into catalog's SQLite file, in one transaction (502 POSTs
        # would take the test's time, and the API is not what is tested here).
        names = [f"Item {n:03d}" for n in range(PRODUCTS - 1)] + [LONG_PRODUCT]
        products = {name: uuid.uuid4() for name in names}
        with sqlite3.connect(cwd / "var" / "catalog.db", timeout=10) as catalog:
            catalog.executemany(
                "INSERT INTO products (id, name, price, stock_count) VALUES (?, ?, 1, 1000)",
                [(product_id.hex, name) for name, product_id in products.items()],
            )
        with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as api:
            order_ids = []
            for n in range(ORDERS):
                last = n == ORDERS - 1
                product = products[LONG_PRODUCT if last else "Item 000"]
                customer = LONG_CUSTOMER if last else f"Customer {n:03d}"
                body = {"customerName": customer, "productId": str(product)}
                placed = api.post("/api/ordering/order", json=body)
                assert placed.status_code == 201, placed.text
                order_ids.append(placed.json()["id"])
            _dead_letter_quoting(cwd / "var" / "ordering.db", api)
        product_names = sorted([*names, "Product A", "Product B", "Product C"])
        ids = {name: str(product_id) for name, product_id in products.items()}
        yield Shop(url, order_ids, product_names, ids)


def _dead_letter_quoting(ordering: Path, api: httpx.Client) -> None:
    """An OrderPlaced whose version header is LONG_VERSION, written to ordering's outbox by
    hand: the relay publishes it, catalog's consumer dead-letters it quoting the header."""
    with sqlite3.connect(ordering, timeout=10) as database:
        database.execute(
            "INSERT INTO outbox (id, event_type, payload, headers) VALUES (?, ?, ?, ?)",
            (uuid.uuid4().hex, "OrderPlaced", "{}", json.dumps({"event_version": LONG_VERSION})),
        )
    deadline = time.monotonic() + 30
    while not api.get("/admin/api/catalog/dlq").json()["deadLetters"]:
        assert time.monotonic() < deadline, "the long-reasoned dead letter never came"
        time.sleep(0.1)


def _rows(page: Page, attribute: str) -> list[str]:
    """The ``attribute`` of every row of the page's table, in order (one call)."""
    found: list[str] = page.eval_on_selector_all(
        f"tr[{attribute}]", f"rows => rows.map(row => row.getAttribute('{attribute}'))"
    )
    return found


def _walk(page: Page, attribute: str, link: str) -> list[str]:
    """The rows of this page and of each page the link named ``link`` leads to, in turn,
    until a page has no such link."""
    seen = _rows(page, attribute)
    following = page.locator("nav.pager a", has_text=link)
    while following.count():
        _follow(page, following)
        seen += _rows(page, attribute)
    return seen


def _walk_back(page: Page, attribute: str, link: str) -> list[str]:
    """As ``_walk``, the pages put back in the listing's order."""
    seen = _rows(page, attribute)
    following = page.locator("nav.pager a", has_text=link)
    while following.count():
        _follow(page, following)
        seen = _rows(page, attribute) + seen
    return seen


def _follow(page: Page, link: Locator) -> None:
    """Click ``link`` and wait for the page it leads to to load."""
    before = page.url
    link.click()
    page.wait_for_url(lambda url: url != before)


def test_every_order_can_be_reached_and_the_oldest_cancelled(page: Page, shop: Shop) -> None:
    sign_in(page, shop.url)
    page.goto(f"{shop.url}/orders")
    expect(page.get_by_role("link", name="Older")).to_be_visible()
    assert page.get_by_role("link", name="Newer").count() == 0
    assert _walk(page, "data-order", "Older") == shop.order_ids[::-1]  # each once, newest first

    oldest = page.locator(f'tr[data-order="{shop.order_ids[0]}"]')
    oldest.get_by_role("button", name=re.compile("Cancel")).click()
    expect(page.get_by_role("status")).to_have_text("order cancelled")
    # Back on the page the order was on, not the first one.
    expect(page.locator(f'tr[data-order="{shop.order_ids[0]}"] td.state')).to_have_text("Cancelled")
    expect(page.get_by_role("link", name="Newer")).to_be_visible()
    assert _walk_back(page, "data-order", "Newer") == shop.order_ids[::-1]


def test_every_product_can_be_reached(page: Page, shop: Shop) -> None:
    sign_in(page, shop.url)
    page.goto(f"{shop.url}/products")
    expect(page.get_by_role("link", name="Next")).to_be_visible()
    assert page.get_by_role("link", name="Previous").count() == 0
    assert len(shop.product_names) == PRODUCTS + 3
    assert _walk(page, "data-product", "Next") == shop.product_names  # each once, by name
    expect(page.get_by_role("link", name="Previous")).to_be_visible()
    assert _walk_back(page, "data-product", "Previous") == shop.product_names


# The page, a long text on it, and the button of that text's row that must stay on screen.
LONG_TEXTS = {
    "/orders": (LONG_CUSTOMER, "Cancel"),
    "/products": (LONG_PRODUCT, "Delete"),
    "/operations": (LONG_VERSION[:90], "Purge"),
}


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("path", list(LONG_TEXTS))
def test_a_long_name_keeps_the_page_within_the_viewport(
    page: Page, shop: Shop, path: str, width: int
) -> None:
    sign_in(page, shop.url)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{shop.url}{path}")
    long, action = LONG_TEXTS[path]
    row = page.locator("tr", has_text=long).first
    expect(row).to_be_attached()
    assert page.evaluate("document.documentElement.scrollWidth") == width
    # The actions of the long name's row are on screen.
    _on_screen(row.get_by_role("button", name=re.compile(action)).first, width)
    if path == "/products":  # and so is its Order link
        _on_screen(row.get_by_role("link", name=f"Order {long}"), width)


def _on_screen(element: Locator, width: int) -> None:
    box = element.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


@pytest.mark.parametrize("width", [390, 1280])
def test_a_long_named_product_chosen_keeps_the_orders_page_within_the_viewport(
    page: Page, shop: Shop, width: int
) -> None:
    sign_in(page, shop.url)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{shop.url}/orders?product={shop.product_ids[LONG_PRODUCT]}")
    expect(page.locator("select[name=productId]")).to_have_value(shop.product_ids[LONG_PRODUCT])
    expect(page.get_by_text("Showing the first 500 products by name")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") == width
    _on_screen(page.get_by_role("button", name="Place order"), width)


def test_a_deleted_products_page_position_starts_again(page: Page, shop: Shop) -> None:
    """A products page reached by a product that was deleted since (the link names it) is
    the first page, said so, rather than an error."""
    sign_in(page, shop.url)
    page.goto(f"{shop.url}/products?after={uuid.uuid4()}")
    expect(page.get_by_role("alert")).to_contain_text("first page")
    assert _rows(page, "data-product") == shop.product_names[:PAGE]


# Last in this module: the order it places would be one more for the tests of the orders.
def test_a_product_beyond_the_selects_500_is_ordered_through_its_order_link(
    page: Page, shop: Shop
) -> None:
    late = "Item 500"  # far beyond the first 500 by name
    assert shop.product_names.index(late) >= 500
    sign_in(page, shop.url)
    page.goto(f"{shop.url}/orders")
    hint = page.get_by_text("Showing the first 500 products by name")
    expect(hint).to_contain_text("use its Order link on the Products page")
    assert page.locator("select[name=productId]").locator("option", has_text=late).count() == 0

    page.goto(f"{shop.url}/products")
    while not page.locator(f'tr[data-product="{late}"]').count():
        _follow(page, page.locator("nav.pager a", has_text="Next"))
    _follow(page, page.get_by_role("link", name=f"Order {late}"))
    expect(page).to_have_url(re.compile(r"/orders\?product="))
    expect(page.locator("select[name=productId]")).to_have_value(shop.product_ids[late])
    expect(page.get_by_role("alert")).to_have_count(0)
    page.get_by_label("Customer", exact=True).fill("Late Buyer")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_role("status")).to_have_text("order placed")
    row = page.locator("#orders tbody tr").first
    expect(row).to_contain_text("Late Buyer")
    expect(row).to_contain_text(late)
    expect(row.locator("td.state")).to_have_text("Confirmed")
