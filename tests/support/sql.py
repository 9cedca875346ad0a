"""One SQL statement on a service database of either backend, for tests that look under
the API: PostgreSQL through psycopg, SQLite through the standard library."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

from sqlalchemy.engine import make_url

from tests.conftest import query


async def sql(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``statement`` (``%s`` placeholders) on the database at ``url``, committed, and
    fetch its rows. On SQLite, UUIDs are bound as SQLAlchemy stores them (32 hex digits)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return await query(url, statement, *params)
    values = [p.hex if isinstance(p, uuid.UUID) else p for p in params]
    return await asyncio.to_thread(_sqlite, str(parsed.database), statement, values)


def _sqlite(path: str, statement: str, params: list[Any]) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path, timeout=10)
    try:
        with connection:
            rows = connection.execute(statement.replace("%s", "?"), params).fetchall()
        return [tuple(row) for row in rows]
    finally:
        connection.close()
