"""Prices are kept exactly as typed, in cents: more than two decimals is refused (never
rounded), judged on the JSON text's decimal value rather than on the binary float it
would parse to; -0 is stored as 0. On PostgreSQL and on SQLite."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.sql import sql

PRODUCTS = "/api/catalog/products"
JSON = {"content-type": "application/json"}

# As typed in the JSON text. 0.1000000000000000055 and 1.00000000000000001 parse to the
# floats 0.1 and 1.0: only their text shows the extra decimals.
REFUSED = [
    "9.999",
    "1.005",
    "0.001",
    "1e-3",
    "0.1000000000000000055",
    "1.00000000000000001",
    "999999999999.985",
]
# As typed → as stored.
KEPT = [
    ("1.5", "1.50"),
    ("1.50", "1.50"),
    ("1.500", "1.50"),
    ("0.07", "0.07"),
    ("12", "12.00"),
    ("1e2", "100.00"),
    ("1.1e1", "11.00"),
    ("999999999999.99", "999999999999.99"),
]
NEGATIVE_ZERO = ["-0", "-0.0", "-0.00", "-0e5"]


def _body(price: str, **fields: Any) -> bytes:
    text = json.dumps({"name": "P", "stockCount": 1} | fields)
    return text[:-1].encode() + b', "price": ' + price.encode() + b"}"


def _patch(price: str) -> bytes:
    return b'{"price": ' + price.encode() + b"}"


async def _create(catalog: httpx.AsyncClient, price: str = "1") -> str:
    created = await catalog.post(PRODUCTS, content=_body(price), headers=JSON)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _stored(catalog_url: str) -> list[Decimal]:
    rows = await sql(catalog_url, "SELECT CAST(price AS TEXT) FROM products ORDER BY name")
    return [Decimal(text) for (text,) in rows]


@pytest.mark.parametrize("price", REFUSED)
async def test_a_price_with_more_than_two_decimals_is_refused_not_rounded(
    catalog_api: httpx.AsyncClient, catalog_url: str, price: str
) -> None:
    path = f"{PRODUCTS}/{await _create(catalog_api)}"
    answers = [
        await catalog_api.post(PRODUCTS, content=_body(price), headers=JSON),
        await catalog_api.put(path, content=_body(price), headers=JSON),
        await catalog_api.patch(path, content=_patch(price), headers=JSON),
    ]
    for answer in answers:
        assert answer.status_code == 422, (answer.request.method, answer.text)
        [error] = answer.json()["detail"]
        assert error["loc"][-1] == "price"
        assert "at most two decimals" in error["msg"], error
    assert await _stored(catalog_url) == [Decimal("1")]


@pytest.mark.parametrize(("price", "kept"), KEPT)
async def test_a_price_of_cents_is_kept_exactly(
    catalog_api: httpx.AsyncClient, catalog_url: str, price: str, kept: str
) -> None:
    created = await catalog_api.post(PRODUCTS, content=_body(price), headers=JSON)
    assert created.status_code == 201, created.text
    assert Decimal(str(created.json()["price"])) == Decimal(kept)
    assert await _stored(catalog_url) == [Decimal(kept)]


@pytest.mark.parametrize("price", NEGATIVE_ZERO)
async def test_negative_zero_is_stored_and_shown_as_zero(
    catalog_api: httpx.AsyncClient, catalog_url: str, price: str
) -> None:
    created = await catalog_api.post(PRODUCTS, content=_body(price), headers=JSON)
    path = f"{PRODUCTS}/{created.json()['id']}"
    replaced = await catalog_api.put(path, content=_body(price), headers=JSON)
    patched = await catalog_api.patch(path, content=_patch(price), headers=JSON)
    for answer in (created, replaced, patched, await catalog_api.get(path)):
        assert answer.status_code in (200, 201), answer.text
        assert '"price":0.0' in answer.text and '"price":-' not in answer.text, answer.text
    [(text,)] = await sql(catalog_url, "SELECT CAST(price AS TEXT) FROM products")
    assert not str(text).startswith("-"), text
