"""Fixtures shared by every test layer: throwaway PostgreSQL databases per test."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.core import migrations as migrate
from app.core.settings import SERVICES, Settings
from tests.support import postgres
from tests.support.auth import TEST_SECRET
from tests.support.deployment import Deployment
from tests.support.rabbit import close_vhost_pool, throwaway_vhost

# Every app built in a test and every command a test starts verifies tokens signed with
# the suite's secret (tests/support/auth.py); the tests about authentication override it.
os.environ["AUTH_JWT_SECRET"] = TEST_SECRET


@pytest.fixture(scope="session")
def database_templates() -> Iterator[dict[str, str]]:
    """One migrated template database per service; tests clone them (fast, isolated)."""
    names = {service: postgres.unique_name(f"cc_tpl_{service}") for service in SERVICES}
    try:
        for service, name in names.items():
            url = postgres.create_database(name)
            migrate.upgrade(service, settings=Settings(**{f"{service}_database_url": url}))
        yield names
    finally:
        for name in names.values():
            postgres.drop_database(name)


async def _clone(template: str, prefix: str) -> AsyncIterator[str]:
    name = postgres.unique_name(prefix)
    url = await asyncio.to_thread(postgres.create_database, name, template=template)
    try:
        yield url
    finally:
        postgres.drop_database_later(name)  # FORCE ends whatever the test left connected


# The layers in the order they run: the long ones first, so that with several test
# processes (``make test``) the short files fill in at the end rather than one process
# finishing a long file alone. Files stay whole and in their own order within a layer.
LAYER_ORDER = ("reliability", "e2e", "browser", "integration", "contract", "docs", "unit")


def _layer_rank(item: pytest.Item) -> int:
    parts = item.path.relative_to(Path(__file__).parent).parts
    return LAYER_ORDER.index(parts[0]) if parts[0] in LAYER_ORDER else len(LAYER_ORDER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the long layers first (``LAYER_ORDER``); leave the soak-sized tests out unless
    ``-m`` names them (``make soak`` does): each has a smaller sibling that runs by
    default."""
    items.sort(key=_layer_rank)  # stable: a file's tests stay together and in order
    if "soak" in (config.option.markexpr or ""):
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    close_vhost_pool()  # the test vhosts not yet deleted (tests/support/rabbit.py)
    postgres.finish_drops()


@pytest.fixture
async def broker() -> AsyncIterator[str]:
    """The AMQP URL of a fresh RabbitMQ vhost, deleted afterwards."""
    async with throwaway_vhost() as url:
        yield url


@pytest.fixture
async def deployment(
    ordering_db: str, catalog_db: str, broker: str, tmp_path: Path
) -> AsyncIterator[Deployment]:
    """Both services' processes (started by the test, stopped afterwards)."""
    system = Deployment(ordering_db, catalog_db, broker, tmp_path)
    try:
        yield system
    finally:
        await system.stop()


@pytest.fixture
async def ordering_db(database_templates: dict[str, str]) -> AsyncIterator[str]:
    """The URL of a fresh, migrated ordering database."""
    async for url in _clone(database_templates["ordering"], "cc_ordering"):
        yield url


@pytest.fixture
async def catalog_db(database_templates: dict[str, str]) -> AsyncIterator[str]:
    """The URL of a fresh, migrated catalog database."""
    async for url in _clone(database_templates["catalog"], "cc_catalog"):
        yield url


async def query(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one SQL statement on the database at ``url`` (its own connection) and fetch."""
    async with await psycopg.AsyncConnection.connect(
        postgres.sync_dsn(url), autocommit=True
    ) as connection:
        cursor = await connection.execute(statement, params or None)  # type: ignore[arg-type]
        return await cursor.fetchall() if cursor.description else []


async def count(url: str, table: str) -> int:
    [(total,)] = await query(url, f"SELECT count(*) FROM {table}")
    return int(total)


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One migrated SQLite file per service (the embedded default); tests copy them."""
    directory = tmp_path_factory.mktemp("sqlite_templates")
    paths = {service: directory / f"{service}.db" for service in SERVICES}
    for service, path in paths.items():
        settings = Settings(**{f"{service}_database_url": f"sqlite+aiosqlite:///{path}"})
        migrate.upgrade(service, settings=settings)
    return paths


def _sqlite_copy(template: Path, directory: Path) -> str:
    target = directory / template.name
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def ordering_sqlite(sqlite_templates: dict[str, Path], tmp_path: Path) -> str:
    """The URL of a fresh, migrated ordering database on SQLite."""
    return _sqlite_copy(sqlite_templates["ordering"], tmp_path)


@pytest.fixture
def catalog_sqlite(sqlite_templates: dict[str, Path], tmp_path: Path) -> str:
    """The URL of a fresh, migrated catalog database on SQLite."""
    return _sqlite_copy(sqlite_templates["catalog"], tmp_path)
