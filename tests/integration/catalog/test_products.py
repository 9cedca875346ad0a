"""Catalog's CRUD and integration API, and the bad inputs each must refuse."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import count, query

# An id no row has (the databases are fresh); fixed, so that every test process collects
# the same parametrized ids.
NO_SUCH_ID = "0b1d5e6f-0000-4000-8000-000000000404"

pytestmark = pytest.mark.postgres

PRODUCTS = "/api/catalog/products"
BY_IDS = "/integration-api/catalog/products/by-ids"


async def create(catalog: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Product A", "price": 9.99, "stockCount": 53} | fields
    response = await catalog.post(PRODUCTS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_read_update_delete(catalog: httpx.AsyncClient, catalog_db: str) -> None:
    product = await create(catalog)
    assert product == {
        "id": product["id"],
        "name": "Product A",
        "price": 9.99,
        "stockCount": 53,
        "version": 1,
    }

    assert (await catalog.get(f"{PRODUCTS}/{product['id']}")).json() == product

    replaced = await catalog.put(
        f"{PRODUCTS}/{product['id']}", json={"name": "Product B", "price": 0, "stockCount": 7}
    )
    assert replaced.status_code == 200
    assert replaced.json() == {
        "id": product["id"],
        "name": "Product B",
        "price": 0.0,
        "stockCount": 7,
        "version": 2,
    }
    assert await query(catalog_db, "SELECT name, price::text, stock_count FROM products") == [
        ("Product B", "0.00", 7)
    ]

    assert (await catalog.delete(f"{PRODUCTS}/{product['id']}")).status_code == 204
    assert (await catalog.get(f"{PRODUCTS}/{product['id']}")).status_code == 404
    assert await count(catalog_db, "products") == 0


async def test_counts_accept_whole_floats(catalog: httpx.AsyncClient) -> None:
    created = await create(catalog, price=1.05, stockCount=7.0)
    assert created["price"] == 1.05 and created["stockCount"] == 7
    exponent = await catalog.post(
        PRODUCTS,
        content=b'{"name": "E", "price": 1, "stockCount": 7e0}',
        headers={"content-type": "application/json"},
    )
    assert exponent.status_code == 201 and exponent.json()["stockCount"] == 7, exponent.text
    for huge in (b"1e999999999", b"7.5"):
        refused = await catalog.post(
            PRODUCTS,
            content=b'{"name": "E", "price": 1, "stockCount": ' + huge + b"}",
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 422, refused.text


async def test_list_is_paginated_by_name(catalog: httpx.AsyncClient) -> None:
    for name in ("c", "a", "b"):
        await create(catalog, name=name)
    names = [p["name"] for p in (await catalog.get(PRODUCTS)).json()]
    assert names == ["a", "b", "c"]
    page = (await catalog.get(PRODUCTS, params={"skip": 1, "limit": 1})).json()
    assert [p["name"] for p in page] == ["b"]


async def test_by_ids_returns_the_known_products_only(catalog: httpx.AsyncClient) -> None:
    first, second = await create(catalog, name="first"), await create(catalog, name="second")
    unknown = str(uuid.uuid4())

    response = await catalog.post(BY_IDS, json=[first["id"], unknown, second["id"], first["id"]])

    assert response.status_code == 200
    assert sorted(p["name"] for p in response.json()) == ["first", "second"]
    assert (await catalog.post(BY_IDS, json=[])).json() == []


def product(**overrides: Any) -> dict[str, Any]:
    return {"name": "P", "price": 1.5, "stockCount": 1} | overrides


BAD_PRODUCTS: list[tuple[str, bytes, int]] = [
    ("empty name", json.dumps(product(name="")).encode(), 422),
    ("201-char name", json.dumps(product(name="n" * 201)).encode(), 422),
    ("NUL in name", json.dumps(product(name="\u0000")).encode(), 422),
    ("1 MB name", json.dumps(product(name="x" * 1_000_000)).encode(), 413),
    ("negative price", json.dumps(product(price=-0.01)).encode(), 422),
    ("NaN price", b'{"name": "P", "price": NaN, "stockCount": 1}', 422),
    ("Infinity price", b'{"name": "P", "price": Infinity, "stockCount": 1}', 422),
    ("huge price", json.dumps(product(price=1e300)).encode(), 422),
    ("price as string", json.dumps(product(price="1.50")).encode(), 422),
    ("price as bool", json.dumps(product(price=True)).encode(), 422),
    ("negative stock", json.dumps(product(stockCount=-1)).encode(), 422),
    ("stock over int4", json.dumps(product(stockCount=2**31)).encode(), 422),
    ("fractional stock", json.dumps(product(stockCount=1.5)).encode(), 422),
    ("stock as string", json.dumps(product(stockCount="1")).encode(), 422),
    ("missing stock", json.dumps({"name": "P", "price": 1}).encode(), 422),
    ("unknown field", json.dumps(product(colour="red")).encode(), 422),
    ("malformed JSON", b'{"name": ', 422),
    ("JSON array", b"[]", 422),
]


@pytest.mark.parametrize(
    ("body", "status"), [(b, s) for _, b, s in BAD_PRODUCTS], ids=[n for n, _, _ in BAD_PRODUCTS]
)
async def test_bad_product_is_rejected_and_nothing_is_written(
    catalog: httpx.AsyncClient, catalog_db: str, body: bytes, status: int
) -> None:
    headers = {"content-type": "application/json"}

    created = await catalog.post(PRODUCTS, content=body, headers=headers)
    existing = await create(catalog, name="kept")
    replaced = await catalog.put(f"{PRODUCTS}/{existing['id']}", content=body, headers=headers)

    assert created.status_code == status, created.text
    assert replaced.status_code == status, replaced.text
    assert created.json()["detail"] and replaced.json()["detail"]
    assert await query(catalog_db, "SELECT name, stock_count FROM products") == [("kept", 53)]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", f"{PRODUCTS}/not-a-uuid", None, 422),
        ("GET", f"{PRODUCTS}/{NO_SUCH_ID}", None, 404),
        ("PUT", f"{PRODUCTS}/{NO_SUCH_ID}", product(), 404),
        ("DELETE", f"{PRODUCTS}/{NO_SUCH_ID}", None, 404),
        ("DELETE", f"{PRODUCTS}/not-a-uuid", None, 422),
        ("GET", f"{PRODUCTS}?limit=0", None, 422),
        ("GET", f"{PRODUCTS}?skip=-5", None, 422),
        ("POST", BY_IDS, ["not-a-uuid"], 422),
        ("POST", BY_IDS, {"ids": []}, 422),
        ("POST", BY_IDS, [str(uuid.uuid4()) for _ in range(1001)], 422),
    ],
)
async def test_bad_requests_are_4xx_and_write_nothing(
    catalog: httpx.AsyncClient, catalog_db: str, method: str, path: str, body: Any, status: int
) -> None:
    response = await catalog.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert await count(catalog_db, "products") == 0


@pytest.mark.parametrize(
    ("state", "answer"),
    [("reserved", 409), ("released", 204), ("rejected", 204), ("cancelled_first", 204)],
)
async def test_a_product_an_order_holds_stock_of_cannot_be_deleted(
    catalog: httpx.AsyncClient, catalog_db: str, state: str, answer: int
) -> None:
    created = await catalog.post(
        "/api/catalog/products", json={"name": "Held", "price": 1, "stockCount": 5}
    )
    product = created.json()["id"]
    await query(
        catalog_db,
        "INSERT INTO stock_reservations (order_id, product_id, quantity, state) "
        "VALUES (gen_random_uuid(), %s, 2, %s)",
        uuid.UUID(product), state,
    )  # fmt: skip
    deleted = await catalog.delete(f"/api/catalog/products/{product}")
    assert deleted.status_code == answer, deleted.text
    if answer == 409:
        assert "live reservation" in deleted.json()["detail"]
        assert "cancel those orders first" in deleted.json()["detail"]
        assert (await catalog.get(f"/api/catalog/products/{product}")).status_code == 200
