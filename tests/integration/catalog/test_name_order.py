"""The products list is in the same order on PostgreSQL and SQLite, whatever the
database's default collation: names compare by code point on both."""

from __future__ import annotations

import pytest
from psycopg import sql

from app.catalog.app import create_app
from app.core import migrations as migrate
from app.core.settings import Settings
from tests.conftest import query
from tests.support import postgres
from tests.support.servers import asgi_client

NAMES = ["zebra", "Éclair", "apple", "eclair", "Banana", "_under", "10 pack", "9 pack"]
BY_CODE_POINT = sorted(NAMES)  # Python compares str by code point


@pytest.fixture
def english_collated_db() -> object:
    """A catalog database whose default collation is ICU's en-US (as the postgres image's
    en_US.utf8 orders: "apple" < "Banana"), migrated to head."""
    name = postgres.unique_name("cc_catalog_en")
    with postgres.admin_connection() as connection:
        connection.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                "LOCALE 'C.UTF-8'"
            ).format(sql.Identifier(name))
        )
    url = postgres.async_url(name)
    migrate.upgrade("catalog", settings=Settings(catalog_database_url=url))
    yield url
    postgres.drop_database(name)


async def _listed(url: str) -> list[str]:
    async with asgi_client(create_app(Settings(catalog_database_url=url))) as catalog:
        for name in NAMES:
            made = await catalog.post(
                "/api/catalog/products", json={"name": name, "price": 1, "stockCount": 1}
            )
            assert made.status_code == 201, made.text
        first = await catalog.get("/api/catalog/products", params={"limit": 3})
        rest = await catalog.get(first.links["next"]["url"])
        rest2 = await catalog.get(rest.links["next"]["url"])
        return [p["name"] for page in (first, rest, rest2) for p in page.json()]


@pytest.mark.postgres
async def test_a_database_collated_for_english_lists_by_code_point(
    english_collated_db: str,
) -> None:
    assert await _listed(english_collated_db) == BY_CODE_POINT


async def test_sqlite_lists_by_code_point(catalog_sqlite: str) -> None:
    assert await _listed(catalog_sqlite) == BY_CODE_POINT


@pytest.mark.postgres
async def test_the_name_column_compares_by_code_point(english_collated_db: str) -> None:
    [(collation,)] = await query(
        english_collated_db,
        "SELECT collation_name FROM information_schema.columns "
        "WHERE table_name = 'products' AND column_name = 'name'",
    )
    assert collation == "C"
