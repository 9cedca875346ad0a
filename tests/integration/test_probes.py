"""The APIs' health probes: live while serving; ready only while the database answers and
is at the Alembic head (503 with the reason otherwise), on PostgreSQL through a proxy the
test cuts, and on SQLite before and after its migration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.catalog.app import create_app as create_catalog
from app.core import migrations as migrate
from app.core.settings import Settings
from app.ordering.app import create_app as create_ordering
from tests.support.proxy import TcpProxy


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


@pytest.mark.postgres
async def test_ready_follows_the_database_through_a_cut(ordering_db: str) -> None:
    url = make_url(ordering_db)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        app = create_ordering(Settings(ordering_database_url=via_proxy, broker_url="memory://"))
        async with serving(app) as client:
            assert (await client.get("/health/ready")).status_code == 200
            proxy.block()  # new connections hang, as a database behind a dead link does
            proxy.cut()  # and the pooled ones break
            down = await client.get("/health/ready")
            assert down.status_code == 503
            assert "does not answer" in down.json()["reasons"][0]
            assert (await client.get("/health/live")).status_code == 200
            proxy.unblock()
            for _ in range(50):
                if (await client.get("/health/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("ready did not come back once the database did")
    finally:
        await proxy.close()


async def test_ready_says_what_to_migrate(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    settings = Settings(catalog_database_url=url, broker_url="memory://")
    async with serving(create_catalog(settings)) as client:
        not_yet = await client.get("/health/ready")
        assert not_yet.status_code == 503
        assert "run `python -m app migrate catalog`" in not_yet.json()["reasons"][0]
        await asyncio.to_thread(migrate.upgrade, "catalog", settings=settings)
        assert (await client.get("/health/ready")).json() == {"status": "ready", "reasons": []}


async def test_a_database_a_newer_release_migrated_keeps_the_api_ready(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    settings = Settings(catalog_database_url=url, broker_url="memory://")
    await asyncio.to_thread(migrate.upgrade, "catalog", settings=settings)
    async with serving(create_catalog(settings)) as client:
        import sqlite3

        with sqlite3.connect(tmp_path / "catalog.db") as db:  # a revision from the future
            db.execute("UPDATE alembic_version SET version_num = '0099_catalog'")
        assert (await client.get("/health/ready")).status_code == 200
        with sqlite3.connect(tmp_path / "catalog.db") as db:  # and one from the past
            db.execute("UPDATE alembic_version SET version_num = '0003_catalog'")
        behind = await client.get("/health/ready")
        assert behind.status_code == 503 and "0003_catalog" in behind.json()["reasons"][0]
