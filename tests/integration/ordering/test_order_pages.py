"""The orders list pages both ways: ``after`` (older) and ``before`` (newer) an order,
with ``Link`` rel="next" and rel="prev" (what the Orders page's links follow)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.links import links, walk

pytestmark = pytest.mark.postgres


async def test_orders_page_older_and_newer(ordering: httpx.AsyncClient) -> None:
    ids = []
    for n in range(7):
        body = {"customerName": f"c{n}", "productId": str(uuid.uuid4())}
        ids.append((await ordering.post("/api/ordering/order", json=body)).json()["id"])
    newest_first = ids[::-1]

    pages, last = await walk(ordering, "/api/ordering/order?limit=3")
    assert [[o["id"] for o in page] for page in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
    ]
    # A full page links to the one before it, which may be empty (as a full last page
    # links to an empty one): knowing would cost a row more.
    back, _ = await walk(ordering, links(last)["prev"], rel="prev")
    assert [[o["id"] for o in page] for page in back] == [newest_first[3:6], newest_first[0:3], []]
    newer = await ordering.get("/api/ordering/order", params={"before": ids[0], "limit": 2})
    assert [o["id"] for o in newer.json()] == [ids[2], ids[1]]  # still newest first
    both = await ordering.get("/api/ordering/order", params={"before": ids[0], "after": ids[1]})
    assert both.status_code == 422


async def test_a_newer_page_reads_the_index_not_the_table(ordering_db: str) -> None:
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
        sql = compiled(service.orders_page(limit=50, before=deep), engine)
    finally:
        await engine.dispose()

    plan = await explain(ordering_db, sql)

    scan = index_scan(plan, "ix_orders_created_at_id")
    assert scan["Scan Direction"] == "Forward"
    assert not [node for node in plan if node["Node Type"] == "Sort"], plan
    assert scan["Actual Rows"] == 50  # the page, not the 29,900 orders after it
