"""Every bad request is a clear 4xx and writes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import count

# An id no row has (the databases are fresh); fixed, so that every test process collects
# the same parametrized ids.
NO_SUCH_ID = "0b1d5e6f-0000-4000-8000-000000000404"

pytestmark = pytest.mark.postgres

PRODUCT = str(uuid.uuid4())
MEGABYTE = "x" * 1_000_000


def order(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"customerName": "Ann", "productId": PRODUCT, "quantity": 1}
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


BAD_BODIES: list[tuple[str, bytes, int]] = [
    ("invalid uuid", json.dumps(order(productId="not-a-uuid")).encode(), 422),
    ("uuid as number", json.dumps(order(productId=12345)).encode(), 422),
    ("empty name", json.dumps(order(customerName="")).encode(), 422),
    ("blank name", json.dumps(order(customerName="   ")).encode(), 422),
    ("201-char name", json.dumps(order(customerName="n" * 201)).encode(), 422),
    ("NUL in name", json.dumps(order(customerName="a\u0000b")).encode(), 422),
    ("name as number", json.dumps(order(customerName=5)).encode(), 422),
    ("1 MB name", json.dumps(order(customerName=MEGABYTE)).encode(), 413),
    ("quantity 0", json.dumps(order(quantity=0)).encode(), 422),
    ("quantity -1", json.dumps(order(quantity=-1)).encode(), 422),
    ("quantity 10^12", json.dumps(order(quantity=10**12)).encode(), 422),
    ("quantity 10001", json.dumps(order(quantity=10_001)).encode(), 422),
    ("quantity 1.5", json.dumps(order(quantity=1.5)).encode(), 422),
    ("quantity as string", json.dumps(order(quantity="3")).encode(), 422),
    ("quantity true", json.dumps(order(quantity=True)).encode(), 422),
    ("quantity null", json.dumps(order(quantity=None)).encode(), 422),
    ("missing name", json.dumps(order(customerName=...)).encode(), 422),
    ("missing product", json.dumps(order(productId=...)).encode(), 422),
    ("unknown field", json.dumps(order(discount=5)).encode(), 422),
    ("snake_case field", json.dumps({"customer_name": "A", "productId": PRODUCT}).encode(), 422),
    ("malformed JSON", b'{"customerName": "Ann", "productId":', 422),
    ("JSON array", json.dumps([order()]).encode(), 422),
    ("JSON string", b'"hello"', 422),
    ("empty body", b"", 422),
    ("body over 64 KiB", b'{"customerName": "' + b"a" * 70_000 + b'"}', 413),
]


@pytest.mark.parametrize(
    ("body", "status"), [(b, s) for _, b, s in BAD_BODIES], ids=[n for n, _, _ in BAD_BODIES]
)
async def test_bad_order_body_is_rejected_and_nothing_is_written(
    ordering: httpx.AsyncClient, ordering_db: str, body: bytes, status: int
) -> None:
    response = await ordering.post(
        "/api/ordering/order", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == status, response.text
    assert response.json()["detail"]  # a message, not an empty error
    assert await count(ordering_db, "orders") == 0
    assert await count(ordering_db, "outbox") == 0


@pytest.mark.parametrize(
    "value",
    [b"\xe9" * 130, ("é" * 130).encode(), b"c" * 201, b"tab\there", b""],
    ids=["latin-1 bytes", "utf-8 bytes", "201 characters", "control character", "empty"],
)
async def test_a_correlation_id_that_is_not_a_short_ascii_string_is_422(
    ordering: httpx.AsyncClient, ordering_db: str, value: bytes
) -> None:
    # It would become the AMQP correlation_id (a short string: at most 255 bytes).
    response = await ordering.post(
        "/api/ordering/order", json=order(), headers={"X-Correlation-Id": value}
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "x-correlation-id"], error
    # Said in words, not as the regular expression that checks it.
    assert error["msg"] == "must be 1 to 200 printable ASCII characters (space to ~)", error
    assert await count(ordering_db, "outbox") == 0


async def test_body_over_the_limit_sent_chunked_is_413(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"customerName": "'
        for _ in range(10):
            yield b"a" * 8192
        yield b'"}'

    response = await ordering.post(
        "/api/ordering/order", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert await count(ordering_db, "orders") == 0


async def test_form_encoded_body_is_rejected(ordering: httpx.AsyncClient, ordering_db: str) -> None:
    response = await ordering.post(
        "/api/ordering/order", data={"customerName": "Ann", "productId": PRODUCT}
    )
    assert 400 <= response.status_code < 500
    assert await count(ordering_db, "orders") == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/ordering/order/not-a-uuid", 422),
        (f"/api/ordering/order/{NO_SUCH_ID}", 404),
        ("/api/ordering/order?skip=-1", 422),
        ("/api/ordering/order?limit=0", 422),
        ("/api/ordering/order?limit=1000000", 422),
        (f"/api/ordering/order?skip={10**30}", 422),
        ("/api/ordering/order?limit=abc", 422),
    ],
)
async def test_bad_reads_are_4xx(ordering: httpx.AsyncClient, path: str, status: int) -> None:
    response = await ordering.get(path)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


async def test_a_number_of_more_than_4300_digits_is_a_400_in_words(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    # Python's int() refuses more than 4,300 digits (CVE-2020-10735), deep inside json.loads.
    body = json.dumps(order()).encode()[:-1] + b', "x": ' + b"9" * 4_301 + b"}"
    response = await ordering.post(
        "/api/ordering/order", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "4300 digits" in response.json()["detail"]
    assert await count(ordering_db, "orders") == 0


@pytest.mark.parametrize("number", [b"1e400", b"-1e400"])
async def test_a_quantity_past_what_a_float_holds_is_too_large_not_fractional(
    ordering: httpx.AsyncClient, ordering_db: str, number: bytes
) -> None:
    # 1e400 is valid JSON that json.loads reads as an infinite float: it is far too large,
    # and was answered "must be a whole number", which it is.
    body = b'{"customerName": "Ann", "productId": "%s", "quantity": %s}' % (
        PRODUCT.encode(),
        number,
    )
    response = await ordering.post(
        "/api/ordering/order", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "quantity"] and "magnitude" in error["msg"], error
    assert await count(ordering_db, "orders") == 0


async def test_a_field_sent_twice_is_a_400_naming_it(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    # json.loads keeps the last quantity, other readers (a proxy's) the first.
    body = b'{"customerName": "Ann", "productId": "%s", "quantity": 1, "quantity": 9999}' % (
        PRODUCT.encode()
    )
    response = await ordering.post(
        "/api/ordering/order", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "'quantity' twice" in response.json()["detail"]
    assert await count(ordering_db, "orders") == 0


async def test_a_body_that_is_not_utf8_is_a_400_saying_so(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    # A name sent in Latin-1 (b"\xe9" for "é"): json.loads fails with a UnicodeDecodeError,
    # a ValueError, which was answered as "a number of more than 4300 digits".
    body = b'{"customerName": "Ren\xe9", "productId": "' + PRODUCT.encode() + b'"}'
    response = await ordering.post(
        "/api/ordering/order", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "UTF-8" in response.json()["detail"] and "digits" not in response.json()["detail"]
    assert await count(ordering_db, "orders") == 0


def test_every_route_with_a_body_reads_it_with_answers_in_words() -> None:
    from app.admin.router import router as admin
    from app.catalog.router import integration_router
    from app.catalog.router import router as catalog
    from app.http.exact_json import JsonRoute
    from app.ordering.router import router as ordering_api

    routes = [r for rt in (admin, catalog, integration_router, ordering_api) for r in rt.routes]
    with_body = [route for route in routes if getattr(route, "body_field", None) is not None]
    assert len(with_body) >= 6
    assert [r.path for r in with_body if not isinstance(r, JsonRoute)] == []
