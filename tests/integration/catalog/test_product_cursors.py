"""The products list's positions and bounds on each backend (PostgreSQL, then SQLite):
``skip`` bounded as the orders list's, and Link cursors that carry the position itself,
so that a rename or a delete between two reads neither skips nor repeats a product."""

from __future__ import annotations

import httpx

PRODUCTS = "/api/catalog/products"


async def test_skip_is_bounded_as_the_orders_list_is(catalog_api: httpx.AsyncClient) -> None:
    deepest = await catalog_api.get(PRODUCTS, params={"skip": 10_000})
    too_deep = await catalog_api.get(PRODUCTS, params={"skip": 10_001})

    assert deepest.status_code == 200
    assert too_deep.status_code == 422
    [error] = too_deep.json()["detail"]
    assert error["loc"] == ["query", "skip"] and "10000" in error["msg"]
