"""``Idempotency-Key`` on ``POST /api/ordering/order``: a retry after an unknown outcome
answers the first order instead of placing a second one."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.cli.dev import create_dev_app
from app.core.settings import Settings
from tests.conftest import count, query
from tests.support.auth import token
from tests.support.consuming import wait_until
from tests.support.locks import sessions_waiting_on_locks, table_locked
from tests.support.lost_answers import LostCommitAnswerProxy
from tests.support.servers import asgi_client

pytestmark = pytest.mark.postgres


def order(product_id: object = None, name: str = "Ann") -> dict[str, object]:
    return {"customerName": name, "productId": str(product_id or uuid.uuid4())}


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_a_lost_commit_answer_and_a_retry_with_the_same_key_place_one_order(
    ordering_db: str, catalog_db: str, tmp_path: Path
) -> None:
    """dotnet/efcore #22904 (a retry after an unknown commit outcome does the work twice)
    and neo4j-java-driver PR #593: ordering's COMMIT reaches PostgreSQL, its answer is lost
    (the proxy closes the connection before the answer passes), the API answers 503; the
    client retries with the same Idempotency-Key and gets the first order: one order, the
    stock taken once (100 -> 99)."""
    target = urlsplit(ordering_db.replace("postgresql+psycopg", "postgresql"))
    proxy = await LostCommitAnswerProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    settings = Settings(
        ordering_database_url=ordering_db.replace(f":{target.port}/", f":{proxy.port}/"),
        catalog_database_url=catalog_db,
        broker_url="memory://",
        embedded_broker_path=str(tmp_path / "broker.db"),
        seed_demo_products=False,
    )
    try:
        async with asgi_client(create_dev_app(settings)) as api:
            product = {"name": "Product A", "price": 1, "stockCount": 100}
            product_id = (await api.post("/api/catalog/products", json=product)).json()["id"]
            key = keyed(str(uuid.uuid4()))
            proxy.arm(after=b"INSERT INTO orders")

            first = await api.post("/api/ordering/order", json=order(product_id), headers=key)
            assert proxy.lost.is_set()
            assert first.status_code == 503, first.text
            retried = await api.post("/api/ordering/order", json=order(product_id), headers=key)

            assert retried.status_code == 201, retried.text
            assert await query(ordering_db, "SELECT id::text FROM orders") == [
                (retried.json()["id"],)
            ]
            assert retried.headers["Idempotent-Replayed"] == "true"
            assert "Idempotency-Key" in first.json()["detail"]

            async def processed() -> bool:
                states = await query(ordering_db, "SELECT state FROM orders")
                return states == [("Confirmed",)]

            await wait_until(processed)
            stock = (await api.get(f"/api/catalog/products/{product_id}")).json()["stockCount"]
            assert stock == 99
            assert await count(ordering_db, "outbox") == 1
    finally:
        await proxy.close()


async def test_the_same_key_answers_the_first_result_and_another_body_is_422(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    key = keyed("order-2026-11-30-ann")
    body = order()
    first = await ordering.post("/api/ordering/order", json=body, headers=key)
    again = await ordering.post("/api/ordering/order", json=body, headers=key)
    other = await ordering.post("/api/ordering/order", json=order(), headers=key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422, other.text
    assert "Idempotency-Key" in other.json()["detail"]
    assert "another request" in other.json()["detail"]
    assert await count(ordering_db, "orders") == 1
    assert await count(ordering_db, "outbox") == 1


async def test_keys_belong_to_their_caller(ordering: httpx.AsyncClient, ordering_db: str) -> None:
    """Two clients choosing the same key each get their own order: a key is scoped to the
    token's subject."""
    key = "shared-key"
    body = order()
    ann = await ordering.post("/api/ordering/order", json=body, headers=keyed(key))
    bob = await ordering.post(
        "/api/ordering/order",
        json=body,
        headers={**keyed(key), "Authorization": f"Bearer {token(subject='bob')}"},
    )
    assert ann.status_code == bob.status_code == 201
    assert ann.json()["id"] != bob.json()["id"]
    assert await count(ordering_db, "orders") == 2


async def test_two_requests_with_one_key_at_once_place_one_order(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    """Both arrive while the first cannot finish (orders locked): the second waits on the
    first's key (PostgreSQL's INSERT … ON CONFLICT waits for the transaction holding the
    conflicting row) and then answers the first's order."""
    body, key = order(), keyed(str(uuid.uuid4()))
    async with table_locked(ordering_db, "orders") as holder:
        requests = [
            asyncio.create_task(ordering.post("/api/ordering/order", json=body, headers=key))
            for _ in range(2)
        ]

        async def both_waiting() -> bool:
            return await sessions_waiting_on_locks(ordering_db) == 2

        await wait_until(both_waiting, timeout=10)
        await holder.rollback()
    first, second = await asyncio.gather(*requests)

    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json() == second.json()
    assert await count(ordering_db, "orders") == 1


async def test_expired_keys_are_deleted_and_young_ones_kept(
    ordering: httpx.AsyncClient, ordering_db: str
) -> None:
    from app.http.idempotency import delete_expired_keys
    from cloudcrm_outbox.storage.engine import make_engine

    for key in ("old", "young"):
        response = await ordering.post("/api/ordering/order", json=order(), headers=keyed(key))
        assert response.status_code == 201
    await query(
        ordering_db,
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
        "WHERE idempotency_key = 'old'",
    )
    engine = make_engine(ordering_db, pool_size=1)
    try:
        deleted = await delete_expired_keys(engine, older_than_seconds=24 * 3600, batch_size=10)
    finally:
        await engine.dispose()
    assert deleted == 1
    assert await query(ordering_db, "SELECT idempotency_key FROM idempotency_keys") == [("young",)]
