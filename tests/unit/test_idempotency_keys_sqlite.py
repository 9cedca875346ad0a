"""``Idempotency-Key`` on the embedded default (SQLite): the same answers as on PostgreSQL
(tests/integration/*/test_idempotency_keys.py), bad keys refused in words, and expired
keys deleted by the housekeeping jobs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.catalog.app import create_app as create_catalog
from app.core import migrations as migrate
from app.core.settings import Settings
from app.messaging.housekeeping import housekeeping
from app.ordering.app import create_app as create_ordering
from cloudcrm_outbox.runtime import process
from cloudcrm_outbox.storage.engine import make_engine
from tests.support.consuming import wait_until
from tests.support.servers import asgi_client, free_port


@pytest.fixture
async def settings(tmp_path: Path) -> Settings:
    migrated = Settings(
        ordering_database_url=f"sqlite+aiosqlite:///{tmp_path / 'ordering.db'}",
        catalog_database_url=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        catalog_api_url=f"http://127.0.0.1:{free_port()}",
        catalog_api_timeout_seconds=0.5,
    )
    for service in ("ordering", "catalog"):
        await asyncio.to_thread(migrate.upgrade, service, settings=migrated)
    return migrated


@pytest.fixture
async def ordering(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_ordering(settings)) as client:
        yield client


@pytest.fixture
async def catalog(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_catalog(settings)) as client:
        yield client


async def rows(url: str, statement: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


def order() -> dict[str, str]:
    return {"customerName": "Ann", "productId": str(uuid.uuid4())}


async def test_orders_same_key_replays_other_body_is_422_and_at_once_is_one(
    ordering: httpx.AsyncClient, settings: Settings
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = order()
    first = await ordering.post("/api/ordering/order", json=body, headers=key)
    again = await ordering.post("/api/ordering/order", json=body, headers=key)
    other = await ordering.post("/api/ordering/order", json=order(), headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]

    # Five at once with another key: SQLite's writers queue (BEGIN IMMEDIATE); the first
    # places the order, the others answer it.
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = order()
    answers = await asyncio.gather(
        *(ordering.post("/api/ordering/order", json=body, headers=key) for _ in range(5))
    )
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert await rows(settings.ordering_database_url, "SELECT count(*) FROM orders") == [(2,)]


async def test_products_same_key_makes_one_product(
    catalog: httpx.AsyncClient, settings: Settings
) -> None:
    key = {"Idempotency-Key": "new-product-a"}
    body = {"name": "Product A", "price": 9.99, "stockCount": 53}
    first = await catalog.post("/api/catalog/products", json=body, headers=key)
    again = await catalog.post("/api/catalog/products", json=body, headers=key)
    other = await catalog.post("/api/catalog/products", json={**body, "price": 1}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert other.status_code == 422
    assert await rows(settings.catalog_database_url, "SELECT count(*) FROM products") == [(1,)]


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (b"", "1 to 255"),
        (b"k" * 256, "1 to 255"),
        (b"caf\xc3\xa9", "printable ASCII"),  # UTF-8 bytes: not ASCII
        (b"a\tb", "printable ASCII"),
        (b'"unterminated', "quoted"),
        (b'"a\\zb"', "quoted"),  # RFC 8941 escapes only \" and \\
    ],
)
async def test_a_bad_key_is_a_400_in_words(
    ordering: httpx.AsyncClient, settings: Settings, key: bytes, why: str
) -> None:
    response = await ordering.post(
        "/api/ordering/order", json=order(), headers=[(b"Idempotency-Key", key)]
    )
    assert response.status_code == 400, response.text
    assert "Idempotency-Key" in response.json()["detail"] and why in response.json()["detail"]
    assert await rows(settings.ordering_database_url, "SELECT count(*) FROM orders") == [(0,)]


@pytest.mark.parametrize(("service", "role"), [("ordering", "relay"), ("catalog", "consumer")])
async def test_housekeeping_deletes_expired_keys(
    settings: Settings,
    ordering: httpx.AsyncClient,
    catalog: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    role: str,
) -> None:
    """Keys live IDEMPOTENCY_KEY_RETENTION_SECONDS (24 h by default); then the service's
    housekeeping (ordering's relay, catalog's consumer) deletes them."""
    key = {"Idempotency-Key": "kept-a-day"}
    await ordering.post("/api/ordering/order", json=order(), headers=key)
    body = {"name": "Product A", "price": 1, "stockCount": 1}
    await catalog.post("/api/catalog/products", json=body, headers=key)
    url = settings.database_url(service)
    await rows(url, "UPDATE idempotency_keys SET created_at = datetime('now', '-25 hours')")
    monkeypatch.setattr(process, "FIRST_RUN_AFTER_SECONDS", 0.05)
    assert settings.idempotency_key_retention_seconds == 24 * 3600

    async def expired_deleted() -> bool:
        return await rows(url, "SELECT count(*) FROM idempotency_keys") == [(0,)]

    async with housekeeping(settings, service, role):  # type: ignore[arg-type]
        await wait_until(expired_deleted, timeout=10)
