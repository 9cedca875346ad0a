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
from app.core.settings import Settings
from app.ordering.app import create_app as create_ordering
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


async def test_keyset_pages_follow_the_link_through_every_order_once(ordering_db: str) -> None:
    from tests.conftest import query

    async with ordering_with_catalog_at(ordering_db, f"http://127.0.0.1:{free_port()}") as ordering:
        for i in range(7):
            await place(ordering, str(uuid.uuid4()), f"c{i}")
        # Three orders placed in the same microsecond: ties are broken by id.
        await query(
            ordering_db,
            "UPDATE orders SET created_at = '2026-11-30 10:00:00+00' "
            "WHERE customer_name IN ('c2', 'c3', 'c4')",
        )
        everything = [o["id"] for o in (await ordering.get("/api/ordering/order")).json()]
        walked: list[str] = []
        url: str | None = "/api/ordering/order?limit=2"
        while url is not None:
            page = await ordering.get(url)
            assert page.status_code == 200
            walked += [o["id"] for o in page.json()]
            url = page.links.get("next", {}).get("url")
            assert (url is None) == (len(page.json()) < 2)
        by_skip = []
        for skip in range(0, 8, 2):
            listed = await ordering.get("/api/ordering/order", params={"skip": skip, "limit": 2})
            by_skip += [o["id"] for o in listed.json()]

    assert walked == everything == by_skip and len(set(walked)) == 7


async def test_a_bad_cursor_is_a_clear_422(ordering_db: str) -> None:
    async with ordering_with_catalog_at(ordering_db, f"http://127.0.0.1:{free_port()}") as ordering:
        order = await place(ordering, str(uuid.uuid4()))
        unknown = await ordering.get("/api/ordering/order", params={"after": str(uuid.uuid4())})
        both = await ordering.get("/api/ordering/order", params={"after": order, "skip": 1})
        garbage = await ordering.get("/api/ordering/order", params={"after": "page-2"})
        last = await ordering.get("/api/ordering/order", params={"after": order})
        too_deep = await ordering.get("/api/ordering/order", params={"skip": 10_001})

    assert unknown.status_code == 404 and "takes the id of a listed order" in unknown.text
    assert both.status_code == 200 and both.json() == []  # skip counts from the cursor
    assert garbage.status_code == 422
    assert last.status_code == 200 and last.json() == []  # after the oldest: nothing
    assert too_deep.status_code == 422 and "skip stops at 10,000" in too_deep.text
    assert "after=" in too_deep.json()["detail"][0]["msg"]


async def test_a_deep_keyset_page_reads_the_index_not_the_table(ordering_db: str) -> None:
    from app.ordering import service
    from cloudcrm_outbox.storage.engine import make_engine
    from tests.conftest import query
    from tests.support.plans import compiled, explain, index_scan

    await query(
        ordering_db,
        "INSERT INTO orders (id, customer_name, product_id, quantity, state, created_at) "
        "SELECT gen_random_uuid(), 'Ann', gen_random_uuid(), 1, 'Confirmed', "
        "now() - n * interval '1 second' FROM generate_series(1, 30000) AS n",
    )
    await query(ordering_db, "ANALYZE orders")
    [(deep,)] = await query(
        ordering_db, "SELECT id FROM orders ORDER BY created_at LIMIT 1 OFFSET 100"
    )
    engine = make_engine(ordering_db)
    try:
        sql = compiled(service.orders_page(limit=50, after=deep), engine)
    finally:
        await engine.dispose()

    plan = await explain(ordering_db, sql)

    scan = index_scan(plan, "ix_orders_created_at_id")
    assert scan["Scan Direction"] == "Backward"
    assert not [node for node in plan if node["Node Type"] == "Sort"], plan
    assert scan["Actual Rows"] == 50  # the page, not the 29,900 orders before it
