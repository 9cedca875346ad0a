"""Failed rows, on PostgreSQL and SQLite alike: a replay takes exactly what it is told,
its text filter matched as written (case-sensitive, no wildcards); and an order's events."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.ops.repair import FailedSelection, events_about, failed_rows, replay_failed
from cloudcrm_outbox.ops.status import read_status
from cloudcrm_outbox.storage.engine import make_engine
from tests.support import postgres
from tests.support.events import create_outbox_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with the outbox tables: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "repair.db"
        with create_engine(f"sqlite:///{path}").begin() as connection:
            create_outbox_schema(connection)
        yield f"sqlite+aiosqlite:///{path}"
        return
    request.applymarker(pytest.mark.postgres)
    name = postgres.unique_name("cc_repair")
    url = postgres.create_database(name, template=request.getfixturevalue("outbox_template"))
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture
async def any_engine(any_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(any_url)
    yield engine
    await engine.dispose()


async def add_row(
    engine: AsyncEngine, *, error: str | None, failed: bool, published: bool = False,
    order_id: str | None = None,
) -> uuid.UUID:  # fmt: skip
    row_id = uuid.uuid4()
    now = "CURRENT_TIMESTAMP"
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO outbox (id, event_type, payload, headers, attempts, last_error, "
                f"failed_at, published_at) VALUES (:id, 'OrderPlaced', :payload, '{{}}', 10, "
                f":error, {now if failed else 'NULL'}, {now if published else 'NULL'})"
            ),
            {
                "id": row_id if engine.dialect.name == "postgresql" else row_id.hex,
                "payload": json.dumps({"orderId": order_id or str(uuid.uuid4())}),
                "error": error,
            },
        )
    return row_id


async def test_replay_takes_exactly_the_selected_failed_rows(any_engine: AsyncEngine) -> None:
    refused = await add_row(any_engine, error="rejected by the broker: nack", failed=True)
    no_route = await add_row(any_engine, error="returned: 312 NO_ROUTE (50%_x)", failed=True)
    await add_row(any_engine, error="stale", failed=True, published=True)  # never resent
    await add_row(any_engine, error=None, failed=False)  # pending: not failed

    listed = {row.id for row in await failed_rows(any_engine)}
    assert listed == {refused, no_route}
    assert (await read_status(any_engine)).failed == 2  # what a replay can take
    by_case = FailedSelection(error_contains="REJECTED")
    assert await replay_failed(any_engine, by_case, dry_run=True) == []  # case-sensitive
    wildcard = FailedSelection(error_contains="%_x")
    assert await replay_failed(any_engine, wildcard, dry_run=True) == [no_route]
    assert await replay_failed(any_engine, FailedSelection(), dry_run=True) != []
    assert {row.id for row in await failed_rows(any_engine)} == listed  # a dry run
    assert await replay_failed(any_engine, FailedSelection(ids=[refused])) == [refused]
    assert {row.id for row in await failed_rows(any_engine)} == {no_route}
    assert await replay_failed(any_engine, FailedSelection()) == [no_route]
    assert await failed_rows(any_engine) == []


async def test_an_orders_events_by_its_id(any_engine: AsyncEngine) -> None:
    order = str(uuid.uuid4())
    first = await add_row(any_engine, error=None, failed=False, order_id=order)
    second = await add_row(any_engine, error="x", failed=True, order_id=order)
    await add_row(any_engine, error=None, failed=False)
    found = await events_about(any_engine, field="orderId", value=order)
    assert {event.id for event in found} == {first, second}
    assert await events_about(any_engine, field="orderId", value="nope") == []
