"""The Orders page's product select: it says when the catalog holds more products than it
lists, shows the product a Products page's Order link names (listed or not) as chosen, and
says in words, on the page itself, when that link names no product."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from app.pages.api_client import ApiError
from tests.support.pages import signed_in_pages

SHOWN = 500  # what the select lists at most (the catalog API's largest page)
HINT = "Showing the first 500 products by name"


def _product(n: int) -> dict[str, Any]:
    return {"id": str(uuid.UUID(int=n + 1)), "name": f"Item {n:04d}", "price": 1,
            "stockCount": 5, "version": 1}  # fmt: skip


def _catalog(count: int) -> Any:
    """Answers as a catalog of ``count`` products (by name) would; no orders."""
    products = [_product(n) for n in range(count)]
    by_id = {product["id"]: product for product in products}

    def answer(method: str, path: str, body: Any) -> Any:
        if path.startswith("/api/ordering/"):
            return []
        if path.startswith("/api/catalog/products?"):
            limit = int(re.search(r"limit=(\d+)", path)[1])  # type: ignore[index]
            after = re.search(r"after=([0-9a-f-]+)", path)
            start = 0 if after is None else products.index(by_id[after[1]]) + 1
            return products[start : start + limit]
        product_id = path.removeprefix("/api/catalog/products/")
        if product_id in by_id:
            return by_id[product_id]
        raise ApiError(404, f"product {product_id} not found")

    return answer


def _selected(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]+)" selected>', html)


@pytest.mark.parametrize(("count", "hinted"), [(3, False), (SHOWN, False), (SHOWN + 1, True)])
async def test_the_form_says_when_more_products_exist_than_it_lists(
    count: int, hinted: bool
) -> None:
    async with signed_in_pages() as pages:
        pages.apis.answer = _catalog(count)
        shown = await pages.client.get("/orders")
        assert shown.status_code == 200
        assert shown.text.count("<option ") == min(count, SHOWN)
        assert (HINT in shown.text) is hinted
        assert ('href="/products"' in shown.text) or not hinted


async def test_a_product_beyond_the_list_is_shown_chosen() -> None:
    late = _product(SHOWN + 7)
    async with signed_in_pages() as pages:
        pages.apis.answer = _catalog(SHOWN + 10)
        shown = await pages.client.get("/orders", params={"product": late["id"]})
        assert shown.status_code == 200
        assert _selected(shown.text) == [late["id"]]
        assert f">{late['name']} (5 in stock)</option>" in shown.text
        assert shown.text.count("<option ") == SHOWN + 1
        assert HINT in shown.text and 'role="alert"' not in shown.text


async def test_a_listed_product_is_chosen_once() -> None:
    listed = _product(2)
    async with signed_in_pages() as pages:
        pages.apis.answer = _catalog(3)
        shown = await pages.client.get("/orders", params={"product": listed["id"].upper()})
        assert shown.status_code == 200
        assert _selected(shown.text) == [listed["id"]]
        assert shown.text.count("<option ") == 3


@pytest.mark.parametrize("asked", ["", "42", "not-a-uuid", "<script>x</script>", "é" * 40])
async def test_a_malformed_product_in_the_address_is_said_on_the_page(asked: str) -> None:
    async with signed_in_pages() as pages:
        pages.apis.answer = _catalog(3)
        shown = await pages.client.get("/orders", params={"product": asked})
        assert shown.status_code == 200
        assert "<h1>Orders</h1>" in shown.text
        notice = re.search(r'role="alert">([^<]*)</p>', shown.text)
        assert notice is not None and "not a product id" in notice[1], shown.text
        assert not asked or asked not in notice[1]  # fixed words: the address is anyone's
        assert _selected(shown.text) == [] and shown.text.count("<option ") == 3
        # No product was read by an id the address made up.
        assert not [path for _, path, _ in pages.apis.asked if "/products/" in path]


async def test_an_unknown_product_in_the_address_is_said_on_the_page() -> None:
    gone = str(uuid.uuid4())
    async with signed_in_pages() as pages:
        pages.apis.answer = _catalog(3)
        shown = await pages.client.get("/orders", params={"product": gone})
        assert shown.status_code == 200
        assert "<h1>Orders</h1>" in shown.text
        assert re.search(r'role="alert">[^<]*not in the catalog', shown.text), shown.text
        assert _selected(shown.text) == [] and shown.text.count("<option ") == 3
        assert ("GET", f"/api/catalog/products/{gone}", None) in pages.apis.asked


async def test_products_rows_link_to_ordering_them() -> None:
    products = [_product(n) for n in range(3)]
    async with signed_in_pages() as pages:
        pages.apis.answer = lambda method, path, body: products
        shown = await pages.client.get("/products")
        for product in products:
            assert (f'<a href="/orders?product={product["id"]}" '
                    f'aria-label="Order {product["name"]}">Order</a>') in shown.text  # fmt: skip
