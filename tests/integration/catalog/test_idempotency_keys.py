"""``Idempotency-Key`` on ``POST /api/catalog/products``: a retry makes no second product."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.conftest import count
from tests.support.consuming import wait_until
from tests.support.locks import sessions_waiting_on_locks, table_locked

pytestmark = pytest.mark.postgres

PRODUCTS = "/api/catalog/products"
BODY = {"name": "Product A", "price": 9.99, "stockCount": 53}


async def test_the_same_key_makes_one_product_and_another_body_is_422(
    catalog: httpx.AsyncClient, catalog_db: str
) -> None:
    key = {"Idempotency-Key": f'"{uuid.uuid4()}"'}  # the draft's quoted form (RFC 8941 string)
    first = await catalog.post(PRODUCTS, json=BODY, headers=key)
    again = await catalog.post(PRODUCTS, json=BODY, headers=key)
    other = await catalog.post(PRODUCTS, json={**BODY, "stockCount": 54}, headers=key)

    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    assert await count(catalog_db, "products") == 1


async def test_two_requests_with_one_key_at_once_make_one_product(
    catalog: httpx.AsyncClient, catalog_db: str
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with table_locked(catalog_db, "products") as holder:
        requests = [
            asyncio.create_task(catalog.post(PRODUCTS, json=BODY, headers=key)) for _ in range(2)
        ]

        async def both_waiting() -> bool:
            return await sessions_waiting_on_locks(catalog_db) == 2

        await wait_until(both_waiting, timeout=10)
        await holder.rollback()
    first, second = await asyncio.gather(*requests)

    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json() == second.json()
    assert await count(catalog_db, "products") == 1
