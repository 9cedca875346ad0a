"""Hostile requests to the products API, on each backend (PostgreSQL, then SQLite): each
is a 4xx that says what is wrong, never a 500 or a bare parser message, and writes
nothing."""

from __future__ import annotations

import httpx
import pytest

PRODUCTS = "/api/catalog/products"
PRODUCT = {"name": "Pear", "price": 1, "stockCount": 1}
TOO_MANY_DIGITS = b"1" * 4_301  # Python's int() refuses more than 4,300 digits


async def _product(catalog: httpx.AsyncClient) -> str:
    created = await catalog.post(PRODUCTS, json=PRODUCT)
    assert created.status_code == 201, created.text
    product_id: str = created.json()["id"]
    return product_id


async def _count(catalog: httpx.AsyncClient) -> int:
    return len((await catalog.get(PRODUCTS, params={"limit": 500})).json())


@pytest.mark.parametrize(
    "value", [b"\xc3\xa9t\xc3\xa9", b"", b'""', b"k" * 256], ids=["non-ASCII", "empty",
                                                               "empty quoted", "256 characters"]
)  # fmt: skip
async def test_a_malformed_idempotency_key_is_a_400_saying_what_a_key_is(
    catalog_api: httpx.AsyncClient, value: bytes
) -> None:
    response = await catalog_api.post(PRODUCTS, json=PRODUCT, headers=[(b"Idempotency-Key", value)])

    assert response.status_code == 400, response.text
    assert "1 to 255 printable ASCII characters" in response.json()["detail"]
    assert await _count(catalog_api) == 0


@pytest.mark.parametrize(
    "lines",
    [[b"ka-1", b"kb-1"], [b"kb-1", b"ka-1"], [b"ka-1, kb-1"], [b"ka-1,kb-1"]],
    ids=["two lines", "two lines swapped", "folded", "folded without space"],
)
async def test_two_idempotency_keys_are_a_400_never_a_second_product(
    catalog_api: httpx.AsyncClient, lines: list[bytes]
) -> None:
    # A retry whose keys came in another order, or folded into one line by a proxy, must
    # not count as a new request: no key is taken from a list.
    headers = [(b"Idempotency-Key", line) for line in lines]
    response = await catalog_api.post(PRODUCTS, json=PRODUCT, headers=headers)

    assert response.status_code == 400, response.text
    assert "one key" in response.json()["detail"] or "not several" in response.json()["detail"]
    assert await _count(catalog_api) == 0
    quoted = await catalog_api.post(
        PRODUCTS, json=PRODUCT, headers=[(b"Idempotency-Key", b'"ka-1, kb-1"')]
    )
    assert quoted.status_code == 201, quoted.text  # a quoted key may hold a comma


@pytest.mark.parametrize("value", [b"", b" ", b" , ,"], ids=["empty", "blank", "commas"])
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_an_if_match_without_any_entity_tag_is_a_400(
    catalog_api: httpx.AsyncClient, method: str, value: bytes
) -> None:
    product_id = await _product(catalog_api)
    body = {} if method == "DELETE" else {"json": {**PRODUCT, "name": "Plum"}}

    response = await catalog_api.request(
        method, f"{PRODUCTS}/{product_id}", headers=[(b"If-Match", value)], **body
    )

    assert response.status_code == 400, response.text
    assert "If-Match" in response.json()["detail"]
    kept = await catalog_api.get(f"{PRODUCTS}/{product_id}")
    assert kept.json()["name"] == "Pear" and kept.json()["version"] == 1


@pytest.mark.parametrize("body", [b"[]", b"3", b"null", b'"Plum"', b'[{"name": "Plum"}]'])
async def test_a_patch_that_is_not_a_json_object_is_a_422_in_words(
    catalog_api: httpx.AsyncClient, body: bytes
) -> None:
    product_id = await _product(catalog_api)

    response = await catalog_api.patch(
        f"{PRODUCTS}/{product_id}", content=body,
        headers={"content-type": "application/merge-patch+json"},
    )  # fmt: skip

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body"]
    assert "a JSON object" in error["msg"] and "RFC 7396" in error["msg"], error
    assert (await catalog_api.get(f"{PRODUCTS}/{product_id}")).json()["version"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PRODUCTS, b'{"name": "Pear", "price": 1, "stockCount": ' + TOO_MANY_DIGITS + b"}"),
        ("POST", PRODUCTS, b'{"name": "Pear", "price": 1, "stockCount": 1, "x": [-'
         + TOO_MANY_DIGITS + b"]}"),
        ("PATCH", f"{PRODUCTS}/{{id}}", b'{"stockCount": ' + TOO_MANY_DIGITS + b"}"),
        ("POST", "/integration-api/catalog/products/by-ids", b"[" + TOO_MANY_DIGITS + b"]"),
    ],
    ids=["POST field", "POST nested", "PATCH", "by-ids"],
)  # fmt: skip
async def test_a_number_of_more_than_4300_digits_is_a_400_in_words(
    catalog_api: httpx.AsyncClient, method: str, path: str, body: bytes
) -> None:
    product_id = await _product(catalog_api)

    response = await catalog_api.request(
        method, path.format(id=product_id), content=body,
        headers={"content-type": "application/json", "Idempotency-Key": "digits"},
    )  # fmt: skip

    assert response.status_code == 400, response.text
    assert "4300 digits" in response.json()["detail"], response.text
    assert await _count(catalog_api) == 1


async def test_json_nested_too_deeply_to_read_is_a_400_in_words(
    catalog_api: httpx.AsyncClient,
) -> None:
    body = b'{"name": "Pear", "price": 1, "stockCount": 1, "x": ' + b"[" * 30_000 + b"]" * 30_000
    response = await catalog_api.post(
        PRODUCTS, content=body + b"}", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["detail"]
    assert await _count(catalog_api) == 0


@pytest.mark.parametrize(
    ("method", "path", "number"),
    [
        ("POST", PRODUCTS, b"1e9999999999999999999"),
        ("POST", PRODUCTS, b"1e-9999999999999999999"),
        ("PATCH", f"{PRODUCTS}/{{id}}", b"2.5E+99999999999999999999999"),
    ],
    ids=["POST huge exponent", "POST tiny exponent", "PATCH huge exponent"],
)
async def test_a_number_whose_exponent_no_decimal_holds_is_a_400_in_words(
    catalog_api: httpx.AsyncClient, method: str, path: str, number: bytes
) -> None:
    # Valid JSON that the exact reading (Decimal) cannot hold: its exponent is beyond
    # what any Decimal may have. FastAPI's bare "There was an error parsing the body"
    # said nothing of why.
    product_id = await _product(catalog_api)
    body = b'{"name": "Pear", "price": ' + number + b', "stockCount": 1}'

    response = await catalog_api.request(
        method, path.format(id=product_id), content=body,
        headers={"content-type": "application/json", "Idempotency-Key": "exponent"},
    )  # fmt: skip

    assert response.status_code == 400, response.text
    assert "exponent" in response.json()["detail"], response.text
    assert await _count(catalog_api) == 1
    assert (await catalog_api.get(f"{PRODUCTS}/{product_id}")).json()["version"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PRODUCTS, b'{"name": "Caf\xe9", "price": 1, "stockCount": 1}'),
        ("PATCH", f"{PRODUCTS}/{{id}}", b'{"name": "Caf\xe9"}'),
        ("POST", "/integration-api/catalog/products/by-ids", b'["\xff"]'),
    ],
    ids=["POST", "PATCH", "by-ids"],
)
async def test_a_body_that_is_not_utf8_is_a_400_saying_so(
    catalog_api: httpx.AsyncClient, method: str, path: str, body: bytes
) -> None:
    # Latin-1 text: json.loads raises UnicodeDecodeError (a ValueError), which was
    # answered as "a number of more than 4300 digits".
    product_id = await _product(catalog_api)

    response = await catalog_api.request(
        method, path.format(id=product_id), content=body,
        headers={"content-type": "application/json", "Idempotency-Key": "latin-1"},
    )  # fmt: skip

    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "UTF-8" in detail and "digits" not in detail, detail
    assert await _count(catalog_api) == 1
    assert (await catalog_api.get(f"{PRODUCTS}/{product_id}")).json()["name"] == "Pear"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PRODUCTS, b'{"name": "Pear", "price": 1, "stockCount": 1, "price": 0}'),
        ("PATCH", f"{PRODUCTS}/{{id}}", b'{"price": 2, "price": 0}'),
    ],
    ids=["POST", "PATCH"],
)
async def test_a_field_sent_twice_is_a_400_naming_it(
    catalog_api: httpx.AsyncClient, method: str, path: str, body: bytes
) -> None:
    # Which of two values of one name counts differs between JSON readers (RFC 8259 §4):
    # a proxy that checked the first price would pass a product saved with the second.
    product_id = await _product(catalog_api)

    response = await catalog_api.request(
        method, path.format(id=product_id), content=body,
        headers={"content-type": "application/json"},
    )  # fmt: skip

    assert response.status_code == 400, response.text
    assert "'price' twice" in response.json()["detail"], response.text
    assert await _count(catalog_api) == 1
    assert (await catalog_api.get(f"{PRODUCTS}/{product_id}")).json()["version"] == 1
