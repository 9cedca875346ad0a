"""The products list pages by keyset: ``after`` / ``before`` a product's id, sorted by
name then id, with ``Link: <…>; rel="next"`` (and ``"prev"``) as the orders list has."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.links import links, walk

pytestmark = pytest.mark.postgres

PRODUCTS = "/api/catalog/products"


async def make(catalog: httpx.AsyncClient, names: list[str]) -> list[tuple[str, str]]:
    """Create products named ``names``; (name, id) of each, in the listing's order."""
    made = []
    for name in names:
        created = await catalog.post(PRODUCTS, json={"name": name, "price": 1, "stockCount": 1})
        assert created.status_code == 201, created.text
        made.append((name, created.json()["id"]))
    # By name, ties by id (a uuid sorts as its hex text on both databases).
    return sorted(made, key=lambda pair: (pair[0], uuid.UUID(pair[1]).hex))


async def check_paging(catalog: httpx.AsyncClient) -> None:
    expected = await make(catalog, ["Pear", "Apple", "Fig", "Apple", "Kiwi", "Pear", "Plum"])
    ids = [product_id for _, product_id in expected]

    pages, last = await walk(catalog, f"{PRODUCTS}?limit=3")
    assert [[p["id"] for p in page] for page in pages] == [ids[0:3], ids[3:6], ids[6:7]]
    assert "next" not in links(last)  # a short page is the last

    # A full page links to the one before it, which may be empty (as a full last page
    # links to an empty one).
    back, _ = await walk(catalog, links(last)["prev"], rel="prev")
    assert [[p["id"] for p in page] for page in back] == [ids[3:6], ids[0:3], []]
    first = await catalog.get(PRODUCTS, params={"before": ids[3], "limit": 5})
    assert [p["id"] for p in first.json()] == ids[0:3]
    assert "prev" not in links(first)  # a short page read before an id is the first

    # skip counts from the cursor; a full last page links to an empty one.
    skipped = await catalog.get(PRODUCTS, params={"after": ids[1], "skip": 1, "limit": 2})
    assert [p["id"] for p in skipped.json()] == ids[3:5]
    end = await catalog.get(PRODUCTS, params={"after": ids[3], "limit": 3})
    assert [p["id"] for p in end.json()] == ids[4:7]
    assert (await catalog.get(links(end)["next"])).json() == []


async def check_refusals(catalog: httpx.AsyncClient) -> None:
    gone = await catalog.get(PRODUCTS, params={"after": str(uuid.uuid4())})
    assert gone.status_code == 404 and "start again" in gone.json()["detail"]
    both = await catalog.get(PRODUCTS, params={"after": str(uuid.uuid4()),
                                               "before": str(uuid.uuid4())})  # fmt: skip
    assert both.status_code == 422 and "not both" in str(both.json()["detail"])


async def test_products_page_by_keyset_both_ways(catalog: httpx.AsyncClient) -> None:
    await check_paging(catalog)
    await check_refusals(catalog)


@pytest.mark.parametrize("direction", ["after", "before"])
async def test_a_deep_products_page_reads_the_index_not_the_table(
    catalog_db: str, direction: str
) -> None:
    from app.catalog import service
    from cloudcrm_outbox.storage.engine import make_engine
    from tests.conftest import query
    from tests.support.plans import compiled, explain, index_scan

    await query(
        catalog_db,
        "INSERT INTO products (id, name, price, stock_count) SELECT gen_random_uuid(), "
        "'Product ' || lpad(n::text, 6, '0'), 1, 1 FROM generate_series(1, 30000) AS n",
    )
    await query(catalog_db, "ANALYZE products")
    [(deep,)] = await query(
        catalog_db, "SELECT id FROM products ORDER BY name, id LIMIT 1 OFFSET 15000"
    )
    engine = make_engine(catalog_db)
    try:
        sql = compiled(service.products_page(limit=50, **{direction: deep}), engine)
    finally:
        await engine.dispose()

    plan = await explain(catalog_db, sql)

    scan = index_scan(plan, "ix_products_name_id")
    assert not [node for node in plan if node["Node Type"] == "Sort"], plan
    assert scan["Actual Rows"] == 50  # the page, not the 15,000 products before it
