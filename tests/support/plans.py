"""Query plans in tests: a statement's executed plan on PostgreSQL, and the index it scans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import postgres


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def explain(url: str, sql: str) -> list[dict[str, Any]]:
    """The executed plan's nodes (EXPLAIN ANALYZE in a transaction rolled back after)."""
    async with await psycopg.AsyncConnection.connect(postgres.sync_dsn(url)) as connection:
        cursor = await connection.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        [(document,)] = await cursor.fetchall()
        await connection.rollback()
    plan = document if isinstance(document, list) else json.loads(document)
    return list(nodes(plan[0]["Plan"]))


def index_scan(plan: list[dict[str, Any]], index: str) -> dict[str, Any]:
    """The plan's scan of ``index``; fails when the table is scanned any other way."""
    assert not [n for n in plan if n["Node Type"] == "Seq Scan"], plan
    scans = [n for n in plan if n.get("Index Name") == index]
    assert scans, f"{index} is not used: {plan}"
    return scans[0]


def compiled(statement: Any, engine: AsyncEngine) -> str:
    """``statement`` as SQL of ``engine``'s dialect, its parameters inlined (for EXPLAIN)."""
    return str(
        statement.compile(
            dialect=engine.sync_engine.dialect, compile_kwargs={"literal_binds": True}
        )
    )
