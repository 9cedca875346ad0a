"""Listing orders fills product names from catalog, and survives catalog being away."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI, Response

from app.catalog.app import create_app as create_catalog
from app.ordering.app import create_app as create_ordering
from app.settings import Settings
from tests.support.auth import HEADERS
from tests.support.servers import asgi_client, free_port, serving, silent_server

pytestmark = pytest.mark.postgres


@asynccontextmanager
async def ordering_with_catalog_at(
    ordering_db: str, catalog_url: str, catalog_timeout: float = 1.0
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        ordering_database_url=ordering_db,
        catalog_api_url=catalog_url,
        catalog_api_timeout_seconds=catalog_timeout,
    )
    async with asgi_client(create_ordering(settings)) as client:
        yield client


async def place(ordering: httpx.AsyncClient, product_id: str, name: str = "Ann") -> str:
    body = {"customerName": name, "productId": product_id}
    response = await ordering.post("/api/ordering/order", json=body)
    assert response.status_code == 201, response.text
    order_id: str = response.json()["id"]
    return order_id


async def test_orders_are_listed_with_product_names_from_catalog(
    ordering_db: str, catalog_db: str
) -> None:
    catalog_app = create_catalog(Settings(catalog_database_url=catalog_db))
    async with (
        serving(catalog_app) as catalog_url,
        httpx.AsyncClient(headers=HEADERS, base_url=catalog_url) as api,
    ):
        products = {}
        for name in ("Product A", "Product B"):
            body = {"name": name, "price": 1, "stockCount": 5}
            products[name] = (await api.post("/api/catalog/products", json=body)).json()["id"]
        unknown = str(uuid.uuid4())

        async with ordering_with_catalog_at(ordering_db, catalog_url) as ordering:
            first = await place(ordering, products["Product A"], "first")
            second = await place(ordering, products["Product B"], "second")
            third = await place(ordering, products["Product A"], "third")
            orphan = await place(ordering, unknown, "orphan")

            listed = await ordering.get("/api/ordering/order")
            single = await ordering.get(f"/api/ordering/order/{second}")

    assert listed.status_code == 200
    names = {order["id"]: order["productName"] for order in listed.json()}
    assert names == {first: "Product A", second: "Product B", third: "Product A", orphan: None}
    assert single.status_code == 200
    assert single.json()["productName"] == "Product B"
    assert single.json()["customerName"] == "second"


async def test_list_is_paginated_newest_first(ordering_db: str) -> None:
    async with ordering_with_catalog_at(ordering_db, f"http://127.0.0.1:{free_port()}") as ordering:
        ids = [await place(ordering, str(uuid.uuid4()), f"c{i}") for i in range(5)]
        everything = (await ordering.get("/api/ordering/order")).json()
        page = (await ordering.get("/api/ordering/order", params={"skip": 1, "limit": 2})).json()

    assert [o["id"] for o in everything] == ids[::-1]
    assert [o["id"] for o in page] == ids[::-1][1:3]


async def test_catalog_unreachable_still_answers_200_without_names(ordering_db: str) -> None:
    async with ordering_with_catalog_at(ordering_db, f"http://127.0.0.1:{free_port()}") as ordering:
        order_id = await place(ordering, str(uuid.uuid4()))
        listed = await ordering.get("/api/ordering/order")
        single = await ordering.get(f"/api/ordering/order/{order_id}")

    assert listed.status_code == 200
    assert [(o["id"], o["productName"]) for o in listed.json()] == [(order_id, None)]
    assert single.status_code == 200 and single.json()["productName"] is None


async def test_catalog_that_never_answers_is_cut_off_by_the_timeout(ordering_db: str) -> None:
    async with (
        silent_server() as hung_url,
        ordering_with_catalog_at(ordering_db, hung_url, catalog_timeout=0.3) as ordering,
    ):
        await place(ordering, str(uuid.uuid4()))
        started = time.monotonic()
        listed = await ordering.get("/api/ordering/order")
        elapsed = time.monotonic() - started

    assert listed.status_code == 200
    assert listed.json()[0]["productName"] is None
    # Generous bound: the point is that it is the timeout, not an indefinite hang.
    assert elapsed < 5


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b"boom"), (200, b"not json"), (200, b'[{"id": "x"}]'), (200, b'{"a": 1}')],
)
async def test_catalog_answering_garbage_still_answers_200(
    ordering_db: str, status: int, body: bytes
) -> None:
    broken = FastAPI()

    @broken.post("/integration-api/catalog/products/by-ids")
    async def by_ids() -> Response:
        return Response(body, status_code=status, media_type="application/json")

    async with (
        serving(broken) as broken_url,
        ordering_with_catalog_at(ordering_db, broken_url) as ordering,
    ):
        await place(ordering, str(uuid.uuid4()))
        listed = await ordering.get("/api/ordering/order")

    assert listed.status_code == 200
    assert listed.json()[0]["productName"] is None
