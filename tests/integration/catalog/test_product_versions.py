"""A product's version: its ETag, `If-Match` on PUT, PATCH and DELETE (RFC 9110 §8.8.3,
§13.1.1), and PATCH as a JSON merge patch (RFC 7396), so that a client changing the price
never undoes the stock an order took meanwhile."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import query
from tests.support import postgres
from tests.support.catalog import stock_of
from tests.support.consuming import order_placed, publish, running_consumer, wait_until
from tests.support.sql import sql

PRODUCTS = "/api/catalog/products"
MERGE_PATCH = {"content-type": "application/merge-patch+json"}


async def _create(catalog: httpx.AsyncClient, **fields: Any) -> tuple[str, str]:
    """A new product: its path and its ETag."""
    body = {"name": "Product A", "price": 10, "stockCount": 10} | fields
    created = await catalog.post(PRODUCTS, json=body)
    assert created.status_code == 201, created.text
    return f"{PRODUCTS}/{created.json()['id']}", created.headers["etag"]


def _message(
    kind: str, order_id: str, product_id: str, quantity: int
) -> tuple[bytes, dict[str, Any]]:
    if kind == "OrderPlaced":
        body = order_placed(product_id, quantity, orderId=order_id)
    else:
        body = json.dumps(
            {"orderId": order_id, "productId": product_id, "quantity": quantity}
        ).encode()
    props = {"message_id": str(uuid.uuid4()), "type": kind, "content_type": "application/json"}
    return body, props


async def _applied(catalog_db: str, message: tuple[bytes, dict[str, Any]]) -> bool:
    rows = await query(catalog_db, "SELECT 1 FROM inbox WHERE message_id = %s",
                       message[1]["message_id"])  # fmt: skip
    return bool(rows)


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_a_stale_put_is_refused_and_a_patch_keeps_the_stock_an_order_took(
    catalog: httpx.AsyncClient, catalog_db: str, broker: str
) -> None:
    """The issue's scenario: stock 10, an order of 3 applied, then a client that read the
    product before it sends back stock 10 with a new price; the cancel must not make 13."""
    path, read_etag = await _create(catalog)
    product_id, order_id = path.rsplit("/", 1)[1], str(uuid.uuid4())
    assert (await catalog.get(path)).headers["etag"] == read_etag
    async with running_consumer(catalog_db, broker):
        placed = _message("OrderPlaced", order_id, product_id, 3)
        await publish(broker, [placed])
        await wait_until(lambda: _applied(catalog_db, placed), timeout=15)
        assert await stock_of(catalog_db, uuid.UUID(product_id)) == 7

        stale = await catalog.put(path, json={"name": "Product A", "price": 12, "stockCount": 10},
                                  headers={"If-Match": read_etag})  # fmt: skip
        assert stale.status_code == 412, stale.text
        assert "changed meanwhile" in stale.json()["detail"]
        now = stale.headers["etag"]
        assert now != read_etag and (await catalog.get(path)).headers["etag"] == now
        assert await stock_of(catalog_db, uuid.UUID(product_id)) == 7

        patched = await catalog.patch(path, json={"price": 12},
                                      headers={**MERGE_PATCH, "If-Match": now})  # fmt: skip
        assert patched.status_code == 200, patched.text
        assert patched.json()["price"] == 12 and patched.json()["stockCount"] == 7
        assert patched.headers["etag"] not in (now, read_etag)

        cancelled = _message("OrderCancelled", order_id, product_id, 3)
        await publish(broker, [cancelled])
        await wait_until(lambda: _applied(catalog_db, cancelled), timeout=15)
    assert await stock_of(catalog_db, uuid.UUID(product_id)) == 10
    final = await catalog.get(path)
    assert final.json()["stockCount"] == 10 and final.json()["price"] == 12
    assert final.headers["etag"] != patched.headers["etag"]  # the cancel changed it too


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_a_put_without_if_match_overwrites_as_the_readme_says(
    catalog: httpx.AsyncClient, catalog_db: str, broker: str
) -> None:
    """README, HTTP API: a PUT without If-Match replaces every field, the stock too, with
    what it sends, whatever changed since the client read it."""
    path, read_etag = await _create(catalog)
    product_id, order_id = path.rsplit("/", 1)[1], str(uuid.uuid4())
    async with running_consumer(catalog_db, broker):
        placed = _message("OrderPlaced", order_id, product_id, 3)
        await publish(broker, [placed])
        await wait_until(lambda: _applied(catalog_db, placed), timeout=15)

        blind = await catalog.put(path, json={"name": "Product A", "price": 12, "stockCount": 10})
        assert blind.status_code == 200, blind.text
        assert blind.json()["stockCount"] == 10 and blind.headers["etag"] != read_etag

        cancelled = _message("OrderCancelled", order_id, product_id, 3)
        await publish(broker, [cancelled])
        await wait_until(lambda: _applied(catalog_db, cancelled), timeout=15)
    assert await stock_of(catalog_db, uuid.UUID(product_id)) == 13


async def test_every_answer_with_a_product_carries_its_etag(catalog_api: httpx.AsyncClient) -> None:
    created = await catalog_api.post(PRODUCTS, json={"name": "A", "price": 1, "stockCount": 1})
    path = f"{PRODUCTS}/{created.json()['id']}"
    tags = [created.headers["etag"]]
    for answer in (
        await catalog_api.get(path),
        await catalog_api.put(path, json={"name": "B", "price": 1, "stockCount": 1}),
        await catalog_api.patch(path, json={"name": "C"}),
    ):
        assert answer.status_code == 200, answer.text
        tags.append(answer.headers["etag"])
    # Strong (no W/), quoted, and changed by each write: A, (read A), B, C.
    assert all(tag.startswith('"') and tag.endswith('"') for tag in tags), tags
    assert tags[0] == tags[1] and len({tags[1], tags[2], tags[3]}) == 3, tags
    assert (await catalog_api.get(path)).headers["etag"] == tags[3]


async def test_if_match_takes_star_a_list_and_only_strong_matches(
    catalog_api: httpx.AsyncClient,
) -> None:
    path, etag = await _create(catalog_api)
    body = {"name": "Product A", "price": 10, "stockCount": 10}

    async def put(*if_match: str) -> httpx.Response:
        return await catalog_api.put(path, json=body, headers=[("If-Match", v) for v in if_match])

    star = await put("*")
    assert star.status_code == 200, star.text
    etag = star.headers["etag"]
    listed = await put(f'"nope", {etag}')
    assert listed.status_code == 200, listed.text
    etag = listed.headers["etag"]
    two_lines = await put('"nope"', etag)  # one header field per line: still one list
    assert two_lines.status_code == 200, two_lines.text
    etag = two_lines.headers["etag"]

    weak = await put(f"W/{etag}")  # RFC 9110 §13.1.1: If-Match compares strongly
    assert weak.status_code == 412 and weak.headers["etag"] == etag, weak.text
    for malformed in ("abc", etag.strip('"'), f"*, {etag}", '"unterminated'):
        refused = await put(malformed)
        assert refused.status_code == 400, (malformed, refused.text)
        assert "If-Match" in refused.json()["detail"]
    assert (await catalog_api.get(path)).headers["etag"] == etag  # none of them wrote

    unknown = await catalog_api.put(f"{PRODUCTS}/{uuid.uuid4()}", json=body,
                                    headers={"If-Match": etag})  # fmt: skip
    assert unknown.status_code == 404, unknown.text


async def test_a_stale_delete_is_refused_and_a_current_one_deletes(
    catalog_api: httpx.AsyncClient,
) -> None:
    path, old = await _create(catalog_api)
    current = (await catalog_api.patch(path, json={"stockCount": 4})).headers["etag"]

    stale = await catalog_api.delete(path, headers={"If-Match": old})
    assert stale.status_code == 412, stale.text
    assert stale.headers["etag"] == current and "nothing was deleted" in stale.json()["detail"]
    assert (await catalog_api.get(path)).status_code == 200

    deleted = await catalog_api.delete(path, headers={"If-Match": current})
    assert deleted.status_code == 204, deleted.text
    assert (await catalog_api.get(path)).status_code == 404


async def test_patch_changes_only_the_fields_sent(
    catalog_api: httpx.AsyncClient, catalog_url: str
) -> None:
    path, _ = await _create(catalog_api, name="Keep", price=3.5, stockCount=8)
    for content_type in ("application/merge-patch+json", "application/json"):
        patched = await catalog_api.patch(path, content=b'{"price": 4.25}',
                                          headers={"content-type": content_type})  # fmt: skip
        assert patched.status_code == 200, patched.text
        assert patched.json() | {"id": None, "version": None} == {
            "id": None, "version": None, "name": "Keep", "price": 4.25, "stockCount": 8,
        }  # fmt: skip
    unchanged = await catalog_api.patch(path, json={})
    assert unchanged.status_code == 200 and unchanged.headers["etag"] == patched.headers["etag"]
    assert await sql(catalog_url, "SELECT name, stock_count FROM products") == [("Keep", 8)]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "words"),
    [
        (b'{"name": null}', "application/merge-patch+json", 422, "cannot be removed"),
        (b'{"price": null}', "application/merge-patch+json", 422, "cannot be removed"),
        (b'{"stockCount": null}', "application/json", 422, "cannot be removed"),
        (b'{"colour": "red"}', "application/merge-patch+json", 422, "Extra inputs"),
        (b'{"stockCount": -1}', "application/merge-patch+json", 422, "greater than or equal"),
        (b"[]", "application/merge-patch+json", 422, "object"),
        (b'"x"', "application/merge-patch+json", 422, "object"),
        (b'{"name": ', "application/merge-patch+json", 422, "JSON"),
        (b"price=1", "application/x-www-form-urlencoded", 415, "merge-patch"),
        (b'{"price": 1}', "text/plain", 415, "merge-patch"),
    ],
)
async def test_a_bad_patch_is_refused_in_words_and_changes_nothing(
    catalog_api: httpx.AsyncClient,
    catalog_url: str,
    content: bytes,
    content_type: str,
    status: int,
    words: str,
) -> None:
    path, etag = await _create(catalog_api)
    answer = await catalog_api.patch(path, content=content, headers={"content-type": content_type})
    assert answer.status_code == status, answer.text
    assert words in json.dumps(answer.json()["detail"]), answer.text
    assert (await catalog_api.get(path)).headers["etag"] == etag
    assert await sql(catalog_url, "SELECT name, stock_count FROM products") == [("Product A", 10)]


async def test_the_openapi_document_states_etags_if_match_and_412(
    catalog_api: httpx.AsyncClient,
) -> None:
    schema = (await catalog_api.get("/openapi.json")).json()
    item = schema["paths"]["/api/catalog/products/{product_id}"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    for method in ("put", "patch", "delete"):
        operation = item[method]
        assert "412" in operation["responses"], method
        assert "ETag" in operation["responses"]["412"]["headers"], method
        headers = [p["name"].lower() for p in operation["parameters"] if p["in"] == "header"]
        assert "if-match" in headers, method
    assert "application/merge-patch+json" in item["patch"]["requestBody"]["content"]


@pytest.mark.postgres
async def test_if_match_is_compared_under_the_row_lock(
    catalog: httpx.AsyncClient, catalog_db: str
) -> None:
    """A write that began while an order was taking stock (its transaction holding the
    product's row) waits for it and compares If-Match with the version it committed, not
    the one before: a plain read would have let the stale write through."""
    path, read_etag = await _create(catalog)
    product_id = uuid.UUID(path.rsplit("/", 1)[1])
    async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(catalog_db)) as order:
        await order.execute(
            "UPDATE products SET stock_count = stock_count - 3, version = version + 1 "
            "WHERE id = %s",
            (product_id,),
        )  # the consumer's take, not committed yet
        body = {"name": "Product A", "price": 12, "stockCount": 10}
        write = asyncio.create_task(catalog.put(path, json=body, headers={"If-Match": read_etag}))
        await asyncio.sleep(0.5)
        assert not write.done()  # waiting for the order's row lock
        await order.commit()
    stale = await asyncio.wait_for(write, timeout=10)
    assert stale.status_code == 412, stale.text
    assert await stock_of(catalog_db, product_id) == 7
