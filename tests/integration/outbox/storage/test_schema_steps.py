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

from cloudcrm_outbox import MessagingNames, make_engine, outbox_tables
from cloudcrm_outbox.storage.schema import LATEST, STEPS, create_latest, drop_latest
from tests.support import postgres

# Today's names, and a service's own (its tables beside another service's).
NAMES = [
    MessagingNames(),
    MessagingNames(outbox_table="parcels_outbox", inbox_table="parcels_inbox",
                   notify_channel="parcels_pending"),
]  # fmt: skip


def _run(
    step: Callable[[MessagingNames], None], names: MessagingNames
) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            step(names)

    return run


def _drift(names: MessagingNames) -> Callable[[Connection], list[Any]]:
    metadata = outbox_tables(names).metadata
    return lambda connection: list(
        compare_metadata(MigrationContext.configure(connection), metadata)
    )


async def _steps_match_the_models(url: str) -> None:
    engine = make_engine(url)
    try:
        for names in NAMES:
            async with engine.begin() as connection:
                await connection.run_sync(_run(create_latest, names))
                assert await connection.run_sync(_drift(names)) == []
                if connection.dialect.name == "postgresql":
                    trigger = f"{names.outbox_table}_notify"
                    triggers = await connection.execute(
                        text("SELECT tgname FROM pg_trigger WHERE tgname = :name"),
                        {"name": trigger},
                    )
                    assert triggers.scalars().all() == [trigger]
                await connection.run_sync(_run(drop_latest, names))
                tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
                assert not {names.outbox_table, names.inbox_table} & set(tables)
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
