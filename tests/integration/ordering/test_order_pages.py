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
    back, first = await walk(ordering, links(last)["prev"], rel="prev")
    assert [[o["id"] for o in page] for page in back] == [newest_first[3:6], newest_first[0:3]]
    assert "prev" not in links(first)
    newer = await ordering.get("/api/ordering/order", params={"before": ids[0], "limit": 2})
    assert [o["id"] for o in newer.json()] == [ids[2], ids[1]]  # still newest first
    both = await ordering.get("/api/ordering/order", params={"before": ids[0], "after": ids[1]})
    assert both.status_code == 422
