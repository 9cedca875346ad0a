"""The versioned schema steps make exactly the tables the library's models describe, on
PostgreSQL and SQLite, and undo them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from app.outbox import make_engine, outbox_metadata
from app.outbox.migrations import LATEST, STEPS, create_latest, drop_latest
from tests.support import postgres


def _run(step: Callable[[], None]) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            step()

    return run


def _drift(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), outbox_metadata))


async def _steps_match_the_models(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run(create_latest))
            assert await connection.run_sync(_drift) == []
            if connection.dialect.name == "postgresql":
                triggers = await connection.execute(
                    text("SELECT tgname FROM pg_trigger WHERE tgname = 'outbox_notify'")
                )
                assert triggers.scalars().all() == ["outbox_notify"]
            await connection.run_sync(_run(drop_latest))
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert not {"outbox", "inbox"} & set(tables)
    finally:
        await engine.dispose()


def test_steps_are_numbered_in_order() -> None:
    assert [number for number, _, _ in STEPS] == list(range(1, LATEST + 1))


async def test_on_sqlite(tmp_path: Path) -> None:
    await _steps_match_the_models(f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}")


@pytest.mark.postgres
async def test_on_postgresql() -> None:
    name = postgres.unique_name("cc_steps")
    url = postgres.create_database(name)
    try:
        await _steps_match_the_models(url)
    finally:
        postgres.drop_database(name)
